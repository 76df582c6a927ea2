import { useMemo } from 'react';
import { Link, useParams } from 'react-router-dom';
import { useMessages, useOrchestrators, useOrganization } from '../api/queries';
import type { Message, Orchestrator } from '../api/types';
import { Age } from '../components/Age';
import { IndependenceToggle } from '../components/IndependenceToggle';
import { IndependentNote } from '../components/IndependentNote';
import { MessageList } from '../components/MessageList';
import { Pagination } from '../components/Pagination';
import { EmptyState, ErrorState, Loading } from '../components/QueryStates';
import { EnrollmentTokens } from '../components/EnrollmentTokens';
import { usePermissions } from '../auth/AuthContext';
import { StatusBadge } from '../components/StatusBadge';
import { formatInteger } from '../lib/format';
import { useQueryParams } from '../lib/useQueryParams';
import { visibleMessages } from '../live/merge';

const PAGE_SIZE = 20;

export function OrganizationDetailPage() {
  const { id = '' } = useParams();
  const params = useQueryParams();
  const page = params.getNumber('page', 1);
  const organization = useOrganization(id);
  const orchestrators = useOrchestrators({ organization_id: id, page, page_size: PAGE_SIZE });
  const messages = useMessages({ organization_id: id, status: 'pending', limit: 500 });

  const byOrchestrator = useMemo(() => {
    const items = orchestrators.data?.items ?? [];
    const independence = new Map(items.map((o) => [o.orchestrator_id, o.is_independent]));
    const grouped = new Map<string, Message[]>();
    for (const m of visibleMessages(messages.data ?? [], independence)) {
      grouped.set(m.orchestrator_id, [...(grouped.get(m.orchestrator_id) ?? []), m]);
    }
    return grouped;
  }, [orchestrators.data, messages.data]);

  if (organization.isPending) return <Loading label="Loading organization…" />;
  if (organization.isError) {
    return (
      <>
        <Breadcrumb name={id} />
        <ErrorState error={organization.error} onRetry={() => void organization.refetch()} />
      </>
    );
  }
  const org = organization.data;
  const onPage = new Set((orchestrators.data?.items ?? []).map((o) => o.orchestrator_id));
  const elsewhere = [...byOrchestrator.entries()].filter(([orch]) => !onPage.has(orch)).reduce((n, [, l]) => n + l.length, 0);

  return (
    <>
      <Breadcrumb name={org.name} />
      <div className="page-head">
        <h1>{org.name}</h1>
        <span className={`badge badge-${org.status === 'active' ? 'active' : 'inactive'}`}>
          <span className="badge-dot" aria-hidden="true" />
          {org.status}
        </span>
      </div>
      <dl className="facts">
        <div>
          <dt>Id</dt>
          <dd className="mono">{org.organization_id}</dd>
        </div>
        <div>
          <dt>Orchestrators</dt>
          <dd>
            {formatInteger(org.active_orchestrators)} active of {formatInteger(org.orchestrator_count)}
          </dd>
        </div>
        <div>
          <dt>Location</dt>
          <dd>{org.location ?? '—'}</dd>
        </div>
        <div>
          <dt>Costs</dt>
          <dd>
            <Link to={`/costs?organization_id=${encodeURIComponent(org.organization_id)}`}>Spend of this organization →</Link>
          </dd>
        </div>
      </dl>

      <h2>Orchestrators</h2>
      {orchestrators.isPending ? (
        <Loading label="Loading orchestrators…" />
      ) : orchestrators.isError ? (
        <ErrorState error={orchestrators.error} onRetry={() => void orchestrators.refetch()} />
      ) : orchestrators.data.items.length === 0 ? (
        <EmptyState title="No orchestrators in this organization yet" />
      ) : (
        <>
          {messages.isError && <ErrorState error={messages.error} onRetry={() => void messages.refetch()} />}
          <div className="orch-cards">
            {orchestrators.data.items.map((o) => (
              <OrchestratorCard
                key={o.orchestrator_id}
                orchestrator={o}
                messages={byOrchestrator.get(o.orchestrator_id) ?? []}
                messagesLoading={messages.isPending}
              />
            ))}
          </div>
          {elsewhere > 0 && (
            <p className="muted">
              {formatInteger(elsewhere)} more pending message{elsewhere === 1 ? '' : 's'} for orchestrators on other pages.
            </p>
          )}
          <Pagination
            page={orchestrators.data.page}
            pageSize={orchestrators.data.page_size}
            total={orchestrators.data.total}
            noun="orchestrators"
            busy={orchestrators.isFetching}
            onPage={(p) => params.set({ page: p })}
          />
        </>
      )}
      <EnrollmentTokens organizationId={org.organization_id} />
    </>
  );
}

function Breadcrumb({ name }: { name: string }) {
  return (
    <nav className="breadcrumb" aria-label="Breadcrumb">
      <Link to="/organizations">Organizations</Link> / <span aria-current="page">{name}</span>
    </nav>
  );
}

function OrchestratorCard({
  orchestrator: o,
  messages,
  messagesLoading,
}: {
  orchestrator: Orchestrator;
  messages: Message[];
  messagesLoading: boolean;
}) {
  const canDecide = usePermissions().canOperate(o.organization_id);
  return (
    <article className="card orch-card" data-orchestrator={o.orchestrator_id} aria-label={o.name || o.orchestrator_id}>
      <header className="orch-card-head">
        <div>
          <Link to={`/orchestrators/${encodeURIComponent(o.orchestrator_id)}`} className="orch-name">
            {o.name || o.orchestrator_id}
          </Link>
          <div className="muted small">
            <span className="mono">{o.orchestrator_id}</span>
            {o.version && <> · v{o.version}</>} · heartbeat <Age at={o.last_seen} />
          </div>
        </div>
        <StatusBadge record={o} />
      </header>
      <IndependenceToggle orchestrator={o} />
      {o.is_independent ? (
        <IndependentNote />
      ) : messagesLoading ? (
        <Loading label="Loading messages…" />
      ) : (
        <MessageList messages={messages} canDecide={canDecide} />
      )}
    </article>
  );
}
