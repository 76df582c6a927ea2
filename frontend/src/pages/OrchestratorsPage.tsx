import { useOrchestrators } from '../api/queries';
import { Pagination } from '../components/Pagination';
import { EmptyState, ErrorState, Loading } from '../components/QueryStates';
import { SearchInput } from '../components/SearchInput';
import { OrchestratorTable } from '../components/OrchestratorTable';
import { STATUS_FILTERS, isStatus } from '../lib/status';
import { useQueryParams } from '../lib/useQueryParams';

export function OrchestratorsPage() {
  const params = useQueryParams();
  const page = params.getNumber('page', 1);
  const pageSize = params.getNumber('page_size', 50);
  const search = params.get('search');
  const statusParam = params.get('status');
  const status = isStatus(statusParam) ? statusParam : undefined;
  const organizationId = params.get('organization_id');
  const query = {
    page,
    page_size: pageSize,
    ...(status ? { status } : {}),
    ...(search ? { search } : {}),
    ...(organizationId ? { organization_id: organizationId } : {}),
  };
  const list = useOrchestrators(query);
  const filtered = Boolean(status || search || organizationId);

  return (
    <>
      <h1>Orchestrators</h1>
      <div className="toolbar" role="search">
        <SearchInput
          label="Search"
          value={search}
          placeholder="id, name or organization"
          onChange={(v) => params.set({ search: v })}
        />
        <label className="field field-inline">
          Status
          <select value={status ?? ''} onChange={(e) => params.set({ status: e.target.value })}>
            {STATUS_FILTERS.map((f) => (
              <option key={f.value} value={f.value}>
                {f.label}
              </option>
            ))}
          </select>
        </label>
        {organizationId && (
          <span className="chip">
            Organization <span className="mono">{organizationId}</span>
            <button type="button" aria-label="Clear organization filter" onClick={() => params.set({ organization_id: null })}>
              ×
            </button>
          </span>
        )}
      </div>
      {list.isPending ? (
        <Loading label="Loading orchestrators…" />
      ) : list.isError ? (
        <ErrorState error={list.error} onRetry={() => void list.refetch()} />
      ) : list.data.items.length === 0 ? (
        filtered ? (
          <EmptyState title="No orchestrators match these filters" />
        ) : (
          <EmptyState title="No orchestrators yet">
            Orchestrators appear here as soon as they open a WebSocket to the controller (<code>/ws</code>) and say
            hello.
          </EmptyState>
        )
      ) : (
        <>
          <OrchestratorTable items={list.data.items} />
          <Pagination
            page={list.data.page}
            pageSize={list.data.page_size}
            total={list.data.total}
            noun="orchestrators"
            busy={list.isFetching}
            onPage={(p) => params.set({ page: p })}
            onPageSize={(s) => params.set({ page_size: s })}
          />
        </>
      )}
    </>
  );
}
