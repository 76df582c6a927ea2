// Pure functions that fold live status events into data already cached from the REST API,
// so a status change shows within a second without refetching the listing.
import type { Message, Orchestrator, OrchestratorPage, StatusEvent } from '../api/types';

/** Fields of an orchestrator that a status event carries. */
type LiveFields = Pick<Orchestrator, 'orchestrator_id' | 'status' | 'is_independent' | 'last_seen' | 'connected'>;

/**
 * The record with the event applied, or the same object when the event is about another
 * orchestrator or changes nothing (so React Query and React skip the re-render).
 */
export function applyStatusEvent<T extends LiveFields>(record: T, event: StatusEvent): T {
  if (record.orchestrator_id !== event.orchestrator_id) return record;
  let connected = record.connected;
  if (event.reason === 'registered' || event.reason === 'heartbeat') connected = true;
  if (event.reason === 'disconnected' || event.reason === 'deregistered') connected = false;
  const lastSeen = event.last_seen ?? record.last_seen;
  if (
    record.status === event.status &&
    record.is_independent === event.is_independent &&
    record.last_seen === lastSeen &&
    record.connected === connected
  ) {
    return record;
  }
  return {
    ...record,
    status: event.status,
    is_independent: event.is_independent,
    last_seen: lastSeen,
    connected,
  };
}

/** A listing page with the event applied; `found` says whether the orchestrator is on it. */
export function applyStatusEventToPage(
  page: OrchestratorPage,
  event: StatusEvent,
): { page: OrchestratorPage; found: boolean } {
  let found = false;
  let changed = false;
  const items = page.items.map((item) => {
    if (item.orchestrator_id !== event.orchestrator_id) return item;
    found = true;
    const next = applyStatusEvent(item, event);
    if (next !== item) changed = true;
    return next;
  });
  return { page: changed ? { ...page, items } : page, found };
}

/**
 * Keeps events in order per orchestrator: an event older than the last one applied for the
 * same orchestrator (two api replicas, a reconnecting stream) is dropped.
 */
export class EventOrder {
  private readonly latest = new Map<string, number>();

  /** True when the event is newer than every event seen for its orchestrator. */
  accept(event: StatusEvent): boolean {
    const at = Date.parse(event.at);
    const previous = this.latest.get(event.orchestrator_id);
    if (previous !== undefined && !Number.isNaN(at) && at < previous) return false;
    if (!Number.isNaN(at)) this.latest.set(event.orchestrator_id, at);
    return true;
  }
}

/** Newest first, at most `max`. */
export function pushRecent<T>(list: readonly T[], item: T, max: number): T[] {
  const next = [item, ...list];
  return next.length > max ? next.slice(0, max) : next;
}

/**
 * Messages to show: an independent orchestrator's messages are hidden. The orchestrator's
 * current independence (from the listing, with live events and optimistic toggles applied)
 * wins over the flag the message was fetched with, which may be stale.
 */
export function visibleMessages(
  messages: readonly Message[],
  independence: ReadonlyMap<string, boolean>,
): Message[] {
  return messages.filter((m) => !(independence.get(m.orchestrator_id) ?? m.orchestrator_is_independent));
}

/** The status an orchestrator shows right after its independence is switched (optimistic). */
export function optimisticIndependence<T extends LiveFields>(record: T, isIndependent: boolean): T {
  if (isIndependent) return { ...record, is_independent: true, status: 'independent' };
  // Switching back: the controller answers with the derived status; until then assume the
  // heartbeats it ignored are still coming if the socket is connected.
  return { ...record, is_independent: false, status: record.connected ? 'active' : 'inactive' };
}
