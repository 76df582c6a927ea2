// Enrollment tokens: their state as the listing shows it, and the expiry choices of the form.
import type { EnrollmentToken } from '../api/types';

export type TokenState = 'active' | 'expired' | 'revoked';

export function tokenState(token: Pick<EnrollmentToken, 'revoked_at' | 'expires_at'>, now: number): TokenState {
  if (token.revoked_at) return 'revoked';
  if (token.expires_at && Date.parse(token.expires_at) <= now) return 'expired';
  return 'active';
}

export const EXPIRY_CHOICES = [
  { days: 0, label: 'Never' },
  { days: 1, label: 'In 1 day' },
  { days: 7, label: 'In 7 days' },
  { days: 30, label: 'In 30 days' },
  { days: 90, label: 'In 90 days' },
  { days: 365, label: 'In 1 year' },
] as const;

/** `expires_at` for a choice of days from `now` (null: never). */
export function expiryFor(days: number, now: number): string | null {
  if (!Number.isFinite(days) || days <= 0) return null;
  return new Date(now + days * 86_400_000).toISOString();
}
