import { describe, expect, it } from 'vitest';
import { expiryFor, tokenState } from './tokens';

const now = Date.parse('2026-11-27T12:00:00Z');

describe('enrollment tokens', () => {
  it('are revoked, expired or active', () => {
    expect(tokenState({ revoked_at: '2026-11-27T11:00:00Z', expires_at: null }, now)).toBe('revoked');
    // Revoked wins over expired.
    expect(tokenState({ revoked_at: '2026-11-27T11:00:00Z', expires_at: '2026-11-27T11:30:00Z' }, now)).toBe('revoked');
    expect(tokenState({ revoked_at: null, expires_at: '2026-11-27T12:00:00Z' }, now)).toBe('expired');
    expect(tokenState({ revoked_at: null, expires_at: '2026-11-28T12:00:00Z' }, now)).toBe('active');
    expect(tokenState({ revoked_at: null, expires_at: null }, now)).toBe('active');
    expect(tokenState({}, now)).toBe('active');
  });

  it('expire a number of days from now, or never', () => {
    expect(expiryFor(0, now)).toBeNull();
    expect(expiryFor(Number.NaN, now)).toBeNull();
    expect(expiryFor(7, now)).toBe('2026-12-04T12:00:00.000Z');
    expect(expiryFor(1, now)).toBe('2026-11-28T12:00:00.000Z');
  });
});
