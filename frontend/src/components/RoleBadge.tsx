import type { Role } from '../api/types';
import { ROLE_DESCRIPTIONS, ROLE_LABELS } from '../auth/permissions';

export function RoleBadge({ role }: { role: Role }) {
  return (
    <span className={`badge badge-role badge-role-${role}`} title={ROLE_DESCRIPTIONS[role]}>
      {ROLE_LABELS[role]}
    </span>
  );
}
