import { useId, useState } from 'react';
import { useAllOrganizations } from '../api/queries';
import { uniqueSorted } from '../lib/users';
import { ErrorState } from './QueryStates';

interface Props {
  value: readonly string[];
  onChange: (ids: string[]) => void;
  legend?: string;
}

const ID = /^[A-Za-z0-9_:-]{1,128}$/;

/**
 * The organizations an account may see: a checkbox per known organization (the first 100,
 * filterable), and an id field for any other existing one.
 */
export function OrganizationPicker({ value, onChange, legend = 'Organizations' }: Props) {
  const organizations = useAllOrganizations();
  const [filter, setFilter] = useState('');
  const [extra, setExtra] = useState('');
  const [extraError, setExtraError] = useState<string | null>(null);
  const hintId = useId();
  const selected = new Set(value);
  const items = organizations.data?.items ?? [];
  const known = new Set(items.map((o) => o.organization_id));
  const needle = filter.trim().toLowerCase();
  const shown = needle
    ? items.filter((o) => o.organization_id.toLowerCase().includes(needle) || o.name.toLowerCase().includes(needle))
    : items;
  const others = value.filter((id) => !known.has(id));
  const more = organizations.data ? organizations.data.total > items.length : false;

  const toggle = (id: string, on: boolean) =>
    onChange(on ? uniqueSorted([...value, id]) : value.filter((v) => v !== id));
  const add = () => {
    const id = extra.trim();
    if (!ID.test(id)) {
      setExtraError("An organization id: letters, digits, '_', '-' and ':'.");
      return;
    }
    setExtraError(null);
    setExtra('');
    onChange(uniqueSorted([...value, id]));
  };

  return (
    <fieldset className="picker" aria-describedby={hintId}>
      <legend>
        {legend} <span className="muted">({value.length} selected)</span>
      </legend>
      {organizations.isError ? (
        <ErrorState error={organizations.error} onRetry={() => void organizations.refetch()} />
      ) : organizations.isPending ? (
        <p className="muted small">Loading organizations…</p>
      ) : (
        <>
          {items.length > 8 && (
            <input
              type="search"
              className="picker-filter"
              aria-label="Filter organizations"
              placeholder="Filter organizations"
              value={filter}
              onChange={(e) => setFilter(e.target.value)}
            />
          )}
          {items.length === 0 ? (
            <p className="muted small">No organizations exist yet.</p>
          ) : (
            <div className="picker-list">
              {shown.map((o) => (
                <label key={o.organization_id} className="picker-item">
                  <input
                    type="checkbox"
                    checked={selected.has(o.organization_id)}
                    onChange={(e) => toggle(o.organization_id, e.target.checked)}
                  />
                  <span>
                    {o.name} <span className="muted mono small">{o.organization_id}</span>
                  </span>
                </label>
              ))}
              {shown.length === 0 && <p className="muted small">No organization matches “{filter}”.</p>}
            </div>
          )}
        </>
      )}
      {others.length > 0 && (
        <div className="picker-others">
          {others.map((id) => (
            <span key={id} className="chip">
              <span className="mono">{id}</span>
              <button type="button" aria-label={`Remove ${id}`} onClick={() => toggle(id, false)}>
                ×
              </button>
            </span>
          ))}
        </div>
      )}
      {more && (
        <div className="picker-add">
          <input
            aria-label="Add an organization by id"
            placeholder="Another organization id"
            value={extra}
            onChange={(e) => setExtra(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter') {
                e.preventDefault();
                add();
              }
            }}
          />
          <button type="button" className="btn btn-small" onClick={add}>
            Add
          </button>
          {extraError && <span className="field-error">{extraError}</span>}
        </div>
      )}
      <p id={hintId} className="muted small picker-hint">
        The account sees these organizations only.
        {more ? ' Only the first 100 are listed; add others by id.' : ''}
      </p>
    </fieldset>
  );
}
