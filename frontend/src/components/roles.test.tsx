import { afterEach, describe, expect, it, vi } from 'vitest';
import { renderToStaticMarkup } from 'react-dom/server';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import type { LoginUser, Message, Orchestrator, Role } from '../api/types';

const orchestrator: Orchestrator = {
  orchestrator_id: 'orch-1',
  organization_id: 'org-1',
  name: 'Gateway 1',
  status: 'active',
  is_independent: false,
  connected: true,
  health_status: 'healthy',
  metadata: {},
  features: {},
  session_config: {},
  config_version: 1,
  privacy_mode: false,
  monitoring_enabled: true,
  created_at: '2026-11-27T10:00:00Z',
  updated_at: '2026-11-27T10:00:00Z',
  last_seen: '2026-11-27T10:00:00Z',
};

const message: Message = {
  id: 'msg_1',
  orchestrator_id: 'orch-1',
  organization_id: 'org-1',
  message_type: 'recommendation',
  content: 'Enable the cache',
  message_metadata: {},
  status: 'pending',
  source: 'test',
  orchestrator_is_independent: false,
  created_at: '2026-11-27T10:00:00Z',
  updated_at: '2026-11-27T10:00:00Z',
};

function login(role: Role, organizationIds: string[]): LoginUser {
  return {
    username: 'someone',
    role,
    organization_ids: organizationIds,
    token: 'token',
    expires_at: new Date(Date.now() + 3_600_000).toISOString(),
  };
}

/** Renders `element` for an operator signed in with `user` (null: signed out). */
async function render(user: LoginUser | null, element: (m: typeof import('./IndependenceToggle') & typeof import('./MessageList')) => ReactNode) {
  vi.resetModules();
  const session = await import('../auth/session');
  const { AuthProvider } = await import('../auth/AuthContext');
  const toggle = await import('./IndependenceToggle');
  const list = await import('./MessageList');
  if (user) session.startSession(user);
  return renderToStaticMarkup(
    <QueryClientProvider client={new QueryClient()}>
      <AuthProvider>{element({ ...toggle, ...list })}</AuthProvider>
    </QueryClientProvider>,
  );
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('role-aware controls', () => {
  it('offer the independence switch to those who operate the organization only', async () => {
    const toggle = ({ IndependenceToggle }: typeof import('./IndependenceToggle')) => (
      <IndependenceToggle orchestrator={orchestrator} />
    );
    expect(await render(login('superadmin', []), toggle)).toContain('role="switch"');
    expect(await render(login('org_admin', ['org-1']), toggle)).toContain('role="switch"');
    expect(await render(login('org_admin', ['org-2']), toggle)).toBe('');
    expect(await render(login('viewer', ['org-1']), toggle)).toBe('');
    expect(await render(null, toggle)).toBe('');
  });

  it('show Accept / Dismiss only when the operator may decide', async () => {
    const withButtons = await render(login('org_admin', ['org-1']), ({ MessageList }) => (
      <MessageList messages={[message]} canDecide />
    ));
    expect(withButtons).toContain('Accept');
    expect(withButtons).toContain('Dismiss');
    const readOnly = await render(login('viewer', ['org-1']), ({ MessageList }) => (
      <MessageList messages={[message]} canDecide={false} />
    ));
    expect(readOnly).toContain('Enable the cache');
    expect(readOnly).not.toContain('Accept');
    expect(readOnly).not.toContain('Dismiss');
  });
});

describe('stored sessions', () => {
  function storage(value: string) {
    const items = new Map([['moolai.session', value]]);
    return {
      getItem: (k: string) => items.get(k) ?? null,
      setItem: (k: string, v: string) => void items.set(k, v),
      removeItem: (k: string) => void items.delete(k),
    };
  }

  it('keep a session with its role and organizations', async () => {
    vi.stubGlobal('localStorage', storage(JSON.stringify(login('viewer', ['org-1']))));
    vi.resetModules();
    const { getSession } = await import('../auth/session');
    expect(getSession()?.organization_ids).toEqual(['org-1']);
  });

  it('drop one from before accounts (no organizations) or with an unknown role', async () => {
    const { organization_ids: _dropped, ...old } = login('superadmin', []);
    for (const stored of [old, { ...login('viewer', []), role: 'admin' }]) {
      vi.stubGlobal('localStorage', storage(JSON.stringify(stored)));
      vi.resetModules();
      const { getSession } = await import('../auth/session');
      expect(getSession()).toBeNull();
    }
  });
});
