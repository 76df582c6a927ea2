const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

function parse(value: string | Date | null | undefined): number | null {
  if (value == null) return null;
  const t = value instanceof Date ? value.getTime() : Date.parse(value);
  return Number.isNaN(t) ? null : t;
}

/**
 * Compact age of a past instant, precise to the second for the first hour so a heartbeat age
 * visibly ticks: `4s ago`, `2m 05s ago`, `3h 12m ago`, `5d 4h ago`; `never` for no instant.
 * Instants slightly in the future (clock skew between browser and controller) read `just now`.
 */
export function formatAge(value: string | Date | null | undefined, now: number): string {
  const t = parse(value);
  if (t === null) return 'never';
  const diff = now - t;
  if (diff < SECOND) return 'just now';
  if (diff < MINUTE) return `${Math.floor(diff / SECOND)}s ago`;
  if (diff < HOUR) {
    const m = Math.floor(diff / MINUTE);
    const s = Math.floor((diff % MINUTE) / SECOND);
    return `${m}m ${String(s).padStart(2, '0')}s ago`;
  }
  if (diff < DAY) {
    const h = Math.floor(diff / HOUR);
    const m = Math.floor((diff % HOUR) / MINUTE);
    return `${h}h ${m}m ago`;
  }
  const d = Math.floor(diff / DAY);
  const h = Math.floor((diff % DAY) / HOUR);
  return d < 30 ? `${d}d ${h}h ago` : `${d} days ago`;
}

/** A duration between two instants (a connection's length): `45s`, `3m 10s`, `2h 5m`, `3d 1h`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  if (ms < MINUTE) return `${Math.floor(ms / SECOND)}s`;
  if (ms < HOUR) return `${Math.floor(ms / MINUTE)}m ${Math.floor((ms % MINUTE) / SECOND)}s`;
  if (ms < DAY) return `${Math.floor(ms / HOUR)}h ${Math.floor((ms % HOUR) / MINUTE)}m`;
  return `${Math.floor(ms / DAY)}d ${Math.floor((ms % DAY) / HOUR)}h`;
}

/** Local date and time for tables, e.g. `2026-11-27 10:04:05` (tooltip carries the ISO form). */
export function formatDateTime(value: string | null | undefined): string {
  const t = parse(value);
  if (t === null) return '—';
  const d = new Date(t);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `YYYY-MM-DD` of an instant in UTC (cost buckets are UTC periods). */
export function utcDate(value: string | Date): string {
  const d = value instanceof Date ? value : new Date(value);
  return d.toISOString().slice(0, 10);
}
