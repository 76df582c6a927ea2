import { describe, expect, it } from 'vitest';
import { QueryClient } from '@tanstack/react-query';
import { keys } from '../api/queries';
import type { Orchestrator, OrchestratorPage, StatusEvent } from '../api/types';
import { mergeStatusEvent } from './stream';

function orchestrator(id: string, patch: Partial<Orchestrator> = {}): Orchestrator {
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
    ...patch,
  };
}

const independenceOn: StatusEvent = {
  orchestrator_id: 'b',
  organization_id: 'org-1',
  status: 'independent',
  previous_status: 'active',
  is_independent: true,
  last_seen: '2026-11-27T10:00:00Z',
  reason: 'independence_on',
  at: '2026-11-27T10:01:00Z',
};

describe('mergeStatusEvent', () => {
  it('updates every cached page and the detail holding the orchestrator, and nothing else', () => {
    const client = new QueryClient();
    const all: OrchestratorPage = { items: [orchestrator('a'), orchestrator('b')], total: 2, page: 1, page_size: 50 };
    const org: OrchestratorPage = { items: [orchestrator('b')], total: 1, page: 1, page_size: 20 };
    const other: OrchestratorPage = { items: [orchestrator('c')], total: 1, page: 1, page_size: 50 };
    client.setQueryData(keys.orchestrators({ page: 1, page_size: 50 }), all);
    client.setQueryData(keys.orchestrators({ organization_id: 'org-1', page: 1, page_size: 20 }), org);
    client.setQueryData(keys.orchestrators({ search: 'c', page: 1, page_size: 50 }), other);
    client.setQueryData(keys.orchestrator('b'), orchestrator('b'));

    expect(mergeStatusEvent(client, independenceOn)).toBe(true);

    const allAfter = client.getQueryData<OrchestratorPage>(keys.orchestrators({ page: 1, page_size: 50 }));
    expect(allAfter?.items.map((o) => o.status)).toEqual(['active', 'independent']);
    expect(allAfter?.items[0]).toBe(all.items[0]);
    const orgAfter = client.getQueryData<OrchestratorPage>(
      keys.orchestrators({ organization_id: 'org-1', page: 1, page_size: 20 }),
    );
    expect(orgAfter?.items[0]?.is_independent).toBe(true);
    expect(client.getQueryData(keys.orchestrators({ search: 'c', page: 1, page_size: 50 }))).toBe(other);
    expect(client.getQueryData<Orchestrator>(keys.orchestrator('b'))?.status).toBe('independent');
  });

  it('reports an orchestrator that no cached page holds (so the caller refetches)', () => {
    const client = new QueryClient();
    client.setQueryData(keys.orchestrators({ page: 1, page_size: 50 }), {
      items: [orchestrator('a')],
      total: 1,
      page: 1,
      page_size: 50,
    });
    expect(mergeStatusEvent(client, { ...independenceOn, orchestrator_id: 'new', reason: 'registered' })).toBe(false);
  });
});
