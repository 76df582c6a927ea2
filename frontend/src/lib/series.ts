import type { Granularity } from '../api/types';

export interface SeriesPoint {
  period_start: string;
  cost: number;
}

const DAY_MS = 86_400_000;

/** Start of the UTC period holding `t`, as PostgreSQL's date_trunc(unit, t, 'UTC') gives it. */
export function periodStart(t: number, granularity: Granularity): number {
  const d = new Date(t);
  const day = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  if (granularity === 'day') return day;
  if (granularity === 'month') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  // ISO weeks start on Monday.
  const weekday = (d.getUTCDay() + 6) % 7;
  return day - weekday * DAY_MS;
}

function nextPeriod(t: number, granularity: Granularity): number {
  if (granularity === 'day') return t + DAY_MS;
  if (granularity === 'week') return t + 7 * DAY_MS;
  const d = new Date(t);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/**
 * Every period from `from` to `to` (exclusive) with its cost; the API returns only periods
 * that had usage, and a chart needs the quiet ones as zero bars. Capped at `maxPoints`.
 */
export function fillSeries(
  points: readonly SeriesPoint[],
  from: string,
  to: string,
  granularity: Granularity,
  maxPoints = 400,
): SeriesPoint[] {
  const start = Date.parse(from);
  const end = Date.parse(to);
  if (Number.isNaN(start) || Number.isNaN(end) || end <= start) return [...points];
  const byPeriod = new Map<number, number>();
  for (const p of points) {
    const key = periodStart(Date.parse(p.period_start), granularity);
    byPeriod.set(key, (byPeriod.get(key) ?? 0) + p.cost);
  }
  const out: SeriesPoint[] = [];
  for (let t = periodStart(start, granularity); t < end && out.length < maxPoints; t = nextPeriod(t, granularity)) {
    out.push({ period_start: new Date(t).toISOString(), cost: byPeriod.get(t) ?? 0 });
  }
  return out;
}

/** Axis label of a period: `Nov 27` for days and weeks, `Nov 2026` for months (UTC). */
export function periodLabel(iso: string, granularity: Granularity): string {
  const d = new Date(iso);
  const month = d.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' });
  return granularity === 'month' ? `${month} ${d.getUTCFullYear()}` : `${month} ${d.getUTCDate()}`;
}
