import { useState, type FormEvent } from 'react';
import { Link, useParams } from 'react-router-dom';
import { useConnections, useCreateMessage, useMessages, useOrchestrator, useUpdateConfig } from '../api/queries';
import { errorMessage } from '../api/client';
import type { Orchestrator } from '../api/types';
import { Age } from '../components/Age';
import { IndependenceToggle } from '../components/IndependenceToggle';
import { IndependentNote } from '../components/IndependentNote';
import { JsonBlock } from '../components/Json';
import { MessageList } from '../components/MessageList';
import { EmptyState, ErrorState, Loading } from '../components/QueryStates';
import { StatusBadge } from '../components/StatusBadge';
import { useToast } from '../components/Toasts';
import { formatJson } from '../lib/format';
import { formatDateTime, formatDuration } from '../lib/time';
import { parseConfig } from '../lib/config';
import { usePermissions } from '../auth/AuthContext';

export function OrchestratorDetailPage() {
  const { id = '' } = useParams();
  const orchestrator = useOrchestrator(id);
  const permissions = usePermissions();
  if (orchestrator.isPending) return <Loading label="Loading orchestrator…" />;
  if (orchestrator.isError) {
    return (
      <>
        <Breadcrumb name={id} />
        <ErrorState error={orchestrator.error} onRetry={() => void orchestrator.refetch()} />
      </>
    );
  }
  const o = orchestrator.data;
  const canOperate = permissions.canOperate(o.organization_id);
  return (
    <>
      <Breadcrumb name={o.name || o.orchestrator_id} />
      <div className="page-head">
        <h1>{o.name || o.orchestrator_id}</h1>
        <StatusBadge record={o} />
        <span className="muted">
          last heartbeat <Age at={o.last_seen} />
        </span>
      </div>
      <div className="grid-2">
        <section className="card" aria-labelledby="facts-title">
          <h2 id="facts-title">Details</h2>
          <Facts o={o} />
          <IndependenceToggle orchestrator={o} />
        </section>
        <MessagesCard o={o} canDecide={canOperate} />
      </div>
      <div className="grid-2">
        <section className="card" aria-labelledby="prov-title">
          <h2 id="prov-title">Provisioning</h2>
          <dl className="facts facts-compact">
            <div>
              <dt>Config version</dt>
              <dd>{o.config_version}</dd>
            </div>
            <div>
              <dt>Privacy mode</dt>
              <dd>{o.privacy_mode ? 'on' : 'off'}</dd>
            </div>
            <div>
              <dt>Monitoring</dt>
              <dd>{o.monitoring_enabled ? 'enabled' : 'disabled'}</dd>
            </div>
          </dl>
          <h3>Features</h3>
          <JsonBlock value={o.features} empty="No features set." />
          <h3>Session config</h3>
          <JsonBlock value={o.session_config} empty="No session configuration." />
        </section>
        <section className="card" aria-labelledby="snapshot-title">
          <h2 id="snapshot-title">Last config snapshot</h2>
          {o.config_snapshot ? (
            <>
              <p className="muted small">
                Reported <Age at={o.config_snapshot_at} /> ({formatDateTime(o.config_snapshot_at)})
              </p>
              <JsonBlock value={o.config_snapshot} />
            </>
          ) : (
            <p className="muted">The orchestrator has not reported its effective configuration yet.</p>
          )}
          <h3>Metadata</h3>
          <JsonBlock value={o.metadata} empty="No metadata reported." />
        </section>
      </div>
      {canOperate && (
        <div className="grid-2">
          <SendMessageCard id={o.orchestrator_id} />
          <ConfigCard o={o} />
        </div>
      )}
      <ConnectionsCard id={o.orchestrator_id} />
    </>
  );
}

function Breadcrumb({ name }: { name: string }) {
  return (
    <nav className="breadcrumb" aria-label="Breadcrumb">
      <Link to="/orchestrators">Orchestrators</Link> / <span aria-current="page">{name}</span>
    </nav>
  );
}

function Facts({ o }: { o: Orchestrator }) {
  return (
    <dl className="facts facts-compact">
      <div>
        <dt>Id</dt>
        <dd className="mono">{o.orchestrator_id}</dd>
      </div>
      <div>
        <dt>Organization</dt>
        <dd>
          <Link to={`/organizations/${encodeURIComponent(o.organization_id)}`}>{o.organization_name || o.organization_id}</Link>
        </dd>
      </div>
      <div>
        <dt>Version</dt>
        <dd className="mono">{o.version ?? '—'}</dd>
      </div>
      <div>
        <dt>Location</dt>
        <dd>{o.location ?? '—'}</dd>
      </div>
      <div>
        <dt>Socket</dt>
        <dd>{o.connected ? `connected${o.edge_id ? ` via ${o.edge_id}` : ''}` : 'disconnected'}</dd>
      </div>
      <div>
        <dt>Health</dt>
        <dd>{o.health_status}</dd>
      </div>
      <div>
        <dt>Last activity</dt>
        <dd>
          <Age at={o.last_activity} />
        </dd>
      </div>
      <div>
        <dt>Registered</dt>
        <dd>{formatDateTime(o.created_at)}</dd>
      </div>
    </dl>
  );
}

function MessagesCard({ o, canDecide }: { o: Orchestrator; canDecide: boolean }) {
  const messages = useMessages({ orchestrator_id: o.orchestrator_id, limit: 20 }, !o.is_independent);
  return (
    <section className="card" aria-labelledby="messages-title">
      <h2 id="messages-title">Messages</h2>
      {o.is_independent ? (
        <IndependentNote />
      ) : messages.isPending ? (
        <Loading label="Loading messages…" />
      ) : messages.isError ? (
        <ErrorState error={messages.error} onRetry={() => void messages.refetch()} />
      ) : (
        <MessageList messages={messages.data} canDecide={canDecide} empty="No messages about this orchestrator yet." />
      )}
    </section>
  );
}

function SendMessageCard({ id }: { id: string }) {
  const create = useCreateMessage(id);
  const notify = useToast();
  const [type, setType] = useState('recommendation');
  const [content, setContent] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(
      { message_type: type, content: content.trim() },
      {
        onSuccess: () => {
          setContent('');
          notify('success', 'Message created: accept it to send it to the orchestrator');
        },
      },
    );
  };
  return (
    <section className="card" aria-labelledby="send-title">
      <h2 id="send-title">Send a message</h2>
      <form onSubmit={submit} className="stack">
        <p className="muted small">
          Creates a pending message. Once accepted it is delivered to the orchestrator (now, or when it next connects).
        </p>
        <label className="field">
          Type
          <select value={type} onChange={(e) => setType(e.target.value)}>
            <option value="recommendation">recommendation</option>
            <option value="monitoring">monitoring</option>
          </select>
        </label>
        <label className="field">
          Content
          <textarea value={content} onChange={(e) => setContent(e.target.value)} rows={3} required maxLength={16384} />
        </label>
        {create.isError && (
          <p className="notice notice-error" role="alert">
            {errorMessage(create.error)}
          </p>
        )}
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={create.isPending || content.trim() === ''}>
            {create.isPending ? 'Sending…' : 'Create message'}
          </button>
        </div>
      </form>
    </section>
  );
}

function ConfigCard({ o }: { o: Orchestrator }) {
  const update = useUpdateConfig(o.orchestrator_id);
  const notify = useToast();
  const [text, setText] = useState(() => formatJson(o.session_config));
  const parsed = parseConfig(text);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if ('error' in parsed) return;
    update.mutate(parsed.value, {
      onSuccess: (r) => notify('success', `Configuration version ${r.config_version} sent to the orchestrator`),
    });
  };
  return (
    <section className="card" aria-labelledby="config-title">
      <h2 id="config-title">Send a config update</h2>
      <form onSubmit={submit} className="stack">
        <p className="muted small">
          Replaces the session configuration (version {o.config_version}) and sends <code>config_update</code> to the
          orchestrator.
        </p>
        <label className="field">
          Session config (JSON object)
          <textarea
            className="mono"
            value={text}
            onChange={(e) => setText(e.target.value)}
            rows={8}
            spellCheck={false}
            aria-invalid={'error' in parsed}
            aria-describedby="config-error"
          />
        </label>
        <p id="config-error" className={'error' in parsed ? 'field-error' : 'visually-hidden'}>
          {'error' in parsed ? parsed.error : 'Valid JSON object'}
        </p>
        {update.isError && (
          <p className="notice notice-error" role="alert">
            {errorMessage(update.error)}
          </p>
        )}
        <div className="form-actions">
          <button type="button" className="btn" onClick={() => setText(formatJson(o.session_config))}>
            Reset
          </button>
          <button type="submit" className="btn btn-primary" disabled={'error' in parsed || update.isPending}>
            {update.isPending ? 'Sending…' : 'Send config update'}
          </button>
        </div>
      </form>
    </section>
  );
}

function ConnectionsCard({ id }: { id: string }) {
  const connections = useConnections(id);
  return (
    <section className="card" aria-labelledby="conn-title">
      <h2 id="conn-title">Connection history</h2>
      {connections.isPending ? (
        <Loading />
      ) : connections.isError ? (
        <ErrorState error={connections.error} onRetry={() => void connections.refetch()} />
      ) : connections.data.length === 0 ? (
        <EmptyState title="No connections recorded" />
      ) : (
        <div className="table-wrap">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Connected</th>
                <th scope="col">Disconnected</th>
                <th scope="col">Duration</th>
                <th scope="col">Edge</th>
                <th scope="col">Remote address</th>
                <th scope="col">Reason</th>
              </tr>
            </thead>
            <tbody>
              {connections.data.map((c) => (
                <tr key={c.connection_id}>
                  <td>{formatDateTime(c.connected_at)}</td>
                  <td>{c.disconnected_at ? formatDateTime(c.disconnected_at) : <span className="badge badge-active">open</span>}</td>
                  <td>
                    {formatDuration(
                      (c.disconnected_at ? Date.parse(c.disconnected_at) : Date.now()) - Date.parse(c.connected_at),
                    )}
                  </td>
                  <td className="mono">{c.edge_id ?? '—'}</td>
                  <td className="mono">{c.remote_addr ?? '—'}</td>
                  <td>{c.disconnect_reason ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
