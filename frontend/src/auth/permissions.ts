// What the signed-in operator may do, derived from the role and organizations of the session
// the same way the API decides (services/api: each route names the least role it needs,
// viewer < org_admin < superadmin, and a scoped role reaches only its organizations). The
// dashboard uses this only to decide what to offer; the API enforces it either way.
import type { Role } from '../api/types';

const RANK: Record<Role, number> = { viewer: 0, org_admin: 1, superadmin: 2 };

export const ROLES: readonly Role[] = ['superadmin', 'org_admin', 'viewer'];

export const ROLE_LABELS: Record<Role, string> = {
  superadmin: 'Superadmin',
  org_admin: 'Organization admin',
  viewer: 'Viewer',
};

export const ROLE_DESCRIPTIONS: Record<Role, string> = {
  superadmin: 'Everything, in every organization: users, organizations, tokens, operations.',
  org_admin:
    'Operates the orchestrators of its organizations (independence, messages, config) and manages their enrollment tokens.',
  viewer: 'Reads the fleet, messages, costs and audit log of its organizations; changes nothing.',
};

/** The part of a session (or of /auth/me) that decides permissions. */
export interface Principal {
  role: Role;
  organization_ids: readonly string[];
}

export interface Permissions {
  role: Role | null;
  /** Users page and every account change. */
  manageUsers: boolean;
  /** New organizations (superadmin only). */
  createOrganizations: boolean;
  /** False for a viewer (and when signed out): no write is offered anywhere. */
  canWrite: boolean;
  /** Whether the scoped role reaches this organization (a superadmin reaches all). */
  sees: (organizationId: string) => boolean;
  /**
   * Independence, Accept / Dismiss, new messages and config updates on the orchestrators of
   * this organization.
   */
  canOperate: (organizationId: string) => boolean;
  /** Create and revoke the enrollment tokens of this organization. */
  canManageTokens: (organizationId: string) => boolean;
  /** Whether the audit log shows everything or only the entries of the caller's organizations. */
  auditScope: 'all' | 'organizations';
}

export function atLeast(role: Role, least: Role): boolean {
  return RANK[role] >= RANK[least];
}

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && value in RANK;
}

const NOBODY: Permissions = {
  role: null,
  manageUsers: false,
  createOrganizations: false,
  canWrite: false,
  sees: () => false,
  canOperate: () => false,
  canManageTokens: () => false,
  auditScope: 'organizations',
};

export function permissionsFor(principal: Principal | null | undefined): Permissions {
  if (!principal || !isRole(principal.role)) return NOBODY;
  const { role } = principal;
  const superadmin = role === 'superadmin';
  const organizations = new Set(principal.organization_ids);
  const sees = (organizationId: string) => superadmin || organizations.has(organizationId);
  const operates = (organizationId: string) => atLeast(role, 'org_admin') && sees(organizationId);
  return {
    role,
    manageUsers: superadmin,
    createOrganizations: superadmin,
    canWrite: atLeast(role, 'org_admin'),
    sees,
    canOperate: operates,
    canManageTokens: operates,
    auditScope: superadmin ? 'all' : 'organizations',
  };
}
