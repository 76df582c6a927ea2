import { Link } from 'react-router-dom';
import type { Organization } from '../api/types';
import { formatInteger } from '../lib/format';

export function OrganizationTable({ items }: { items: readonly Organization[] }) {
  return (
    <div className="table-wrap">
      <table className="table table-stack">
        <thead>
          <tr>
            <th scope="col">Organization</th>
            <th scope="col">Status</th>
            <th scope="col" className="num">
              Active / orchestrators
            </th>
            <th scope="col">Location</th>
          </tr>
        </thead>
        <tbody>
          {items.map((o) => (
            <tr key={o.organization_id}>
              <td data-label="Organization">
                <Link to={`/organizations/${encodeURIComponent(o.organization_id)}`}>{o.name}</Link>
                <div className="muted mono small">{o.organization_id}</div>
              </td>
              <td data-label="Status">
                <span className={`badge badge-${o.status === 'active' ? 'active' : 'inactive'}`}>
                  <span className="badge-dot" aria-hidden="true" />
                  {o.status}
                </span>
                {o.is_independent && <span className="badge badge-independent">independent</span>}
              </td>
              <td className="num" data-label="Active / orchestrators">
                {formatInteger(o.active_orchestrators)} / {formatInteger(o.orchestrator_count)}
              </td>
              <td data-label="Location">{o.location ?? <span className="muted">—</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
