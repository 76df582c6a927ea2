import { describe, expect, it } from 'vitest';
import type { User } from '../api/types';
import { newUserBody, passwordError, seesNothing, userChanges, usernameError, validateNewUser } from './users';

const user: User = {
  username: 'vera',
  role: 'viewer',
  organization_ids: ['org-a', 'org-b'],
  disabled: false,
  created_at: '2026-11-27T10:00:00Z',
  updated_at: '2026-11-27T10:00:00Z',
};

describe('user form rules', () => {
  it('checks user names as the API does', () => {
    expect(usernameError('jane.doe@example')).toBeNull();
    expect(usernameError('a_b-c')).toBeNull();
    expect(usernameError('')).toMatch(/Enter a user name/);
    expect(usernameError('has space')).toMatch(/letters, digits/);
    expect(usernameError('x'.repeat(65))).toMatch(/1 to 64/);
    expect(usernameError('zoë')).not.toBeNull();
  });

  it('wants 12 to 1024 characters of password', () => {
    expect(passwordError('eleven char')).toMatch(/At least 12 characters \(11 so far\)/);
    expect(passwordError('twelve chars')).toBeNull();
    // Characters, not UTF-16 units or bytes.
    expect(passwordError('🔑'.repeat(12))).toBeNull();
    expect(passwordError('p'.repeat(1025))).toMatch(/At most 1024/);
    expect(passwordError('twelve chars\0')).toMatch(/NUL/);
  });

  it('reports every field error of a new user at once', () => {
    expect(validateNewUser({ username: 'bad name', password: 'short', role: 'viewer', organization_ids: [] })).toEqual({
      username: expect.stringMatching(/letters/),
      password: expect.stringMatching(/At least/),
    });
    expect(
      validateNewUser({ username: ' ok ', password: 'long enough pw', role: 'viewer', organization_ids: [] }),
    ).toEqual({});
  });

  it('sends organizations only for a scoped role', () => {
    expect(
      newUserBody({ username: ' otto ', password: 'p'.repeat(12), role: 'org_admin', organization_ids: ['b', 'a', 'b'] }),
    ).toEqual({ username: 'otto', password: 'p'.repeat(12), role: 'org_admin', organization_ids: ['a', 'b'] });
    expect(
      newUserBody({ username: 'root2', password: 'p'.repeat(12), role: 'superadmin', organization_ids: ['a'] })
        .organization_ids,
    ).toEqual([]);
    expect(seesNothing('viewer', [])).toBe(true);
    expect(seesNothing('superadmin', [])).toBe(false);
    expect(seesNothing('org_admin', ['a'])).toBe(false);
  });
});

describe('userChanges', () => {
  it('is null when nothing changed (organizations compared as a set)', () => {
    expect(userChanges(user, { role: 'viewer', organization_ids: ['org-b', 'org-a'], disabled: false })).toBeNull();
  });

  it('sends only what changed', () => {
    expect(userChanges(user, { role: 'org_admin', organization_ids: ['org-a', 'org-b'], disabled: false })).toEqual({
      role: 'org_admin',
    });
    expect(userChanges(user, { role: 'viewer', organization_ids: ['org-c'], disabled: false })).toEqual({
      organization_ids: ['org-c'],
    });
    expect(userChanges(user, { role: 'viewer', organization_ids: ['org-a', 'org-b'], disabled: true })).toEqual({
      disabled: true,
    });
  });

  it('drops organizations when promoting to superadmin', () => {
    expect(userChanges(user, { role: 'superadmin', organization_ids: [], disabled: false })).toEqual({
      role: 'superadmin',
    });
  });
});
