import type { StatusEvent } from '../api/types';
import { isStatus } from '../lib/status';

/** Validates the payload of a `status` event (the stream is outside the typed client). */
export function parseStatusEvent(data: string): StatusEvent | null {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  if (
    typeof v.orchestrator_id !== 'string' ||
    typeof v.organization_id !== 'string' ||
    typeof v.status !== 'string' ||
    !isStatus(v.status) ||
    typeof v.is_independent !== 'boolean' ||
    typeof v.reason !== 'string' ||
    typeof v.at !== 'string'
  ) {
    return null;
  }
  const lastSeen = typeof v.last_seen === 'string' ? v.last_seen : null;
  const previous = typeof v.previous_status === 'string' && isStatus(v.previous_status) ? v.previous_status : null;
  return {
    orchestrator_id: v.orchestrator_id,
    organization_id: v.organization_id,
    status: v.status,
    previous_status: previous,
    is_independent: v.is_independent,
    last_seen: lastSeen,
    reason: v.reason,
    at: v.at,
  };
}
