// Every read and write of the dashboard, as TanStack Query hooks over the typed client.
import {
  keepPreviousData,
  useMutation,
  useQuery,
  useQueryClient,
  type QueryClient,
} from '@tanstack/react-query';
import { api, unwrap } from './client';
import type {
  AuditQuery,
  CostQuery,
  Decision,
  Message,
  MessageListQuery,
  NewEnrollmentToken,
  NewOrganization,
  NewUser,
  Orchestrator,
  OrchestratorListQuery,
  OrchestratorPage,
  UserUpdate,
} from './types';
import { optimisticIndependence } from '../live/merge';

export const keys = {
  overview: ['overview'] as const,
  organizations: (page: number, pageSize: number) => ['organizations', 'list', { page, pageSize }] as const,
  organization: (id: string) => ['organizations', 'detail', id] as const,
  orchestratorLists: ['orchestrators', 'list'] as const,
  orchestrators: (q: OrchestratorListQuery) => ['orchestrators', 'list', q] as const,
  orchestrator: (id: string) => ['orchestrators', 'detail', id] as const,
  connections: (id: string) => ['connections', id] as const,
  messages: (q: MessageListQuery) => ['messages', q] as const,
  costs: (q: CostQuery) => ['costs', q] as const,
  audit: (q: AuditQuery) => ['audit', q] as const,
  users: (page: number, pageSize: number) => ['users', { page, pageSize }] as const,
  enrollmentTokens: (organizationId: string, page: number, pageSize: number) =>
    ['enrollment-tokens', organizationId, { page, pageSize }] as const,
};

/** Fleet numbers change with every status event; a slow poll keeps them honest too. */
export function useOverview() {
  return useQuery({
    queryKey: keys.overview,
    queryFn: async () => (await unwrap(api.GET('/api/v1/controller/overview'))).data,
    refetchInterval: 30_000,
  });
}

export function useOrganizations(page: number, pageSize: number, enabled = true) {
  return useQuery({
    enabled,
    queryKey: keys.organizations(page, pageSize),
    queryFn: async () =>
      (await unwrap(api.GET('/api/v1/controller/organizations', { params: { query: { page, page_size: pageSize } } })))
        .data,
    placeholderData: keepPreviousData,
  });
}

/** Its counts change as orchestrators come and go; refreshed like the listings. */
export function useOrganization(id: string) {
  return useQuery({
    refetchInterval: 15_000,
    queryKey: keys.organization(id),
    queryFn: async () =>
      (
        await unwrap(
          api.GET('/api/v1/controller/organizations/{organization_id}', {
            params: { path: { organization_id: id } },
          }),
        )
      ).data,
  });
}

/**
 * One page of orchestrators. Status changes arrive through the live stream and are merged
 * into this cache; the 15 s refresh only keeps heartbeat ages exact between status changes.
 */
export function useOrchestrators(q: OrchestratorListQuery) {
  return useQuery({
    queryKey: keys.orchestrators(q),
    queryFn: async () => (await unwrap(api.GET('/api/v1/controller/orchestrators', { params: { query: q } }))).data,
    placeholderData: keepPreviousData,
    refetchInterval: 15_000,
  });
}

export function useOrchestrator(id: string) {
  return useQuery({
    queryKey: keys.orchestrator(id),
    queryFn: async () =>
      (
        await unwrap(
          api.GET('/api/v1/controller/orchestrators/{orchestrator_id}', {
            params: { path: { orchestrator_id: id } },
          }),
        )
      ).data,
    refetchInterval: 15_000,
  });
}

export function useConnections(id: string) {
  return useQuery({
    queryKey: keys.connections(id),
    queryFn: async () =>
      (
        await unwrap(
          api.GET('/api/v1/controller/orchestrators/{orchestrator_id}/connections', {
            params: { path: { orchestrator_id: id }, query: { limit: 50 } },
          }),
        )
      ).data,
  });
}

export function useMessages(q: MessageListQuery, enabled = true) {
  return useQuery({
    queryKey: keys.messages(q),
    queryFn: async () => (await unwrap(api.GET('/api/v1/internal/messages', { params: { query: q } }))).data,
    refetchInterval: 30_000,
    enabled,
  });
}

export function useCosts(q: CostQuery, enabled = true) {
  return useQuery({
    queryKey: keys.costs(q),
    queryFn: async () => (await unwrap(api.GET('/api/v1/controller/costs', { params: { query: q } }))).data,
    placeholderData: keepPreviousData,
    enabled,
  });
}

export function useAuditLog(q: AuditQuery) {
  return useQuery({
    queryKey: keys.audit(q),
    queryFn: async () => (await unwrap(api.GET('/api/v1/controller/logs', { params: { query: q } }))).data,
    placeholderData: keepPreviousData,
  });
}

type Snapshot = [readonly unknown[], unknown][];

/** Applies `update` to the orchestrator wherever it is cached (listing pages and detail). */
export function updateCachedOrchestrator(
  client: QueryClient,
  id: string,
  update: (o: Orchestrator) => Orchestrator,
): void {
  client.setQueriesData<OrchestratorPage>({ queryKey: keys.orchestratorLists }, (page) => {
    if (!page || !page.items.some((o) => o.orchestrator_id === id)) return page;
    return { ...page, items: page.items.map((o) => (o.orchestrator_id === id ? update(o) : o)) };
  });
  client.setQueryData<Orchestrator>(keys.orchestrator(id), (o) => (o ? update(o) : o));
}

/**
 * Switches independence mode. The badge flips at once (optimistic); a failure puts every
 * cached copy back as it was and rethrows for the caller to report.
 */
export function independenceMutation(client: QueryClient) {
  return {
    mutationFn: ({ id, isIndependent }: { id: string; isIndependent: boolean }) =>
      unwrap(
        api.PUT('/api/v1/internal/orchestrators/{orchestrator_id}/independence', {
          params: { path: { orchestrator_id: id } },
          body: { is_independent: isIndependent },
        }),
      ),
    onMutate: async ({ id, isIndependent }: { id: string; isIndependent: boolean }) => {
      await client.cancelQueries({ queryKey: ['orchestrators'] });
      const snapshot: Snapshot = client.getQueriesData({ queryKey: ['orchestrators'] });
      updateCachedOrchestrator(client, id, (o) => optimisticIndependence(o, isIndependent));
      return { snapshot };
    },
    onError: (_error: unknown, _vars: unknown, context: { snapshot: Snapshot } | undefined) => {
      context?.snapshot.forEach(([key, data]) => client.setQueryData(key, data));
    },
    onSuccess: (result: { is_independent: boolean; status: Orchestrator['status'] }, { id }: { id: string }) => {
      updateCachedOrchestrator(client, id, (o) => ({
        ...o,
        is_independent: result.is_independent,
        status: result.status,
      }));
    },
    onSettled: () => {
      void client.invalidateQueries({ queryKey: keys.overview });
      void client.invalidateQueries({ queryKey: ['messages'] });
    },
  };
}

export function useSetIndependence() {
  return useMutation(independenceMutation(useQueryClient()));
}

/** Accept or dismiss a pending message; it leaves the pending lists at once. */
export function useDecideMessage() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ id, status }: { id: string; status: Decision }) =>
      unwrap(
        api.PUT('/api/v1/internal/messages/{message_id}/status', {
          params: { path: { message_id: id } },
          body: { status },
        }),
      ),
    onSuccess: (result) => {
      client.setQueriesData<Message[]>({ queryKey: ['messages'] }, (list) =>
        list?.map((m) => (m.id === result.data.id ? result.data : m)),
      );
    },
    onSettled: () => {
      void client.invalidateQueries({ queryKey: ['messages'] });
      void client.invalidateQueries({ queryKey: keys.overview });
    },
  });
}

export function useCreateMessage(orchestratorId: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: { message_type: string; content: string }) =>
      unwrap(
        api.POST('/api/v1/internal/orchestrators/{orchestrator_id}/messages', {
          params: { path: { orchestrator_id: orchestratorId } },
          body,
        }),
      ),
    onSettled: () => {
      void client.invalidateQueries({ queryKey: ['messages'] });
      void client.invalidateQueries({ queryKey: keys.overview });
    },
  });
}

export function useUpdateConfig(orchestratorId: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (sessionConfig: Record<string, unknown>) =>
      unwrap(
        api.PUT('/api/v1/internal/orchestrators/{orchestrator_id}/config', {
          params: { path: { orchestrator_id: orchestratorId } },
          body: { session_config: sessionConfig },
        }),
      ),
    onSuccess: (result) => {
      client.setQueryData(keys.orchestrator(orchestratorId), result.data);
    },
  });
}

export function useCreateOrganization() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: NewOrganization) => unwrap(api.POST('/api/v1/controller/organizations', { body })),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ['organizations'] });
      void client.invalidateQueries({ queryKey: keys.overview });
    },
  });
}

// ---- operator accounts (superadmin) ----

export function useUsers(page: number, pageSize: number, enabled = true) {
  return useQuery({
    queryKey: keys.users(page, pageSize),
    queryFn: async () =>
      (await unwrap(api.GET('/api/v1/internal/users', { params: { query: { page, page_size: pageSize } } }))).data,
    placeholderData: keepPreviousData,
    enabled,
  });
}

/** Every organization (up to 100), for the organization picker of the users form. */
export function useAllOrganizations(enabled = true) {
  return useOrganizations(1, 100, enabled);
}

export function useCreateUser() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: NewUser) => unwrap(api.POST('/api/v1/internal/users', { body })),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ['users'] });
      void client.invalidateQueries({ queryKey: keys.overview });
    },
  });
}

/** Role, organizations, disabled flag or a new password; the user's sessions end. */
export function useUpdateUser() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ username, body }: { username: string; body: UserUpdate }) =>
      unwrap(api.PUT('/api/v1/internal/users/{username}', { params: { path: { username } }, body })),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ['users'] });
    },
  });
}

export function useDeleteUser() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (username: string) =>
      unwrap(api.DELETE('/api/v1/internal/users/{username}', { params: { path: { username } } })),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ['users'] });
      void client.invalidateQueries({ queryKey: keys.overview });
    },
  });
}

// ---- enrollment tokens of an organization ----

/** Newest first, revoked ones included (they show as revoked). */
export function useEnrollmentTokens(organizationId: string, page: number, pageSize: number) {
  return useQuery({
    queryKey: keys.enrollmentTokens(organizationId, page, pageSize),
    queryFn: async () =>
      (
        await unwrap(
          api.GET('/api/v1/internal/organizations/{organization_id}/enrollment-tokens', {
            params: {
              path: { organization_id: organizationId },
              query: { page, page_size: pageSize, include_revoked: true },
            },
          }),
        )
      ).data,
    placeholderData: keepPreviousData,
  });
}

/** Answers the secret (`token`) once: the caller shows it and never stores it. */
export function useCreateEnrollmentToken(organizationId: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: NewEnrollmentToken) =>
      unwrap(
        api.POST('/api/v1/internal/organizations/{organization_id}/enrollment-tokens', {
          params: { path: { organization_id: organizationId } },
          body,
        }),
      ),
    onSettled: () => {
      void client.invalidateQueries({ queryKey: ['enrollment-tokens', organizationId] });
    },
  });
}

/** Revokes at once; the controller closes every socket that registered with it (4001). */
export function useRevokeEnrollmentToken(organizationId: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (credentialId: string) =>
      unwrap(
        api.DELETE('/api/v1/internal/enrollment-tokens/{credential_id}', {
          params: { path: { credential_id: credentialId } },
        }),
      ),
    onSettled: () => {
      void client.invalidateQueries({ queryKey: ['enrollment-tokens', organizationId] });
    },
  });
}
