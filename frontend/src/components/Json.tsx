import { formatJson } from '../lib/format';

export function JsonBlock({ value, empty = 'Empty' }: { value: unknown; empty?: string }) {
  const isEmpty =
    value == null || (typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 0);
  if (isEmpty) return <p className="muted">{empty}</p>;
  return <pre className="json">{formatJson(value)}</pre>;
}
