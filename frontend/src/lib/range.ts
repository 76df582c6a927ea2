import type { Granularity } from '../api/types';

export type RangePreset = 'month' | '7d' | '30d' | '90d' | 'custom';

export const RANGE_PRESETS: readonly { value: RangePreset; label: string }[] = [
  { value: 'month', label: 'This month' },
  { value: '7d', label: 'Last 7 days' },
  { value: '30d', label: 'Last 30 days' },
  { value: '90d', label: 'Last 90 days' },
  { value: 'custom', label: 'Custom range' },
];

const DAY_MS = 86_400_000;
const isoDate = (t: number) => new Date(t).toISOString().slice(0, 10);

/**
 * The `from`/`to` query of a preset, as UTC dates (`to` as a date means the end of that day
 * for the API). Dates rather than instants keep the query key stable while the page is open.
 */
export function rangeQuery(
  preset: RangePreset,
  now: Date,
  custom: { from: string; to: string },
): { from?: string; to?: string } {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  switch (preset) {
    case 'month':
      return { from: isoDate(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)), to: isoDate(today) };
    case '7d':
      return { from: isoDate(today - 6 * DAY_MS), to: isoDate(today) };
    case '30d':
      return { from: isoDate(today - 29 * DAY_MS), to: isoDate(today) };
    case '90d':
      return { from: isoDate(today - 89 * DAY_MS), to: isoDate(today) };
    case 'custom':
      return {
        ...(custom.from ? { from: custom.from } : {}),
        ...(custom.to ? { to: custom.to } : {}),
      };
  }
}

export function isRangePreset(v: string): v is RangePreset {
  return RANGE_PRESETS.some((p) => p.value === v);
}

export function isGranularity(v: string): v is Granularity {
  return v === 'day' || v === 'week' || v === 'month';
}
