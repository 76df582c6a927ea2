import { Link } from 'react-router-dom';
import { useAuditLog } from '../api/queries';
import type { AuditRecord } from '../api/types';
import { Pagination } from '../components/Pagination';
import { EmptyState, ErrorState, Loading } from '../components/QueryStates';
import { SearchInput } from '../components/SearchInput';
import { formatJson } from '../lib/format';
import { formatDateTime } from '../lib/time';
import { useQueryParams } from '../lib/useQueryParams';
import { usePermissions } from '../auth/AuthContext';

/** The actions the controller records (libs/store and services/api). */
const ACTIONS = [
  'auth.login',
  'auth.logout',
  'user.create',
  'user.update',
  'user.delete',
  'api_token.create',
  'api_token.revoke',
  'credential.create',
  'credential.revoke',
  'orchestrator.independence',
  'orchestrator.config_update',
  'orchestrator.register',
  'orchestrator.deregister',
  'orchestrator.note',
  'message.create',
  'message.status',
  'organization.create',
];

export function AuditLogPage() {
  const params = useQueryParams();
  const page = params.getNumber('page', 1);
  const pageSize = params.getNumber('page_size', 50);
  const filters = {
    action: params.get('action'),
    actor: params.get('actor'),
    target: params.get('target'),
    organization_id: params.get('organization_id'),
  };
  const query = {
    page,
    page_size: pageSize,
    ...Object.fromEntries(Object.entries(filters).filter(([, v]) => v !== '')),
  };
  const log = useAuditLog(query);
  const filtered = Object.values(filters).some((v) => v !== '');
  const scoped = usePermissions().auditScope === 'organizations';

  return (
    <>
      <h1>Audit log</h1>
      {scoped && (
        <p className="muted page-intro" data-testid="audit-scope">
          You see the entries of your organizations only: logins and account changes are for superadmins.
        </p>
      )}
      <div className="toolbar" role="search">
        <label className="field field-inline">
          Action
          <select value={filters.action} onChange={(e) => params.set({ action: e.target.value })}>
            <option value="">All actions</option>
            {ACTIONS.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        <SearchInput label="Actor" value={filters.actor} placeholder="user:admin" onChange={(v) => params.set({ actor: v })} />
        <SearchInput
          label="Target"
          value={filters.target}
          placeholder="orchestrator:orch-1"
          onChange={(v) => params.set({ target: v })}
        />
        <SearchInput
          label="Organization"
          value={filters.organization_id}
          placeholder="org id"
          onChange={(v) => params.set({ organization_id: v })}
        />
      </div>
      {log.isPending ? (
        <Loading label="Loading the audit log…" />
      ) : log.isError ? (
        <ErrorState error={log.error} onRetry={() => void log.refetch()} />
      ) : log.data.items.length === 0 ? (
        <EmptyState title={filtered ? 'No records match these filters' : 'The audit log is empty'} />
      ) : (
        <>
          <div className="table-wrap">
            <table className="table table-stack" data-testid="audit-table">
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Action</th>
                  <th scope="col">Target</th>
                  <th scope="col">Result</th>
                  <th scope="col">Details</th>
                </tr>
              </thead>
              <tbody>
                {log.data.items.map((r) => (
                  <AuditRow key={r.id} record={r} />
                ))}
              </tbody>
            </table>
          </div>
          <Pagination
            page={log.data.page}
            pageSize={log.data.page_size}
            total={log.data.total}
            noun="records"
            busy={log.isFetching}
            onPage={(p) => params.set({ page: p })}
            onPageSize={(s) => params.set({ page_size: s })}
          />
        </>
      )}
    </>
  );
}

function targetLink(target: string): string | null {
  const [kind, ...rest] = target.split(':');
  const id = rest.join(':');
  if (!id) return null;
  if (kind === 'orchestrator') return `/orchestrators/${encodeURIComponent(id)}`;
  if (kind === 'organization') return `/organizations/${encodeURIComponent(id)}`;
  return null;
}

function AuditRow({ record: r }: { record: AuditRecord }) {
  const link = r.target ? targetLink(r.target) : null;
  const hasDetails = Object.keys(r.details).length > 0;
  return (
    <tr>
      <td className="nowrap" title={r.at} data-label="Time">
        {formatDateTime(r.at)}
      </td>
      <td className="mono" data-label="Actor">
        {r.actor}
        {r.client_addr && <div className="muted small">{r.client_addr}</div>}
      </td>
      <td className="mono" data-label="Action">{r.action}</td>
      <td className="mono" data-label="Target">
        {r.target ? link ? <Link to={link}>{r.target}</Link> : r.target : <span className="muted">—</span>}
        {r.organization_id && <div className="muted small">org {r.organization_id}</div>}
      </td>
      <td data-label="Result">{r.success ? <span className="tag tag-accepted">ok</span> : <span className="tag tag-failed">failed</span>}</td>
      <td data-label="Details">
        {hasDetails ? (
          <details>
            <summary>show</summary>
            <pre className="json small">{formatJson(r.details)}</pre>
          </details>
        ) : (
          <span className="muted">—</span>
        )}
      </td>
    </tr>
  );
}
