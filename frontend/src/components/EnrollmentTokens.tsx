import { useId, useState, type FormEvent } from 'react';
import { useCreateEnrollmentToken, useEnrollmentTokens, useRevokeEnrollmentToken } from '../api/queries';
import { errorMessage } from '../api/client';
import type { EnrollmentToken } from '../api/types';
import { usePermissions } from '../auth/AuthContext';
import { EXPIRY_CHOICES, expiryFor, tokenState } from '../lib/tokens';
import { formatDateTime } from '../lib/time';
import { useNow } from '../lib/useNow';
import { ConfirmDialog } from './ConfirmDialog';
import { CopyButton } from './CopyButton';
import { Pagination } from './Pagination';
import { EmptyState, ErrorState, Loading } from './QueryStates';
import { useToast } from './Toasts';

const PAGE_SIZE = 10;

/**
 * The enrollment tokens of one organization: the listing for every role that sees the
 * organization; creating (the secret is shown once) and revoking for those who operate it.
 */
export function EnrollmentTokens({ organizationId }: { organizationId: string }) {
  const permissions = usePermissions();
  const manage = permissions.canManageTokens(organizationId);
  const [page, setPage] = useState(1);
  const tokens = useEnrollmentTokens(organizationId, page, PAGE_SIZE);
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<{ token: string; record: EnrollmentToken } | null>(null);
  const [revoking, setRevoking] = useState<EnrollmentToken | null>(null);

  return (
    <section className="card" aria-labelledby="tokens-title" data-testid="enrollment-tokens">
      <h2 id="tokens-title">
        Enrollment tokens
        {manage && !creating && !secret && (
          <button type="button" className="btn btn-small card-action" onClick={() => setCreating(true)}>
            New enrollment token
          </button>
        )}
      </h2>
      <p className="muted small">
        An orchestrator presenting an enrollment token of this organization may register with any orchestrator id in
        it (and only in it): <code>Authorization: Bearer …</code> on the WebSocket upgrade, or <code>auth_token</code>{' '}
        in its hello. Revoking a token closes every socket that registered with it.
        {!manage && ' Your role can see these tokens but not create or revoke them.'}
      </p>
      {creating && (
        <NewTokenForm
          organizationId={organizationId}
          onCancel={() => setCreating(false)}
          onCreated={(token, record) => {
            setCreating(false);
            setSecret({ token, record });
          }}
        />
      )}
      {secret && <Secret token={secret.token} record={secret.record} onDone={() => setSecret(null)} />}
      {tokens.isPending ? (
        <Loading label="Loading enrollment tokens…" />
      ) : tokens.isError ? (
        <ErrorState error={tokens.error} onRetry={() => void tokens.refetch()} />
      ) : tokens.data.items.length === 0 ? (
        <EmptyState title="No enrollment tokens yet">
          {manage ? 'Create one to let this organization’s orchestrators connect.' : null}
        </EmptyState>
      ) : (
        <>
          <TokenTable tokens={tokens.data.items} manage={manage} onRevoke={setRevoking} />
          {tokens.data.total > PAGE_SIZE && (
            <Pagination
              page={tokens.data.page}
              pageSize={tokens.data.page_size}
              total={tokens.data.total}
              noun="tokens"
              busy={tokens.isFetching}
              onPage={setPage}
            />
          )}
        </>
      )}
      <RevokeToken organizationId={organizationId} token={revoking} onDone={() => setRevoking(null)} />
    </section>
  );
}

function tokenName(t: EnrollmentToken): string {
  return t.name || t.credential_id;
}

function TokenTable({
  tokens,
  manage,
  onRevoke,
}: {
  tokens: readonly EnrollmentToken[];
  manage: boolean;
  onRevoke: (t: EnrollmentToken) => void;
}) {
  const now = useNow();
  return (
    <div className="table-wrap">
      <table className="table table-stack" data-testid="enrollment-token-table">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Created</th>
            <th scope="col">Expires</th>
            <th scope="col">State</th>
            {manage && (
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            )}
          </tr>
        </thead>
        <tbody>
          {tokens.map((t) => {
            const state = tokenState(t, now);
            return (
              <tr key={t.credential_id} data-token={t.credential_id} className={state === 'active' ? undefined : 'row-dim'}>
                <td data-label="Name">
                  {t.name ? <strong>{t.name}</strong> : <span className="muted">unnamed</span>}
                  <div className="muted mono small">{t.credential_id}</div>
                </td>
                <td data-label="Created" title={t.created_at}>
                  {formatDateTime(t.created_at)}
                  <div className="muted small">by {t.created_by}</div>
                </td>
                <td data-label="Expires">{t.expires_at ? formatDateTime(t.expires_at) : <span className="muted">never</span>}</td>
                <td data-label="State">
                  {state === 'revoked' ? (
                    <span className="badge badge-inactive" title={t.revoked_at ?? undefined}>
                      revoked {formatDateTime(t.revoked_at)}
                    </span>
                  ) : state === 'expired' ? (
                    <span className="badge badge-inactive">expired</span>
                  ) : (
                    <span className="badge badge-active">
                      <span className="badge-dot" aria-hidden="true" />
                      active
                    </span>
                  )}
                </td>
                {manage && (
                  <td data-label="Actions" className="row-actions">
                    {state !== 'revoked' && (
                      <button
                        type="button"
                        className="btn btn-small btn-danger-outline"
                        onClick={() => onRevoke(t)}
                        aria-label={`Revoke ${tokenName(t)}`}
                      >
                        Revoke
                      </button>
                    )}
                  </td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function NewTokenForm({
  organizationId,
  onCancel,
  onCreated,
}: {
  organizationId: string;
  onCancel: () => void;
  onCreated: (token: string, record: EnrollmentToken) => void;
}) {
  const create = useCreateEnrollmentToken(organizationId);
  const [name, setName] = useState('');
  const [days, setDays] = useState(0);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(
      { name: name.trim() || null, expires_at: expiryFor(days, Date.now()) },
      { onSuccess: (r) => onCreated(r.token, r.data) },
    );
  };
  return (
    <form className="subcard form-grid" onSubmit={submit} aria-label="New enrollment token">
      <label className="field">
        Name <span className="muted">(what it is for)</span>
        <input
          value={name}
          onChange={(e) => setName(e.target.value)}
          maxLength={255}
          placeholder="eu-central rollout"
          autoFocus
        />
      </label>
      <label className="field">
        Expires
        <select value={days} onChange={(e) => setDays(Number(e.target.value))}>
          {EXPIRY_CHOICES.map((c) => (
            <option key={c.days} value={c.days}>
              {c.label}
            </option>
          ))}
        </select>
      </label>
      {create.isError && (
        <p className="notice notice-error form-wide" role="alert">
          Could not create the token: {errorMessage(create.error)}
        </p>
      )}
      <div className="form-actions">
        <button type="button" className="btn" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="btn btn-primary" disabled={create.isPending}>
          {create.isPending ? 'Creating…' : 'Create token'}
        </button>
      </div>
    </form>
  );
}

/** The secret, once: copy it now or never. */
function Secret({ token, record, onDone }: { token: string; record: EnrollmentToken; onDone: () => void }) {
  const inputId = useId();
  return (
    <div className="subcard secret" role="region" aria-label="New enrollment token secret">
      <p className="notice notice-warning">
        <strong>Copy this token now: you will not see it again.</strong> The controller keeps only its hash.
      </p>
      <label htmlFor={inputId} className="small muted">
        {record.name ? `Enrollment token “${record.name}”` : 'Enrollment token'}
      </label>
      <div className="secret-row">
        <input
          id={inputId}
          className="mono secret-value"
          readOnly
          value={token}
          data-testid="enrollment-secret"
          onFocus={(e) => e.currentTarget.select()}
          spellCheck={false}
        />
        <CopyButton text={token} />
      </div>
      <div className="form-actions">
        <button type="button" className="btn btn-primary" onClick={onDone}>
          Done, I stored it
        </button>
      </div>
    </div>
  );
}

function RevokeToken({
  organizationId,
  token,
  onDone,
}: {
  organizationId: string;
  token: EnrollmentToken | null;
  onDone: () => void;
}) {
  const revoke = useRevokeEnrollmentToken(organizationId);
  const notify = useToast();
  const confirm = () => {
    if (!token) return;
    const name = tokenName(token);
    onDone();
    revoke.mutate(token.credential_id, {
      onSuccess: () => notify('success', `Token ${name} revoked; orchestrators that used it were disconnected`),
      onError: (e) => notify('error', `Could not revoke ${name}: ${errorMessage(e)}`),
    });
  };
  return (
    <ConfirmDialog
      open={token !== null}
      title={`Revoke ${token ? tokenName(token) : ''}?`}
      confirmLabel="Revoke token"
      tone="danger"
      onConfirm={confirm}
      onCancel={onDone}
    >
      <p>
        The token stops working at once and every orchestrator socket that registered with it is closed (code 4001).
        Those orchestrators need another token to connect again. This cannot be undone.
      </p>
    </ConfirmDialog>
  );
}
