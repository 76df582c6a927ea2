import { describe, expect, it } from 'vitest';
import { formatAge, formatDuration, utcDate } from './time';

const now = Date.parse('2026-11-27T12:00:00Z');
const ago = (ms: number) => new Date(now - ms).toISOString();

describe('formatAge', () => {
  it('reads never for a missing instant and survives garbage', () => {
    expect(formatAge(null, now)).toBe('never');
    expect(formatAge(undefined, now)).toBe('never');
    expect(formatAge('not a date', now)).toBe('never');
  });

  it('counts seconds, then minutes with padded seconds so the age ticks visibly', () => {
    expect(formatAge(ago(400), now)).toBe('just now');
    expect(formatAge(ago(4_000), now)).toBe('4s ago');
    expect(formatAge(ago(59_999), now)).toBe('59s ago');
    expect(formatAge(ago(60_000), now)).toBe('1m 00s ago');
    expect(formatAge(ago(125_000), now)).toBe('2m 05s ago');
  });

  it('switches to hours and days', () => {
    expect(formatAge(ago(3_600_000 * 3 + 12 * 60_000), now)).toBe('3h 12m ago');
    expect(formatAge(ago(86_400_000 * 5 + 3_600_000 * 4), now)).toBe('5d 4h ago');
    expect(formatAge(ago(86_400_000 * 45), now)).toBe('45 days ago');
  });

  it('treats a slightly future instant (clock skew) as just now', () => {
    expect(formatAge(new Date(now + 3_000).toISOString(), now)).toBe('just now');
  });

  it('accepts Date objects', () => {
    expect(formatAge(new Date(now - 10_000), now)).toBe('10s ago');
  });
});

describe('formatDuration', () => {
  it('formats connection lengths', () => {
    expect(formatDuration(45_000)).toBe('45s');
    expect(formatDuration(190_000)).toBe('3m 10s');
    expect(formatDuration(2 * 3_600_000 + 5 * 60_000)).toBe('2h 5m');
    expect(formatDuration(3 * 86_400_000 + 3_600_000)).toBe('3d 1h');
    expect(formatDuration(-1)).toBe('—');
  });
});

describe('utcDate', () => {
  it('takes the UTC calendar day', () => {
    expect(utcDate('2026-11-27T23:30:00-02:00')).toBe('2026-11-28');
  });
});
