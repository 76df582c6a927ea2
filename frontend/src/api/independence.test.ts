import { afterEach, describe, expect, it, vi } from 'vitest';
import { MutationObserver, QueryClient } from '@tanstack/react-query';
import type { Orchestrator, OrchestratorPage } from './types';

function orchestrator(id: string): Orchestrator {
  return {
    orchestrator_id: id,
    organization_id: 'org-1',
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
}

/** A fetch whose answer the test gives later, so the optimistic state can be observed. */
function deferredFetch() {
  let answer: (r: Response) => void = () => undefined;
  const fetch = vi.fn(() => new Promise<Response>((resolve) => (answer = resolve)));
  return { fetch, answer: (r: Response) => answer(r) };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

async function setUp() {
  const stub = deferredFetch();
  vi.stubGlobal('fetch', stub.fetch);
  vi.resetModules(); // the client captures fetch when it is created
  const { independenceMutation, keys } = await import('./queries');
  const client = new QueryClient();
  const listKey = keys.orchestrators({ page: 1, page_size: 50 });
  client.setQueryData<OrchestratorPage>(listKey, { items: [orchestrator('a')], total: 1, page: 1, page_size: 50 });
  client.setQueryData(keys.orchestrator('a'), orchestrator('a'));
  const observer = new MutationObserver(client, independenceMutation(client));
  const read = () => ({
    list: client.getQueryData<OrchestratorPage>(listKey)?.items[0],
    detail: client.getQueryData<Orchestrator>(keys.orchestrator('a')),
  });
  return { stub, observer, read };
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('independence toggle', () => {
  it('flips every cached copy at once and keeps the answer of the controller', async () => {
    const { stub, observer, read } = await setUp();
    const done = observer.mutate({ id: 'a', isIndependent: true });
    await vi.waitFor(() => expect(stub.fetch).toHaveBeenCalled());
    expect(read().list).toMatchObject({ status: 'independent', is_independent: true });
    expect(read().detail).toMatchObject({ status: 'independent', is_independent: true });
    stub.answer(
      json(200, {
        success: true,
        message: 'Independence mode updated',
        orchestrator_id: 'a',
        is_independent: true,
        status: 'independent',
      }),
    );
    await done;
    expect(read().list?.status).toBe('independent');
  });

  it('rolls every cached copy back when the controller refuses', async () => {
    const { stub, observer, read } = await setUp();
    const done = observer.mutate({ id: 'a', isIndependent: true });
    await vi.waitFor(() => expect(stub.fetch).toHaveBeenCalled());
    expect(read().list?.is_independent).toBe(true);
    stub.answer(json(503, { success: false, error: { code: 'unavailable', message: 'database down' } }));
    await expect(done).rejects.toMatchObject({ status: 503, code: 'unavailable', message: 'database down' });
    expect(read().list).toMatchObject({ status: 'active', is_independent: false });
    expect(read().detail).toMatchObject({ status: 'active', is_independent: false });
  });
});
