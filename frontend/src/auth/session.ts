// The operator's login session: kept in localStorage (so every tab shares it) until it
// expires, the operator logs out, or the api answers 401. It carries the role and
// organizations the login granted; they cannot change under it (the API ends a user's
// sessions when an account changes). A stored session without them (from a dashboard
// older than accounts) is dropped, so the operator signs in again.
import type { LoginUser } from '../api/types';
import { isRole } from './permissions';

export type Session = LoginUser;
export type SessionEndReason = 'expired' | 'logout';

const KEY = 'moolai.session';
let current: Session | null = read();
const listeners = new Set<(session: Session | null, reason?: SessionEndReason) => void>();

function isSession(value: unknown): value is Session {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.token === 'string' &&
    typeof v.username === 'string' &&
    isRole(v.role) &&
    Array.isArray(v.organization_ids) &&
    v.organization_ids.every((o) => typeof o === 'string') &&
    typeof v.expires_at === 'string'
  );
}

function read(): Session | null {
  try {
    const raw = globalThis.localStorage?.getItem(KEY);
    if (!raw) return null;
    const parsed: unknown = JSON.parse(raw);
    if (!isSession(parsed) || Date.parse(parsed.expires_at) <= Date.now()) return null;
    return parsed;
  } catch {
    return null;
  }
}

export function getSession(): Session | null {
  if (current && Date.parse(current.expires_at) <= Date.now()) {
    endSession('expired');
  }
  return current;
}

export function startSession(session: Session): void {
  current = session;
  try {
    localStorage.setItem(KEY, JSON.stringify(session));
  } catch {
    // Private mode without storage: the session lives in memory for this tab.
  }
  listeners.forEach((l) => l(session));
}

/** Forgets the session; listeners learn why (the login page says "session expired"). */
export function endSession(reason: SessionEndReason): void {
  if (current === null) return;
  current = null;
  try {
    localStorage.removeItem(KEY);
  } catch {
    // nothing stored
  }
  listeners.forEach((l) => l(null, reason));
}

export function subscribeSession(
  listener: (session: Session | null, reason?: SessionEndReason) => void,
): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

// Another tab logging in or out.
globalThis.addEventListener?.('storage', (e: StorageEvent) => {
  if (e.key !== KEY) return;
  const next = read();
  if (next) startSession(next);
  else endSession('logout');
});
