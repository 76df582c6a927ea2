import { Link } from 'react-router-dom';
import type { Orchestrator } from '../api/types';
import { Age } from './Age';
import { StatusBadge } from './StatusBadge';

/** One page of orchestrators; on a phone each row becomes a card. */
export function OrchestratorTable({ items }: { items: readonly Orchestrator[] }) {
  return (
    <div className="table-wrap">
      <table className="table table-stack" data-testid="orchestrator-table">
        <thead>
          <tr>
            <th scope="col">Orchestrator</th>
            <th scope="col">Status</th>
            <th scope="col">Last heartbeat</th>
            <th scope="col">Organization</th>
            <th scope="col">Version</th>
            <th scope="col">Socket</th>
          </tr>
        </thead>
        <tbody>
          {items.map((o) => (
            <tr key={o.orchestrator_id} data-orchestrator={o.orchestrator_id}>
              <td data-label="Orchestrator">
                <Link to={`/orchestrators/${encodeURIComponent(o.orchestrator_id)}`}>{o.name || o.orchestrator_id}</Link>
                {o.name && <div className="muted mono small">{o.orchestrator_id}</div>}
              </td>
              <td data-label="Status">
                <StatusBadge record={o} />
              </td>
              <td data-label="Last heartbeat">
                <Age at={o.last_seen} />
              </td>
              <td data-label="Organization">
                <Link to={`/organizations/${encodeURIComponent(o.organization_id)}`}>
                  {o.organization_name || o.organization_id}
                </Link>
              </td>
              <td className="mono" data-label="Version">{o.version ?? <span className="muted">—</span>}</td>
              <td data-label="Socket">
                {o.connected ? (
                  <span title={o.edge_id ? `via ${o.edge_id}` : undefined}>connected</span>
                ) : (
                  <span className="muted">disconnected</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
