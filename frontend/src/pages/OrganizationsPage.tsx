import { useState, type FormEvent } from 'react';
import { useCreateOrganization, useOrganizations } from '../api/queries';
import { errorMessage } from '../api/client';
import { OrganizationTable } from '../components/OrganizationTable';
import { Pagination } from '../components/Pagination';
import { EmptyState, ErrorState, Loading } from '../components/QueryStates';
import { useToast } from '../components/Toasts';
import { useQueryParams } from '../lib/useQueryParams';
import { usePermissions } from '../auth/AuthContext';

export function OrganizationsPage() {
  const params = useQueryParams();
  const page = params.getNumber('page', 1);
  const pageSize = params.getNumber('page_size', 25);
  const list = useOrganizations(page, pageSize);
  const [creating, setCreating] = useState(false);
  const permissions = usePermissions();
  return (
    <>
      <div className="page-head">
        <h1>Organizations</h1>
        {permissions.createOrganizations && (
          <button type="button" className="btn btn-primary" onClick={() => setCreating((v) => !v)} aria-expanded={creating}>
            New organization
          </button>
        )}
      </div>
      {permissions.auditScope === 'organizations' && (
        <p className="muted page-intro">The organizations your account is assigned to.</p>
      )}
      {creating && permissions.createOrganizations && <NewOrganizationForm onDone={() => setCreating(false)} />}
      {list.isPending ? (
        <Loading label="Loading organizations…" />
      ) : list.isError ? (
        <ErrorState error={list.error} onRetry={() => void list.refetch()} />
      ) : list.data.items.length === 0 ? (
        permissions.createOrganizations ? (
          <EmptyState title="No organizations yet">
            An organization appears when its first orchestrator connects, or create one here.
          </EmptyState>
        ) : (
          <EmptyState title="No organizations for your account">
            A superadmin assigns organizations to your account.
          </EmptyState>
        )
      ) : (
        <section className="card">
          <OrganizationTable items={list.data.items} />
          <Pagination
            page={list.data.page}
            pageSize={list.data.page_size}
            total={list.data.total}
            noun="organizations"
            busy={list.isFetching}
            onPage={(p) => params.set({ page: p })}
            onPageSize={(s) => params.set({ page_size: s })}
          />
        </section>
      )}
    </>
  );
}

function NewOrganizationForm({ onDone }: { onDone: () => void }) {
  const create = useCreateOrganization();
  const notify = useToast();
  const [id, setId] = useState('');
  const [name, setName] = useState('');
  const [location, setLocation] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(
      { organization_id: id.trim(), name: name.trim(), location: location.trim() || null },
      {
        onSuccess: (r) => {
          notify('success', `Organization ${r.data.name} created`);
          onDone();
        },
      },
    );
  };
  return (
    <form className="card form-grid" onSubmit={submit} aria-label="New organization">
      <label className="field">
        Organization id
        <input value={id} onChange={(e) => setId(e.target.value)} required pattern="[A-Za-z0-9_:\-]+" title="Letters, digits, _, - and :" placeholder="org-acme" />
      </label>
      <label className="field">
        Name
        <input value={name} onChange={(e) => setName(e.target.value)} required placeholder="Acme Inc." />
      </label>
      <label className="field">
        Location <span className="muted">(optional)</span>
        <input value={location} onChange={(e) => setLocation(e.target.value)} placeholder="eu-central" />
      </label>
      {create.isError && (
        <p className="notice notice-error" role="alert">
          {errorMessage(create.error)}
        </p>
      )}
      <div className="form-actions">
        <button type="button" className="btn" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" className="btn btn-primary" disabled={create.isPending}>
          {create.isPending ? 'Creating…' : 'Create'}
        </button>
      </div>
    </form>
  );
}
