import { useCallback } from 'react';
import { useSearchParams } from 'react-router-dom';

/**
 * Page filters kept in the URL (shareable, and Back restores them). Setting a filter other
 * than `page` goes back to page 1.
 */
export function useQueryParams() {
  const [params, setParams] = useSearchParams();
  const get = useCallback((name: string) => params.get(name) ?? '', [params]);
  const getNumber = useCallback(
    (name: string, fallback: number) => {
      const n = Number(params.get(name));
      return Number.isInteger(n) && n > 0 ? n : fallback;
    },
    [params],
  );
  const set = useCallback(
    (changes: Record<string, string | number | null>) => {
      setParams(
        (prev) => {
          const next = new URLSearchParams(prev);
          for (const [k, v] of Object.entries(changes)) {
            if (v === null || v === '') next.delete(k);
            else next.set(k, String(v));
          }
          if (!('page' in changes)) next.delete('page');
          return next;
        },
        { replace: true },
      );
    },
    [setParams],
  );
  return { get, getNumber, set };
}
