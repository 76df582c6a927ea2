import { useCallback, useSyncExternalStore } from 'react';

/** `system` follows prefers-color-scheme; the others pin it. */
export type ThemeChoice = 'system' | 'light' | 'dark';
const KEY = 'moolai.theme';
const listeners = new Set<() => void>();

function read(): ThemeChoice {
  try {
    const v = localStorage.getItem(KEY);
    return v === 'light' || v === 'dark' ? v : 'system';
  } catch {
    return 'system';
  }
}

let choice: ThemeChoice = read();

export function applyTheme(next: ThemeChoice): void {
  choice = next;
  const root = document.documentElement;
  if (next === 'system') delete root.dataset.theme;
  else root.dataset.theme = next;
  try {
    if (next === 'system') localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, next);
  } catch {
    // not persisted
  }
  listeners.forEach((l) => l());
}

export function useTheme(): [ThemeChoice, () => void] {
  const current = useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => choice,
  );
  const cycle = useCallback(() => {
    applyTheme(current === 'system' ? 'light' : current === 'light' ? 'dark' : 'system');
  }, [current]);
  return [current, cycle];
}
