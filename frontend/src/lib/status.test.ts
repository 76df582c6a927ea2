import { describe, expect, it } from 'vitest';
import { isStatus, statusBadge } from './status';

describe('statusBadge', () => {
  it('shows active orchestrators as "active (heartbeat)"', () => {
    const b = statusBadge({ status: 'active', is_independent: false, connected: true });
    expect(b).toMatchObject({ tone: 'active', label: 'active (heartbeat)' });
  });

  it('lets independence win over a stale active status', () => {
    expect(statusBadge({ status: 'active', is_independent: true }).label).toBe('independent');
    expect(statusBadge({ status: 'independent', is_independent: false }).tone).toBe('independent');
  });

  it('shows everything else as inactive and says why', () => {
    const connected = statusBadge({ status: 'inactive', is_independent: false, connected: true });
    const gone = statusBadge({ status: 'inactive', is_independent: false, connected: false });
    expect(connected.label).toBe('inactive');
    expect(connected.description).toMatch(/^Connected/);
    expect(gone.description).toMatch(/^Not connected/);
  });
});

describe('isStatus', () => {
  it('accepts only the three derived statuses', () => {
    expect(['active', 'inactive', 'independent'].every(isStatus)).toBe(true);
    expect(isStatus('ACTIVE')).toBe(false);
    expect(isStatus('')).toBe(false);
    expect(isStatus(null)).toBe(false);
  });
});
