import { describe, expect, it } from 'vitest';
import { fillSeries, periodLabel, periodStart } from './series';

describe('fillSeries', () => {
  it('fills the days without usage with zero', () => {
    const filled = fillSeries(
      [
        { period_start: '2026-11-02T00:00:00Z', cost: 2 },
        { period_start: '2026-11-04T00:00:00Z', cost: 4 },
      ],
      '2026-11-01T00:00:00Z',
      '2026-11-05T10:00:00Z',
      'day',
    );
    expect(filled.map((p) => [p.period_start.slice(0, 10), p.cost])).toEqual([
      ['2026-11-01', 0],
      ['2026-11-02', 2],
      ['2026-11-03', 0],
      ['2026-11-04', 4],
      ['2026-11-05', 0],
    ]);
  });

  it('aligns weeks on Mondays and months on the first', () => {
    // 2026-11-04 is a Wednesday; its week starts Monday 2026-11-02.
    expect(new Date(periodStart(Date.parse('2026-11-04T15:00:00Z'), 'week')).toISOString()).toBe(
      '2026-11-02T00:00:00.000Z',
    );
    const months = fillSeries(
      [{ period_start: '2026-02-01T00:00:00Z', cost: 1 }],
      '2025-12-15T00:00:00Z',
      '2026-03-01T00:00:00Z',
      'month',
    );
    expect(months.map((p) => p.period_start.slice(0, 7))).toEqual(['2025-12', '2026-01', '2026-02']);
  });

  it('caps the number of points and survives a bad range', () => {
    expect(fillSeries([], '2020-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'day', 10)).toHaveLength(10);
    expect(fillSeries([{ period_start: 'x', cost: 1 }], 'bad', 'bad', 'day')).toHaveLength(1);
  });

  it('labels periods in UTC', () => {
    expect(periodLabel('2026-11-27T00:00:00Z', 'day')).toBe('Nov 27');
    expect(periodLabel('2026-11-01T00:00:00Z', 'month')).toBe('Nov 2026');
  });
});

import { rangeQuery } from './range';

describe('rangeQuery', () => {
  const now = new Date('2026-11-27T15:00:00Z');
  it('turns presets into UTC date ranges', () => {
    expect(rangeQuery('month', now, { from: '', to: '' })).toEqual({ from: '2026-11-01', to: '2026-11-27' });
    expect(rangeQuery('7d', now, { from: '', to: '' })).toEqual({ from: '2026-11-21', to: '2026-11-27' });
    expect(rangeQuery('custom', now, { from: '2026-10-01', to: '' })).toEqual({ from: '2026-10-01' });
  });
});
