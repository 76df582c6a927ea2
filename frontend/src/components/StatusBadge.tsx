import { statusBadge, type StatusFields } from '../lib/status';

export function StatusBadge({ record }: { record: StatusFields }) {
  const badge = statusBadge(record);
  return (
    <span className={`badge badge-${badge.tone}`} title={badge.description} data-status={badge.tone}>
      <span className="badge-dot" aria-hidden="true" />
      {badge.label}
    </span>
  );
}
