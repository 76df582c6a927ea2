import { Link } from 'react-router-dom';
import { useCosts, useOrganizations, useOverview } from '../api/queries';
import { BarChart } from '../components/BarChart';
import { ErrorState, Loading, EmptyState } from '../components/QueryStates';
import { RecentEvents } from '../components/RecentEvents';
import { OrganizationTable } from '../components/OrganizationTable';
import { formatCompact, formatInteger, formatMoney } from '../lib/format';
import { fillSeries, periodLabel } from '../lib/series';
import { usePermissions } from '../auth/AuthContext';

export function OverviewPage() {
  const overview = useOverview();
  const permissions = usePermissions();
  return (
    <>
      <h1>Overview</h1>
      {overview.isPending ? (
        <Loading label="Loading fleet numbers…" />
      ) : overview.isError ? (
        <ErrorState error={overview.error} onRetry={() => void overview.refetch()} />
      ) : (
        <div className="stats">
          <Stat label="Organizations" value={formatInteger(overview.data.total_organizations)} to="/organizations" />
          <Stat
            label="Orchestrators"
            value={formatInteger(overview.data.total_orchestrators)}
            to="/orchestrators"
            detail={`${formatInteger(overview.data.pending_messages)} pending message${overview.data.pending_messages === 1 ? '' : 's'}`}
          />
          <Stat
            label="Active"
            tone="active"
            value={formatInteger(overview.data.active_orchestrators)}
            to="/orchestrators?status=active"
          />
          <Stat
            label="Independent"
            tone="independent"
            value={formatInteger(overview.data.independent_orchestrators)}
            to="/orchestrators?status=independent"
          />
          <Stat
            label="Inactive"
            tone="inactive"
            value={formatInteger(overview.data.inactive_orchestrators)}
            to="/orchestrators?status=inactive"
          />
          {permissions.manageUsers ? (
            <Stat label="Users" value={formatInteger(overview.data.total_users)} to="/users" detail="operator accounts" />
          ) : (
            <Stat label="Users" value={formatInteger(overview.data.total_users)} detail="accounts in your organizations" />
          )}
        </div>
      )}
      <div className="grid-2">
        <MonthCostCard
          cost={overview.data?.cost_this_month}
          requests={overview.data?.requests_this_month}
          tokens={overview.data?.tokens_this_month}
        />
        <section className="card" aria-labelledby="recent-title">
          <h2 id="recent-title">Recent status events</h2>
          <RecentEvents limit={8} />
        </section>
      </div>
      <OrganizationsCard />
    </>
  );
}

function Stat({
  label,
  value,
  to,
  tone,
  detail,
}: {
  label: string;
  value: string;
  to?: string;
  tone?: 'active' | 'independent' | 'inactive';
  detail?: string;
}) {
  const className = `stat${tone ? ` stat-${tone}` : ''}`;
  const body = (
    <>
      <span className="stat-label">{label}</span>
      <span className="stat-value" data-testid={`stat-${label.toLowerCase()}`}>
        {value}
      </span>
      {detail && <span className="stat-detail muted">{detail}</span>}
    </>
  );
  return to ? (
    <Link to={to} className={className}>
      {body}
    </Link>
  ) : (
    <div className={className}>{body}</div>
  );
}

function MonthCostCard({ cost, requests, tokens }: { cost?: number; requests?: number; tokens?: number }) {
  const costs = useCosts({ granularity: 'day' });
  const series = costs.data
    ? fillSeries(costs.data.series, costs.data.from, costs.data.to, 'day').map((p) => ({
        label: periodLabel(p.period_start, 'day'),
        value: p.cost,
      }))
    : [];
  return (
    <section className="card" aria-labelledby="cost-title">
      <h2 id="cost-title">
        Cost this month <Link to="/costs" className="card-link">Details →</Link>
      </h2>
      <p className="big-number" data-testid="cost-this-month">
        {cost === undefined ? '—' : formatMoney(cost)}
      </p>
      <p className="muted">
        {requests === undefined ? '' : `${formatInteger(requests)} requests · ${formatCompact(tokens ?? 0)} tokens`}
      </p>
      {costs.isError ? (
        <ErrorState error={costs.error} />
      ) : costs.isPending ? (
        <Loading label="Loading spend…" />
      ) : costs.data.series.length === 0 ? (
        <EmptyState title="No usage reported this month" />
      ) : (
        <BarChart points={series} formatValue={formatMoney} caption="Spend per day this month (UTC)" height={90} compact />
      )}
    </section>
  );
}

function OrganizationsCard() {
  const organizations = useOrganizations(1, 10);
  const permissions = usePermissions();
  return (
    <section className="card" aria-labelledby="orgs-title">
      <h2 id="orgs-title">
        Organizations <Link to="/organizations" className="card-link">All →</Link>
      </h2>
      {organizations.isPending ? (
        <Loading />
      ) : organizations.isError ? (
        <ErrorState error={organizations.error} onRetry={() => void organizations.refetch()} />
      ) : organizations.data.items.length === 0 ? (
        <EmptyState title="No organizations yet">
          {permissions.createOrganizations
            ? 'Organizations appear when their first orchestrator connects, or create one on the Organizations page.'
            : 'A superadmin assigns organizations to your account.'}
        </EmptyState>
      ) : (
        <OrganizationTable items={organizations.data.items} />
      )}
    </section>
  );
}
