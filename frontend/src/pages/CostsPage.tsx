import { Link } from 'react-router-dom';
import { useCosts, useOrganizations } from '../api/queries';
import type { CostBucket, CostQuery, Granularity } from '../api/types';
import { BarChart } from '../components/BarChart';
import { InfoTip } from '../components/InfoTip';
import { EmptyState, ErrorState, Loading } from '../components/QueryStates';
import { explainForecast, forecastMonthEnd } from '../lib/forecast';
import { formatCompact, formatInteger, formatMoney } from '../lib/format';
import { RANGE_PRESETS, isGranularity, isRangePreset, rangeQuery } from '../lib/range';
import { fillSeries, periodLabel } from '../lib/series';
import { useQueryParams } from '../lib/useQueryParams';
import { utcDate } from '../lib/time';

export function CostsPage() {
  const params = useQueryParams();
  const presetParam = params.get('range');
  const preset = isRangePreset(presetParam) ? presetParam : 'month';
  const granularityParam = params.get('granularity');
  const granularity: Granularity = isGranularity(granularityParam) ? granularityParam : 'day';
  const organizationId = params.get('organization_id');
  const custom = { from: params.get('from'), to: params.get('to') };
  const range = rangeQuery(preset, new Date(), custom);
  const query: CostQuery = {
    ...range,
    granularity,
    ...(organizationId ? { organization_id: organizationId } : {}),
  };
  const report = useCosts(query);

  return (
    <>
      <h1>Costs</h1>
      <div className="toolbar">
        <label className="field field-inline">
          Range
          <select value={preset} onChange={(e) => params.set({ range: e.target.value })}>
            {RANGE_PRESETS.map((p) => (
              <option key={p.value} value={p.value}>
                {p.label}
              </option>
            ))}
          </select>
        </label>
        {preset === 'custom' && (
          <>
            <label className="field field-inline">
              From
              <input type="date" value={custom.from} onChange={(e) => params.set({ from: e.target.value })} />
            </label>
            <label className="field field-inline">
              To
              <input type="date" value={custom.to} onChange={(e) => params.set({ to: e.target.value })} />
            </label>
          </>
        )}
        <label className="field field-inline">
          Per
          <select value={granularity} onChange={(e) => params.set({ granularity: e.target.value })}>
            <option value="day">day</option>
            <option value="week">week</option>
            <option value="month">month</option>
          </select>
        </label>
        <OrganizationFilter value={organizationId} onChange={(v) => params.set({ organization_id: v })} />
      </div>

      <div className="stats">
        <div className="stat">
          <span className="stat-label">Spend in range</span>
          <span className="stat-value" data-testid="costs-total">
            {report.data ? formatMoney(report.data.totals.cost) : '—'}
          </span>
          <span className="stat-detail muted">
            {report.data ? `${utcDate(report.data.from)} → ${utcDate(new Date(Date.parse(report.data.to) - 1))} (UTC)` : ''}
          </span>
        </div>
        <div className="stat">
          <span className="stat-label">Requests</span>
          <span className="stat-value">{report.data ? formatInteger(report.data.totals.requests) : '—'}</span>
        </div>
        <div className="stat">
          <span className="stat-label">Tokens</span>
          <span className="stat-value">{report.data ? formatCompact(report.data.totals.total_tokens) : '—'}</span>
          <span className="stat-detail muted">
            {report.data
              ? `${formatCompact(report.data.totals.input_tokens)} in · ${formatCompact(report.data.totals.output_tokens)} out`
              : ''}
          </span>
        </div>
        <ForecastStat organizationId={organizationId} />
      </div>

      {report.isPending ? (
        <Loading label="Loading costs…" />
      ) : report.isError ? (
        <ErrorState error={report.error} onRetry={() => void report.refetch()} />
      ) : (
        <>
          <section className="card" aria-labelledby="spend-title">
            <h2 id="spend-title">Spend over time</h2>
            {report.data.series.length === 0 ? (
              <EmptyState title="No usage reported in this range">
                Orchestrators report usage in their heartbeats or in <code>usage</code> frames.
              </EmptyState>
            ) : (
              <BarChart
                points={fillSeries(report.data.series, report.data.from, report.data.to, granularity).map((p) => ({
                  label: periodLabel(p.period_start, granularity),
                  value: p.cost,
                }))}
                formatValue={formatMoney}
                caption={`Spend per ${granularity} (UTC)`}
              />
            )}
          </section>
          <div className="grid-2">
            <CostTable
              title="By organization"
              keyLabel="Organization"
              rows={report.data.by_organization}
              total={report.data.totals.cost}
              link={(k) => `/organizations/${encodeURIComponent(k)}`}
            />
            <CostTable title="By model" keyLabel="Model" rows={report.data.by_model} total={report.data.totals.cost} />
          </div>
          <CostTable
            title="By orchestrator"
            note="The 100 most expensive"
            keyLabel="Orchestrator"
            rows={report.data.by_orchestrator}
            total={report.data.totals.cost}
            link={(k) => `/orchestrators/${encodeURIComponent(k)}`}
          />
        </>
      )}
    </>
  );
}

function OrganizationFilter({ value, onChange }: { value: string; onChange: (v: string) => void }) {
  const organizations = useOrganizations(1, 100);
  const items = organizations.data?.items ?? [];
  return (
    <label className="field field-inline">
      Organization
      <select value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="">All organizations</option>
        {value && !items.some((o) => o.organization_id === value) && <option value={value}>{value}</option>}
        {items.map((o) => (
          <option key={o.organization_id} value={o.organization_id}>
            {o.name}
          </option>
        ))}
      </select>
    </label>
  );
}

/** Month-end forecast from this month's daily series (whatever range is on screen). */
function ForecastStat({ organizationId }: { organizationId: string }) {
  const month = useCosts({ granularity: 'day', ...(organizationId ? { organization_id: organizationId } : {}) });
  const forecast = month.data ? forecastMonthEnd(month.data.series, new Date()) : null;
  return (
    <div className="stat">
      <span className="stat-label">
        Month-end forecast
        {forecast && <InfoTip text={explainForecast(forecast, formatMoney)} />}
      </span>
      <span className="stat-value" data-testid="costs-forecast">
        {month.isError ? 'unavailable' : forecast ? formatMoney(forecast.projected) : '—'}
      </span>
      <span className="stat-detail muted">
        {forecast ? `${formatMoney(forecast.monthToDate)} spent so far this month` : ''}
      </span>
    </div>
  );
}

function CostTable({
  title,
  note,
  keyLabel,
  rows,
  total,
  link,
}: {
  title: string;
  note?: string;
  keyLabel: string;
  rows: readonly CostBucket[];
  total: number;
  link?: (key: string) => string;
}) {
  return (
    <section className="card" aria-label={title}>
      <h2>
        {title} {note && <span className="muted small">{note}</span>}
      </h2>
      {rows.length === 0 ? (
        <p className="muted">No usage in this range.</p>
      ) : (
        <div className="table-wrap">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">{keyLabel}</th>
                <th scope="col" className="num">
                  Requests
                </th>
                <th scope="col" className="num">
                  Tokens
                </th>
                <th scope="col" className="num">
                  Cost
                </th>
                <th scope="col" className="num">
                  Share
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.key}>
                  <td className="mono">{link ? <Link to={link(r.key)}>{r.key}</Link> : r.key}</td>
                  <td className="num">{formatInteger(r.requests)}</td>
                  <td className="num">{formatCompact(r.total_tokens)}</td>
                  <td className="num">{formatMoney(r.cost)}</td>
                  <td className="num">{total > 0 ? `${((r.cost / total) * 100).toFixed(1)}%` : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
