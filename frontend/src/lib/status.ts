import type { Status } from '../api/types';

/** What the status badge shows, derived the way the seed's dashboard did. */
export interface StatusBadgeInfo {
  /** Colour family of the badge. */
  tone: Status;
  /** Text on the badge: `active (heartbeat)`, `independent` or `inactive`. */
  label: string;
  /** One sentence for the tooltip / screen readers. */
  description: string;
}

export interface StatusFields {
  status: Status;
  is_independent: boolean;
  /** True while a socket is registered; absent when unknown (e.g. from an event). */
  connected?: boolean;
}

/**
 * Independence wins over everything (the controller ignores an independent orchestrator's
 * heartbeats, so its status is `independent` whatever its socket does); otherwise the
 * server-derived status decides between active and inactive.
 */
export function statusBadge(o: StatusFields): StatusBadgeInfo {
  if (o.is_independent || o.status === 'independent') {
    return {
      tone: 'independent',
      label: 'independent',
      description: 'Operates independently: the controller ignores its heartbeats and hides its messages.',
    };
  }
  if (o.status === 'active') {
    return {
      tone: 'active',
      label: 'active (heartbeat)',
      description: 'Heartbeats are arriving within the controller’s heartbeat TTL.',
    };
  }
  return {
    tone: 'inactive',
    label: 'inactive',
    description:
      o.connected === true
        ? 'Connected, but no heartbeat within the controller’s heartbeat TTL.'
        : 'Not connected, or no heartbeat within the controller’s heartbeat TTL.',
  };
}

export const STATUS_FILTERS: readonly { value: Status | ''; label: string }[] = [
  { value: '', label: 'All statuses' },
  { value: 'active', label: 'Active' },
  { value: 'independent', label: 'Independent' },
  { value: 'inactive', label: 'Inactive' },
];

export function isStatus(value: string | null | undefined): value is Status {
  return value === 'active' || value === 'inactive' || value === 'independent';
}
