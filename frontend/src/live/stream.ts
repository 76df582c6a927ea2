// The live status stream (SSE, `GET /api/v1/controller/events`): one EventSource per tab,
// reconnecting with jittered backoff. Each event is merged into the cached listings, so a
// status change shows within a second without refetching them.
import type { QueryClient } from '@tanstack/react-query';
import { api, unwrap } from '../api/client';
import { keys } from '../api/queries';
import type { OrchestratorPage, Orchestrator, StatusEvent } from '../api/types';
import { EventOrder, applyStatusEvent, applyStatusEventToPage } from './merge';
import { recordEvent } from './recent';
import { parseStatusEvent } from './stream-parse';

export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'off';

/**
 * Calls `fn` soon after the first request (`delayMs`, to batch a burst), then at most once per
 * `intervalMs` while requests keep coming: refetches that many events may ask for.
 */
export function throttle(fn: () => void, intervalMs: number, delayMs = 150): () => void {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let lastRun = -Infinity;
  return () => {
    if (timer !== null) return;
    const wait = Math.max(delayMs, lastRun + intervalMs - Date.now());
    timer = setTimeout(() => {
      timer = null;
      lastRun = Date.now();
      fn();
    }, wait);
  };
}

/**
 * `throttle(fn, intervalMs)` plus one more call `quietMs` after the last request: the API
 * may answer a refetch during a burst of events from a cache it is refreshing at that moment
 * (it follows a stream of status events in the background), so the last word comes after
 * the burst.
 */
export function throttleWithTrailing(fn: () => void, intervalMs: number, quietMs: number): () => void {
  const throttled = throttle(fn, intervalMs);
  let quiet: ReturnType<typeof setTimeout> | null = null;
  return () => {
    throttled();
    if (quiet !== null) clearTimeout(quiet);
    quiet = setTimeout(() => {
      quiet = null;
      fn();
    }, quietMs);
  };
}

/**
 * Folds one status event into every cached listing page and the cached detail of its
 * orchestrator; says whether any cached page holds that orchestrator.
 */
export function mergeStatusEvent(client: QueryClient, event: StatusEvent): boolean {
  let found = false;
  client.setQueriesData<OrchestratorPage>({ queryKey: keys.orchestratorLists }, (page) => {
    if (!page) return page;
    const result = applyStatusEventToPage(page, event);
    found ||= result.found;
    return result.page;
  });
  client.setQueryData<Orchestrator>(keys.orchestrator(event.orchestrator_id), (o) =>
    o ? applyStatusEvent(o, event) : o,
  );
  return found;
}

export interface StreamOptions {
  client: QueryClient;
  token: string;
  onState: (state: StreamState) => void;
}

/** Opens the stream; returns a function that closes it for good. */
export function openStatusStream({ client, token, onState }: StreamOptions): () => void {
  const order = new EventOrder();
  let source: EventSource | null = null;
  let retry: ReturnType<typeof setTimeout> | null = null;
  let attempt = 0;
  let everOpened = false;
  let closed = false;

  // Counts that depend on many rows come from the API, refetched at most every 2 s and once
  // more 2.5 s after the last event.
  const refreshCounts = throttleWithTrailing(
    () => {
      void client.invalidateQueries({ queryKey: keys.overview });
      void client.invalidateQueries({ queryKey: ['organizations'] });
    },
    2_000,
    2_500,
  );
  // An orchestrator not on any cached page (a new one, or a filter now matching): refetch the
  // visible pages, at most every 3 s and once more 3.5 s after the last such event.
  const refreshLists = throttleWithTrailing(
    () => {
      void client.invalidateQueries({ queryKey: keys.orchestratorLists });
    },
    3_000,
    3_500,
  );

  const resync = () => {
    void client.invalidateQueries({ queryKey: ['orchestrators'] });
    void client.invalidateQueries({ queryKey: ['messages'] });
    refreshCounts();
  };

  const onStatus = (message: MessageEvent<string>) => {
    const event = parseStatusEvent(message.data);
    if (!event || !order.accept(event)) return;
    recordEvent(event);
    const found = mergeStatusEvent(client, event);
    if (!found || event.reason === 'registered' || event.reason === 'deregistered') refreshLists();
    if (event.reason.startsWith('independence')) void client.invalidateQueries({ queryKey: ['messages'] });
    refreshCounts();
  };

  const connect = () => {
    if (closed) return;
    onState(everOpened ? 'reconnecting' : 'connecting');
    const url = `/api/v1/controller/events?access_token=${encodeURIComponent(token)}`;
    const es = new EventSource(url);
    source = es;
    es.addEventListener('open', () => {
      attempt = 0;
      // Events may have been missed before the stream opened (the page loaded first, or the
      // stream was down): refetch what is on screen once, then rely on the events.
      resync();
      everOpened = true;
      onState('live');
    });
    es.addEventListener('status', onStatus);
    es.addEventListener('resync', resync);
    es.addEventListener('error', () => {
      if (closed) return;
      es.close();
      source = null;
      onState('reconnecting');
      // A 401 closes the stream for good: ask the API, whose 401 ends the session.
      void unwrap(api.GET('/api/v1/internal/auth/me')).catch(() => undefined);
      const delay = Math.min(30_000, 1_000 * 2 ** attempt) * (0.5 + Math.random() / 2);
      attempt += 1;
      retry = setTimeout(connect, delay);
    });
  };

  connect();
  return () => {
    closed = true;
    if (retry !== null) clearTimeout(retry);
    source?.close();
    onState('off');
  };
}
