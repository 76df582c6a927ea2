import { describe, expect, it } from 'vitest';
import type { Message, Orchestrator, OrchestratorPage, StatusEvent } from '../api/types';
import {
  EventOrder,
  applyStatusEvent,
  applyStatusEventToPage,
  optimisticIndependence,
  pushRecent,
  visibleMessages,
} from './merge';

function orchestrator(id: string, patch: Partial<Orchestrator> = {}): Orchestrator {
  return {
    orchestrator_id: id,
    organization_id: 'org-1',
    status: 'active',
    is_independent: false,
    connected: true,
    health_status: 'healthy',
    metadata: {},
    features: {},
    session_config: {},
    config_version: 1,
    privacy_mode: false,
    monitoring_enabled: true,
    created_at: '2026-11-27T10:00:00Z',
    updated_at: '2026-11-27T10:00:00Z',
    last_seen: '2026-11-27T10:00:00Z',
    ...patch,
  };
}

function event(id: string, patch: Partial<StatusEvent> = {}): StatusEvent {
  return {
    orchestrator_id: id,
    organization_id: 'org-1',
    status: 'inactive',
    previous_status: 'active',
    is_independent: false,
    last_seen: '2026-11-27T10:00:00Z',
    reason: 'ttl_expired',
    at: '2026-11-27T10:02:00Z',
    ...patch,
  };
}

function page(items: Orchestrator[]): OrchestratorPage {
  return { items, total: 1000, page: 3, page_size: items.length };
}

describe('applyStatusEvent', () => {
  it('updates status, independence and last_seen of the matching orchestrator', () => {
    const next = applyStatusEvent(
      orchestrator('a'),
      event('a', { status: 'active', reason: 'heartbeat', last_seen: '2026-11-27T10:05:00Z' }),
    );
    expect(next).toMatchObject({ status: 'active', last_seen: '2026-11-27T10:05:00Z' });
  });

  it('tracks the socket from the reason', () => {
    expect(applyStatusEvent(orchestrator('a'), event('a', { reason: 'disconnected' })).connected).toBe(false);
    const down = orchestrator('a', { connected: false, status: 'inactive' });
    expect(applyStatusEvent(down, event('a', { reason: 'registered', status: 'active' })).connected).toBe(true);
    expect(applyStatusEvent(orchestrator('a'), event('a', { reason: 'ttl_expired' })).connected).toBe(true);
  });

  it('keeps last_seen when the event has none', () => {
    const next = applyStatusEvent(orchestrator('a'), event('a', { last_seen: null }));
    expect(next.last_seen).toBe('2026-11-27T10:00:00Z');
  });

  it('returns the same object when nothing changes or the event is about another orchestrator', () => {
    const a = orchestrator('a');
    expect(applyStatusEvent(a, event('b'))).toBe(a);
    expect(applyStatusEvent(a, event('a', { status: 'active', reason: 'heartbeat' }))).toBe(a);
  });
});

describe('applyStatusEventToPage', () => {
  it('replaces only the changed row and keeps the page metadata', () => {
    const rows = [orchestrator('a'), orchestrator('b'), orchestrator('c')];
    const before = page(rows);
    const { page: after, found } = applyStatusEventToPage(
      before,
      event('b', { status: 'independent', is_independent: true, reason: 'independence_on' }),
    );
    expect(found).toBe(true);
    expect(after).not.toBe(before);
    expect(after.total).toBe(1000);
    expect(after.items[0]).toBe(rows[0]);
    expect(after.items[2]).toBe(rows[2]);
    expect(after.items[1]).toMatchObject({ status: 'independent', is_independent: true });
  });

  it('leaves the page untouched for an orchestrator on another page', () => {
    const before = page([orchestrator('a')]);
    const result = applyStatusEventToPage(before, event('zzz'));
    expect(result).toEqual({ page: before, found: false });
    expect(result.page).toBe(before);
  });

  it('says found but keeps the object when the row already shows the event', () => {
    const before = page([orchestrator('a', { status: 'inactive' })]);
    const result = applyStatusEventToPage(before, event('a'));
    expect(result.found).toBe(true);
    expect(result.page).toBe(before);
  });
});

describe('EventOrder', () => {
  it('drops an event older than the last one seen for the same orchestrator', () => {
    const order = new EventOrder();
    expect(order.accept(event('a', { at: '2026-11-27T10:02:00Z' }))).toBe(true);
    expect(order.accept(event('a', { at: '2026-11-27T10:01:00Z' }))).toBe(false);
    expect(order.accept(event('b', { at: '2026-11-27T10:01:00Z' }))).toBe(true);
    expect(order.accept(event('a', { at: '2026-11-27T10:02:00Z' }))).toBe(true);
  });
});

describe('pushRecent', () => {
  it('keeps the newest first, bounded', () => {
    expect(pushRecent([2, 1], 3, 3)).toEqual([3, 2, 1]);
    expect(pushRecent([3, 2, 1], 4, 3)).toEqual([4, 3, 2]);
  });
});

describe('visibleMessages', () => {
  const message = (id: string, orch: string, independent = false): Message => ({
    id,
    orchestrator_id: orch,
    message_type: 'recommendation',
    content: 'enable cache',
    message_metadata: {},
    status: 'pending',
    source: 'api',
    orchestrator_is_independent: independent,
    created_at: '2026-11-27T10:00:00Z',
    updated_at: '2026-11-27T10:00:00Z',
  });

  it('hides messages of independent orchestrators, trusting the live state over the stale flag', () => {
    const messages = [message('1', 'a'), message('2', 'b', true), message('3', 'c', true), message('4', 'd')];
    const live = new Map([
      ['a', true], // switched on since the messages were fetched
      ['c', false], // switched off since
    ]);
    expect(visibleMessages(messages, live).map((m) => m.id)).toEqual(['3', '4']);
  });
});

describe('optimisticIndependence', () => {
  it('shows independent at once, and back to active only when the socket is up', () => {
    expect(optimisticIndependence(orchestrator('a'), true)).toMatchObject({
      is_independent: true,
      status: 'independent',
    });
    const off = optimisticIndependence(orchestrator('a', { is_independent: true, status: 'independent' }), false);
    expect(off.status).toBe('active');
    const gone = orchestrator('a', { is_independent: true, status: 'independent', connected: false });
    expect(optimisticIndependence(gone, false).status).toBe('inactive');
  });
});
