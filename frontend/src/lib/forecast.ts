/** One day of spend, as the costs endpoint returns it with `granularity=day` (UTC days). */
export interface DailySpend {
  period_start: string;
  cost: number;
}

export type ForecastBasis =
  /** Average of the most recent full days since spending started (up to {@link TRAILING_DAYS}). */
  | 'trailing-days'
  /** Spending started today: today's spend so far, extrapolated over the hours elapsed. */
  | 'today-so-far'
  /** No spend this month, or less than an hour of today to extrapolate from: no projection. */
  | 'none';

export interface MonthEndForecast {
  /** Spend from the first of the month (UTC) to now. */
  monthToDate: number;
  /** Expected spend for the whole month. */
  projected: number;
  /** Spend per day used for the rest of the month. */
  dailyRate: number;
  basis: ForecastBasis;
  /** Full days the rate was averaged over (0 unless `trailing-days`). */
  daysAveraged: number;
  /** Days (fractional) left until the end of the month. */
  daysRemaining: number;
  daysInMonth: number;
}

export const TRAILING_DAYS = 7;
const DAY_MS = 86_400_000;
const MIN_ELAPSED_FOR_EXTRAPOLATION_MS = 3_600_000;

/**
 * Month-end forecast from the month's daily series: spend so far plus the recent daily rate
 * times the days left. The rate is the average of the last up-to-7 full UTC days, counted from
 * the first day of the month that had any spend (days without usage inside that window count
 * as zero, the series omits them), so a fleet that started mid-month is not diluted by the
 * quiet days before it. When spending started today, today's spend is extrapolated over the
 * hours elapsed since midnight UTC; in the first hour of a day nothing is projected.
 */
export function forecastMonthEnd(series: readonly DailySpend[], now: Date): MonthEndForecast {
  const nowMs = now.getTime();
  const monthStart = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
  const nextMonthStart = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  const todayStart = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  const daysInMonth = Math.round((nextMonthStart - monthStart) / DAY_MS);
  const daysRemaining = Math.max(0, (nextMonthStart - nowMs) / DAY_MS);

  const days: { t: number; cost: number }[] = [];
  for (const point of series) {
    const t = Date.parse(point.period_start);
    if (!Number.isNaN(t) && t >= monthStart && t <= nowMs) days.push({ t, cost: point.cost });
  }
  const monthToDate = days.reduce((sum, d) => sum + d.cost, 0);
  const today = days.filter((d) => d.t >= todayStart).reduce((sum, d) => sum + d.cost, 0);
  const spending = days.filter((d) => d.cost > 0).map((d) => d.t);
  const firstSpendDay = spending.length > 0 ? Math.min(...spending) : null;

  let dailyRate = 0;
  let basis: ForecastBasis = 'none';
  let daysAveraged = 0;
  if (firstSpendDay !== null && firstSpendDay < todayStart) {
    daysAveraged = Math.min(TRAILING_DAYS, Math.round((todayStart - firstSpendDay) / DAY_MS));
    const windowStart = todayStart - daysAveraged * DAY_MS;
    const windowSum = days.filter((d) => d.t >= windowStart && d.t < todayStart).reduce((s, d) => s + d.cost, 0);
    dailyRate = windowSum / daysAveraged;
    basis = 'trailing-days';
  } else if (firstSpendDay !== null && nowMs - todayStart >= MIN_ELAPSED_FOR_EXTRAPOLATION_MS) {
    dailyRate = today / ((nowMs - todayStart) / DAY_MS);
    basis = 'today-so-far';
  }
  return {
    monthToDate,
    projected: monthToDate + dailyRate * daysRemaining,
    dailyRate,
    basis,
    daysAveraged,
    daysRemaining,
    daysInMonth,
  };
}

/** The tooltip that says how the number was computed. */
export function explainForecast(f: MonthEndForecast, formatMoney: (n: number) => string): string {
  const remaining = `${f.daysRemaining.toFixed(1)} days left`;
  switch (f.basis) {
    case 'trailing-days':
      return (
        `Spent so far this month (${formatMoney(f.monthToDate)}) plus the average daily spend ` +
        `of the last ${f.daysAveraged} full day${f.daysAveraged === 1 ? '' : 's'} ` +
        `(${formatMoney(f.dailyRate)}/day) times the ${remaining}. UTC days; computed in the browser.`
      );
    case 'today-so-far':
      return (
        `Spending started today: today's spend so far extrapolated to ${formatMoney(f.dailyRate)}/day, ` +
        `times the ${remaining}, plus the spend so far. UTC days; computed in the browser.`
      );
    case 'none':
      return f.monthToDate > 0
        ? 'Spending started less than an hour into today: too early to project, so this is the spend so far.'
        : 'No spend reported this month yet.';
  }
}
