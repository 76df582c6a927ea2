import { formatInteger } from '../lib/format';

interface Props {
  page: number;
  pageSize: number;
  total: number;
  onPage: (page: number) => void;
  onPageSize?: (size: number) => void;
  noun: string;
  busy?: boolean;
}

export const PAGE_SIZES = [25, 50, 100];

export function Pagination({ page, pageSize, total, onPage, onPageSize, noun, busy }: Props) {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  const first = total === 0 ? 0 : (page - 1) * pageSize + 1;
  const last = Math.min(total, page * pageSize);
  return (
    <nav className="pagination" aria-label={`${noun} pages`}>
      <span className="muted" aria-live="polite">
        {total === 0 ? `No ${noun}` : `${formatInteger(first)}–${formatInteger(last)} of ${formatInteger(total)} ${noun}`}
        {busy ? ' · updating…' : ''}
      </span>
      <span className="pagination-controls">
        {onPageSize && (
          <label className="inline-label">
            Per page
            <select value={pageSize} onChange={(e) => onPageSize(Number(e.target.value))}>
              {PAGE_SIZES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
        )}
        <button type="button" className="btn" disabled={page <= 1} onClick={() => onPage(page - 1)}>
          ‹ Previous
        </button>
        <span className="muted">
          Page {formatInteger(page)} of {formatInteger(pages)}
        </span>
        <button type="button" className="btn" disabled={page >= pages} onClick={() => onPage(page + 1)}>
          Next ›
        </button>
      </span>
    </nav>
  );
}
