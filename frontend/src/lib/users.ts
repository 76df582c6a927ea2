// The rules of the users form, checked before asking the API (which checks them again and
// whose message is shown when it refuses): services/api/src/validation.rs.
import type { NewUser, Role, User, UserUpdate } from '../api/types';

export const MIN_PASSWORD = 12;
export const MAX_PASSWORD = 1024;
const USERNAME = /^[A-Za-z0-9._@-]{1,64}$/;

export function usernameError(name: string): string | null {
  if (name === '') return 'Enter a user name.';
  if (!USERNAME.test(name)) return "1 to 64 characters: letters, digits, '.', '_', '-' or '@'.";
  return null;
}

export function passwordError(password: string): string | null {
  const length = [...password].length;
  if (length < MIN_PASSWORD) return `At least ${MIN_PASSWORD} characters (${length} so far).`;
  if (length > MAX_PASSWORD) return `At most ${MAX_PASSWORD} characters.`;
  if (password.includes('\0')) return 'No NUL characters.';
  return null;
}

/** Superadmins see every organization; the others only those assigned. */
export function isScoped(role: Role): boolean {
  return role !== 'superadmin';
}

export interface UserDraft {
  username: string;
  password: string;
  role: Role;
  organization_ids: string[];
}

export type UserDraftErrors = Partial<Record<'username' | 'password', string>>;

export function validateNewUser(draft: UserDraft): UserDraftErrors {
  const errors: UserDraftErrors = {};
  const username = usernameError(draft.username.trim());
  if (username) errors.username = username;
  const password = passwordError(draft.password);
  if (password) errors.password = password;
  return errors;
}

/** The create request: no organizations for a superadmin (the API ignores them anyway). */
export function newUserBody(draft: UserDraft): NewUser {
  return {
    username: draft.username.trim(),
    password: draft.password,
    role: draft.role,
    organization_ids: isScoped(draft.role) ? uniqueSorted(draft.organization_ids) : [],
  };
}

/** A scoped account without organizations can sign in but sees nothing: worth a warning. */
export function seesNothing(role: Role, organizationIds: readonly string[]): boolean {
  return isScoped(role) && organizationIds.length === 0;
}

export interface UserEdit {
  role: Role;
  organization_ids: string[];
  disabled: boolean;
}

/**
 * The update request for what changed between `user` and `edit`, or null when nothing did.
 * Organizations are compared as sets and only sent for a scoped role.
 */
export function userChanges(user: User, edit: UserEdit): UserUpdate | null {
  const body: UserUpdate = {};
  if (edit.role !== user.role) body.role = edit.role;
  if (isScoped(edit.role)) {
    const next = uniqueSorted(edit.organization_ids);
    if (!sameSet(next, user.organization_ids)) body.organization_ids = next;
  }
  if (edit.disabled !== user.disabled) body.disabled = edit.disabled;
  return Object.keys(body).length === 0 ? null : body;
}

export function uniqueSorted(ids: readonly string[]): string[] {
  return [...new Set(ids.map((id) => id.trim()).filter((id) => id !== ''))].sort();
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((x) => right.has(x));
}
