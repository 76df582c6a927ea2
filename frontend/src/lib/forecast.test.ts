import { describe, expect, it } from 'vitest';
import { explainForecast, forecastMonthEnd } from './forecast';

const day = (d: number, cost: number) => ({
  period_start: `2026-11-${String(d).padStart(2, '0')}T00:00:00Z`,
  cost,
});

describe('forecastMonthEnd', () => {
  it('adds the trailing 7-day average times the days left to the spend so far', () => {
    // November has 30 days; now is the 15th at 12:00 UTC: 15.5 days left.
    const series = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14].map((d) => day(d, 10));
    series.push(day(15, 4));
    const f = forecastMonthEnd(series, new Date('2026-11-15T12:00:00Z'));
    expect(f.monthToDate).toBeCloseTo(144);
    expect(f.basis).toBe('trailing-days');
    expect(f.daysAveraged).toBe(7);
    expect(f.dailyRate).toBeCloseTo(10);
    expect(f.daysRemaining).toBeCloseTo(15.5);
    expect(f.projected).toBeCloseTo(144 + 10 * 15.5);
    expect(f.daysInMonth).toBe(30);
  });

  it('counts days missing from the sparse series as zero spend', () => {
    // Only the 10th had usage within the last 7 full days (8th..14th).
    const f = forecastMonthEnd([day(2, 100), day(10, 70)], new Date('2026-11-15T00:00:00Z'));
    expect(f.dailyRate).toBeCloseTo(10);
    expect(f.monthToDate).toBeCloseTo(170);
    expect(f.projected).toBeCloseTo(170 + 10 * 16);
  });

  it('averages over fewer days early in the month', () => {
    const f = forecastMonthEnd([day(1, 6), day(2, 2), day(3, 1)], new Date('2026-11-03T06:00:00Z'));
    expect(f.daysAveraged).toBe(2);
    expect(f.dailyRate).toBeCloseTo(4);
    expect(f.monthToDate).toBeCloseTo(9);
  });

  it('averages only the days since spending started', () => {
    // Spending started on the 12th; now is the 15th: 3 full days (12th, 13th, 14th).
    const f = forecastMonthEnd([day(12, 3), day(13, 0), day(14, 6), day(15, 1)], new Date('2026-11-15T12:00:00Z'));
    expect(f.basis).toBe('trailing-days');
    expect(f.daysAveraged).toBe(3);
    expect(f.dailyRate).toBeCloseTo(3);
    expect(f.projected).toBeCloseTo(10 + 3 * 15.5);
  });

  it('extrapolates today when spending started today', () => {
    const f = forecastMonthEnd([day(20, 2)], new Date('2026-11-20T12:00:00Z'));
    expect(f.basis).toBe('today-so-far');
    expect(f.dailyRate).toBeCloseTo(4);
    expect(f.projected).toBeCloseTo(2 + 4 * 10.5);
  });

  it('projects nothing without spend', () => {
    const f = forecastMonthEnd([day(3, 0)], new Date('2026-11-20T12:00:00Z'));
    expect(f).toMatchObject({ basis: 'none', projected: 0, dailyRate: 0 });
  });

  it('extrapolates today on the first day of the month, and not in its first hour', () => {
    const f = forecastMonthEnd([day(1, 3)], new Date('2026-11-01T06:00:00Z'));
    expect(f.basis).toBe('today-so-far');
    expect(f.dailyRate).toBeCloseTo(12);
    const early = forecastMonthEnd([day(1, 3)], new Date('2026-11-01T00:30:00Z'));
    expect(early.basis).toBe('none');
    expect(early.projected).toBeCloseTo(3);
  });

  it('ignores points outside the current month and handles an empty series', () => {
    const f = forecastMonthEnd(
      [{ period_start: '2026-10-31T00:00:00Z', cost: 1000 }, day(5, 7)],
      new Date('2026-11-06T12:00:00Z'),
    );
    expect(f.monthToDate).toBeCloseTo(7);
    const empty = forecastMonthEnd([], new Date('2026-02-10T00:00:00Z'));
    expect(empty).toMatchObject({ monthToDate: 0, projected: 0, daysInMonth: 28 });
  });

  it('uses UTC month boundaries (December rolls into January)', () => {
    const f = forecastMonthEnd([day(1, 0)], new Date('2026-12-31T12:00:00Z'));
    expect(f.daysInMonth).toBe(31);
    expect(f.daysRemaining).toBeCloseTo(0.5);
  });

  it('explains itself', () => {
    const money = (n: number) => `$${n.toFixed(2)}`;
    const f = forecastMonthEnd([day(1, 10), day(2, 10)], new Date('2026-11-03T00:00:00Z'));
    expect(explainForecast(f, money)).toMatch(/average daily spend of the last 2 full days \(\$10\.00\/day\)/);
    const first = forecastMonthEnd([day(1, 1)], new Date('2026-11-01T12:00:00Z'));
    expect(explainForecast(first, money)).toMatch(/Spending started today/);
    expect(explainForecast(forecastMonthEnd([], new Date('2026-11-01T12:00:00Z')), money)).toMatch(/No spend/);
  });
});
