import { useId, useState, type FormEvent, type ReactNode } from 'react';
import { Link } from 'react-router-dom';
import { useCreateUser, useDeleteUser, useUpdateUser, useUsers } from '../api/queries';
import { errorMessage } from '../api/client';
import type { Role, User } from '../api/types';
import { useAuth, usePermissions } from '../auth/AuthContext';
import { ROLES, ROLE_DESCRIPTIONS, ROLE_LABELS, isRole } from '../auth/permissions';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { Modal } from '../components/Modal';
import { OrganizationPicker } from '../components/OrganizationPicker';
import { Pagination } from '../components/Pagination';
import { EmptyState, ErrorState, Loading } from '../components/QueryStates';
import { RoleBadge } from '../components/RoleBadge';
import { useToast } from '../components/Toasts';
import { formatDateTime } from '../lib/time';
import { useQueryParams } from '../lib/useQueryParams';
import {
  MIN_PASSWORD,
  isScoped,
  newUserBody,
  passwordError,
  seesNothing,
  userChanges,
  validateNewUser,
  type UserDraft,
  type UserDraftErrors,
} from '../lib/users';

/** Operator accounts: superadmins only (the API refuses everyone else with 403). */
export function UsersPage() {
  const permissions = usePermissions();
  const { session } = useAuth();
  if (!permissions.manageUsers) {
    return (
      <>
        <h1>Users</h1>
        <div className="state state-error" role="alert" data-testid="not-allowed">
          <strong>Not allowed</strong>
          <p>
            Only superadmins manage operator accounts. You are signed in as <strong>{session?.username}</strong> (
            {session ? ROLE_LABELS[session.role] : 'signed out'}).
          </p>
          <Link to="/" className="btn">
            Back to the overview
          </Link>
        </div>
      </>
    );
  }
  return <UsersAdmin />;
}

function UsersAdmin() {
  const params = useQueryParams();
  const page = params.getNumber('page', 1);
  const pageSize = params.getNumber('page_size', 50);
  const users = useUsers(page, pageSize);
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<User | null>(null);
  const [resetting, setResetting] = useState<User | null>(null);
  const [deleting, setDeleting] = useState<User | null>(null);

  return (
    <>
      <div className="page-head">
        <h1>Users</h1>
        <button type="button" className="btn btn-primary" onClick={() => setCreating((v) => !v)} aria-expanded={creating}>
          New user
        </button>
      </div>
      <p className="muted page-intro">
        Operator accounts of this controller. A superadmin does everything; an organization admin operates its
        organizations; a viewer only reads them. Changing an account ends its sessions.
      </p>
      {creating && <NewUserForm onDone={() => setCreating(false)} />}
      {users.isPending ? (
        <Loading label="Loading users…" />
      ) : users.isError ? (
        <ErrorState error={users.error} onRetry={() => void users.refetch()} />
      ) : users.data.items.length === 0 ? (
        <EmptyState title="No users" />
      ) : (
        <section className="card" aria-label="Users">
          <UserTable users={users.data.items} onEdit={setEditing} onReset={setResetting} onDelete={setDeleting} />
          <Pagination
            page={users.data.page}
            pageSize={users.data.page_size}
            total={users.data.total}
            noun="users"
            busy={users.isFetching}
            onPage={(p) => params.set({ page: p })}
            onPageSize={(s) => params.set({ page_size: s })}
          />
        </section>
      )}
      <Modal open={editing !== null} title={`Edit ${editing?.username ?? ''}`} onClose={() => setEditing(null)} wide>
        {editing && <EditUserForm user={editing} onDone={() => setEditing(null)} />}
      </Modal>
      <Modal
        open={resetting !== null}
        title={`Reset the password of ${resetting?.username ?? ''}`}
        onClose={() => setResetting(null)}
      >
        {resetting && <ResetPasswordForm user={resetting} onDone={() => setResetting(null)} />}
      </Modal>
      <DeleteUser user={deleting} onDone={() => setDeleting(null)} />
    </>
  );
}

function UserTable({
  users,
  onEdit,
  onReset,
  onDelete,
}: {
  users: readonly User[];
  onEdit: (u: User) => void;
  onReset: (u: User) => void;
  onDelete: (u: User) => void;
}) {
  const { session } = useAuth();
  return (
    <div className="table-wrap">
      <table className="table table-stack" data-testid="users-table">
        <thead>
          <tr>
            <th scope="col">User</th>
            <th scope="col">Role</th>
            <th scope="col">Organizations</th>
            <th scope="col">Created</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {users.map((u) => {
            const self = u.username === session?.username;
            return (
              <tr key={u.username} data-user={u.username}>
                <td data-label="User">
                  <strong>{u.username}</strong>
                  {self && <span className="tag tag-self">you</span>}
                  {u.disabled && <span className="tag tag-failed">disabled</span>}
                </td>
                <td data-label="Role">
                  <RoleBadge role={u.role} />
                </td>
                <td data-label="Organizations">
                  <Organizations user={u} />
                </td>
                <td data-label="Created" className="nowrap" title={u.created_at}>
                  {formatDateTime(u.created_at)}
                </td>
                <td data-label="Actions" className="row-actions">
                  <button
                    type="button"
                    className="btn btn-small"
                    onClick={() => onEdit(u)}
                    aria-label={`Edit ${u.username}`}
                  >
                    Edit
                  </button>
                  <button
                    type="button"
                    className="btn btn-small"
                    onClick={() => onReset(u)}
                    aria-label={`Reset the password of ${u.username}`}
                  >
                    Reset password
                  </button>
                  <button
                    type="button"
                    className="btn btn-small btn-danger-outline"
                    onClick={() => onDelete(u)}
                    disabled={self}
                    title={self ? 'You cannot delete yourself; ask another superadmin' : undefined}
                    aria-label={`Delete ${u.username}`}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function Organizations({ user }: { user: User }) {
  if (!isScoped(user.role)) return <span className="muted">all</span>;
  if (user.organization_ids.length === 0) return <span className="muted">none (sees nothing)</span>;
  return (
    <span className="org-list">
      {user.organization_ids.map((id) => (
        <Link key={id} to={`/organizations/${encodeURIComponent(id)}`} className="mono small">
          {id}
        </Link>
      ))}
    </span>
  );
}

function RoleField({ value, onChange, disabled, hint }: { value: Role; onChange: (r: Role) => void; disabled?: boolean; hint?: ReactNode }) {
  const hintId = useId();
  return (
    <label className="field">
      Role
      <select
        value={value}
        onChange={(e) => {
          if (isRole(e.target.value)) onChange(e.target.value);
        }}
        disabled={disabled}
        aria-describedby={hintId}
      >
        {ROLES.map((r) => (
          <option key={r} value={r}>
            {ROLE_LABELS[r]}
          </option>
        ))}
      </select>
      <span id={hintId} className="muted small">
        {hint ?? ROLE_DESCRIPTIONS[value]}
      </span>
    </label>
  );
}

function ScopeField({ role, value, onChange }: { role: Role; value: string[]; onChange: (ids: string[]) => void }) {
  if (!isScoped(role)) {
    return <p className="muted small scope-note">A superadmin sees every organization.</p>;
  }
  return (
    <>
      <OrganizationPicker value={value} onChange={onChange} />
      {seesNothing(role, value) && (
        <p className="notice notice-warning small" role="status">
          Without organizations this account can sign in but sees nothing.
        </p>
      )}
    </>
  );
}

function FieldError({ id, error }: { id: string; error: string | undefined }) {
  return error ? (
    <span id={id} className="field-error">
      {error}
    </span>
  ) : null;
}

function NewUserForm({ onDone }: { onDone: () => void }) {
  const create = useCreateUser();
  const notify = useToast();
  const [draft, setDraft] = useState<UserDraft>({ username: '', password: '', role: 'viewer', organization_ids: [] });
  const [errors, setErrors] = useState<UserDraftErrors>({});
  const usernameErrorId = useId();
  const passwordErrorId = useId();
  const set = (change: Partial<UserDraft>) => setDraft((d) => ({ ...d, ...change }));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const found = validateNewUser(draft);
    setErrors(found);
    if (Object.keys(found).length > 0) return;
    const body = newUserBody(draft);
    create.mutate(body, {
      onSuccess: (r) => {
        notify('success', `User ${r.data.username} created (${ROLE_LABELS[r.data.role]})`);
        onDone();
      },
    });
  };
  return (
    <form className="card user-form" onSubmit={submit} aria-label="New user" noValidate>
      <h2>New user</h2>
      <div className="form-grid">
        <label className="field">
          User name
          <input
            value={draft.username}
            onChange={(e) => set({ username: e.target.value })}
            autoComplete="off"
            autoFocus
            required
            maxLength={64}
            placeholder="jane.doe"
            aria-invalid={errors.username ? true : undefined}
            aria-describedby={errors.username ? usernameErrorId : undefined}
          />
          <FieldError id={usernameErrorId} error={errors.username} />
        </label>
        <label className="field">
          Password
          <input
            type="password"
            value={draft.password}
            onChange={(e) => set({ password: e.target.value })}
            autoComplete="new-password"
            required
            placeholder={`at least ${MIN_PASSWORD} characters`}
            aria-invalid={errors.password ? true : undefined}
            aria-describedby={errors.password ? passwordErrorId : undefined}
          />
          <FieldError id={passwordErrorId} error={errors.password} />
        </label>
        <RoleField value={draft.role} onChange={(role) => set({ role })} />
      </div>
      <ScopeField role={draft.role} value={draft.organization_ids} onChange={(organization_ids) => set({ organization_ids })} />
      {create.isError && (
        <p className="notice notice-error" role="alert">
          Could not create the user: {errorMessage(create.error)}
        </p>
      )}
      <div className="form-actions">
        <button type="button" className="btn" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" className="btn btn-primary" disabled={create.isPending}>
          {create.isPending ? 'Creating…' : 'Create user'}
        </button>
      </div>
    </form>
  );
}

function EditUserForm({ user, onDone }: { user: User; onDone: () => void }) {
  const update = useUpdateUser();
  const notify = useToast();
  const { session } = useAuth();
  const self = user.username === session?.username;
  const [role, setRole] = useState<Role>(user.role);
  const [organizationIds, setOrganizationIds] = useState<string[]>(user.organization_ids);
  const [disabled, setDisabled] = useState(user.disabled);
  const changes = userChanges(user, { role, organization_ids: organizationIds, disabled });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!changes) return;
    update.mutate(
      { username: user.username, body: changes },
      {
        onSuccess: (r) => {
          notify('success', `User ${r.data.username} updated; their sessions ended`);
          onDone();
        },
      },
    );
  };
  return (
    <form className="stack" onSubmit={submit} aria-label={`Edit ${user.username}`}>
      <RoleField
        value={role}
        onChange={setRole}
        disabled={self}
        hint={self ? 'You cannot change your own role; ask another superadmin.' : undefined}
      />
      <ScopeField role={role} value={organizationIds} onChange={setOrganizationIds} />
      <label className="check">
        <input type="checkbox" checked={disabled} onChange={(e) => setDisabled(e.target.checked)} disabled={self} />
        Disabled: cannot sign in, and open sessions stop working
      </label>
      {update.isError && (
        <p className="notice notice-error" role="alert">
          Could not update {user.username}: {errorMessage(update.error)}
        </p>
      )}
      <div className="dialog-actions">
        <button type="button" className="btn" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" className="btn btn-primary" disabled={!changes || update.isPending}>
          {update.isPending ? 'Saving…' : changes ? 'Save changes' : 'No changes'}
        </button>
      </div>
    </form>
  );
}

function ResetPasswordForm({ user, onDone }: { user: User; onDone: () => void }) {
  const update = useUpdateUser();
  const notify = useToast();
  const { session } = useAuth();
  const self = user.username === session?.username;
  const [password, setPassword] = useState('');
  const [repeat, setRepeat] = useState('');
  const [error, setError] = useState<string | null>(null);
  const errorId = useId();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const problem = passwordError(password) ?? (password !== repeat ? 'The two passwords differ.' : null);
    setError(problem);
    if (problem) return;
    update.mutate(
      { username: user.username, body: { password } },
      {
        onSuccess: () => {
          notify('success', `Password of ${user.username} reset; their sessions ended`);
          onDone();
        },
      },
    );
  };
  return (
    <form className="stack" onSubmit={submit} aria-label={`Reset the password of ${user.username}`} noValidate>
      <p className="muted small">
        {self
          ? 'Your own sessions end too, this one included: you sign in again with the new password.'
          : `Every session of ${user.username} ends; they sign in with the new password.`}
      </p>
      <label className="field">
        New password
        <input
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? errorId : undefined}
          autoFocus
        />
      </label>
      <label className="field">
        Repeat the new password
        <input
          type="password"
          autoComplete="new-password"
          value={repeat}
          onChange={(e) => setRepeat(e.target.value)}
          aria-invalid={error ? true : undefined}
        />
      </label>
      <FieldError id={errorId} error={error ?? undefined} />
      {update.isError && (
        <p className="notice notice-error" role="alert">
          Could not reset the password: {errorMessage(update.error)}
        </p>
      )}
      <div className="dialog-actions">
        <button type="button" className="btn" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" className="btn btn-primary" disabled={update.isPending}>
          {update.isPending ? 'Saving…' : 'Reset password'}
        </button>
      </div>
    </form>
  );
}

function DeleteUser({ user, onDone }: { user: User | null; onDone: () => void }) {
  const remove = useDeleteUser();
  const notify = useToast();
  const confirm = () => {
    if (!user) return;
    const name = user.username;
    onDone();
    remove.mutate(name, {
      onSuccess: () => notify('success', `User ${name} deleted`),
      onError: (e) => notify('error', `Could not delete ${name}: ${errorMessage(e)}`),
    });
  };
  return (
    <ConfirmDialog
      open={user !== null}
      title={`Delete ${user?.username ?? ''}?`}
      confirmLabel="Delete user"
      tone="danger"
      onConfirm={confirm}
      onCancel={onDone}
    >
      <p>
        The account and its sessions are removed at once; its past actions stay in the audit log. This cannot be
        undone.
      </p>
    </ConfirmDialog>
  );
}
