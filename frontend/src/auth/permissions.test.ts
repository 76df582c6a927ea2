import { describe, expect, it } from 'vitest';
import { atLeast, isRole, permissionsFor } from './permissions';

describe('permissionsFor', () => {
  it('gives a superadmin everything, in every organization', () => {
    const p = permissionsFor({ role: 'superadmin', organization_ids: [] });
    expect(p.manageUsers).toBe(true);
    expect(p.createOrganizations).toBe(true);
    expect(p.canWrite).toBe(true);
    expect(p.sees('any-org')).toBe(true);
    expect(p.canOperate('any-org')).toBe(true);
    expect(p.canManageTokens('any-org')).toBe(true);
    expect(p.auditScope).toBe('all');
  });

  it('lets an org_admin operate and manage tokens in its organizations only', () => {
    const p = permissionsFor({ role: 'org_admin', organization_ids: ['org-a', 'org-b'] });
    expect(p.manageUsers).toBe(false);
    expect(p.createOrganizations).toBe(false);
    expect(p.canWrite).toBe(true);
    expect(p.sees('org-a')).toBe(true);
    expect(p.canOperate('org-b')).toBe(true);
    expect(p.canManageTokens('org-a')).toBe(true);
    expect(p.sees('org-c')).toBe(false);
    expect(p.canOperate('org-c')).toBe(false);
    expect(p.canManageTokens('org-c')).toBe(false);
    expect(p.auditScope).toBe('organizations');
  });

  it('lets a viewer see its organizations and change nothing', () => {
    const p = permissionsFor({ role: 'viewer', organization_ids: ['org-a'] });
    expect(p.sees('org-a')).toBe(true);
    expect(p.sees('org-b')).toBe(false);
    expect(p.canWrite).toBe(false);
    expect(p.canOperate('org-a')).toBe(false);
    expect(p.canManageTokens('org-a')).toBe(false);
    expect(p.manageUsers).toBe(false);
    expect(p.createOrganizations).toBe(false);
    expect(p.auditScope).toBe('organizations');
  });

  it('gives nothing when signed out or for an unknown role', () => {
    for (const p of [
      permissionsFor(null),
      permissionsFor(undefined),
      // A stored session from another version, or tampered with.
      permissionsFor({ role: 'owner' as never, organization_ids: ['org-a'] }),
    ]) {
      expect(p.role).toBeNull();
      expect(p.manageUsers).toBe(false);
      expect(p.canWrite).toBe(false);
      expect(p.sees('org-a')).toBe(false);
      expect(p.canOperate('org-a')).toBe(false);
    }
  });

  it('ranks roles as the API does', () => {
    expect(atLeast('superadmin', 'org_admin')).toBe(true);
    expect(atLeast('org_admin', 'org_admin')).toBe(true);
    expect(atLeast('org_admin', 'superadmin')).toBe(false);
    expect(atLeast('viewer', 'org_admin')).toBe(false);
    expect(isRole('viewer')).toBe(true);
    expect(isRole('admin')).toBe(false);
    expect(isRole(undefined)).toBe(false);
  });
});
