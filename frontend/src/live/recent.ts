// The recent status events of this tab (newest first), for the overview page. Kept in
// sessionStorage so a reload does not empty the list; cleared when the session ends.
import { useSyncExternalStore } from 'react';
import type { StatusEvent } from '../api/types';
import { pushRecent } from './merge';
import { parseStatusEvent } from './stream-parse';

const MAX_RECENT = 50;
const KEY = 'moolai.recent-events';
let recent: StatusEvent[] = load();
const listeners = new Set<() => void>();
let saveTimer: ReturnType<typeof setTimeout> | null = null;

function load(): StatusEvent[] {
  try {
    const raw = globalThis.sessionStorage?.getItem(KEY);
    if (!raw) return [];
    const parsed: unknown = JSON.parse(raw);
    if (!Array.isArray(parsed)) return [];
    return parsed
      .map((e) => parseStatusEvent(JSON.stringify(e)))
      .filter((e): e is StatusEvent => e !== null)
      .slice(0, MAX_RECENT);
  } catch {
    return [];
  }
}

function save(): void {
  if (saveTimer !== null) return;
  // Bursts of events (a fleet reconnecting) write once.
  saveTimer = setTimeout(() => {
    saveTimer = null;
    try {
      sessionStorage.setItem(KEY, JSON.stringify(recent));
    } catch {
      // not persisted
    }
  }, 500);
}

export function recordEvent(event: StatusEvent): void {
  recent = pushRecent(recent, event, MAX_RECENT);
  save();
  listeners.forEach((l) => l());
}

export function clearRecent(): void {
  recent = [];
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // nothing stored
  }
  listeners.forEach((l) => l());
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function useRecentEvents(): StatusEvent[] {
  return useSyncExternalStore(subscribe, () => recent);
}
