// Names for the generated API types (src/api/schema.d.ts, from the backend's OpenAPI
// document, and src/api/status-event.d.ts, from docs/schemas/status.json). Nothing here is
// written by hand: each alias points into the generated files.
import type { components, paths } from './schema';
import type { components as eventComponents } from './status-event';

type Schemas = components['schemas'];

export type Status = Schemas['Status'];
export type Orchestrator = Schemas['OrchestratorRecord'];
export type Organization = Schemas['OrganizationRecord'];
export type Overview = Schemas['Overview'];
export type CostReport = Schemas['CostReport'];
export type CostPoint = Schemas['CostPoint'];
export type CostBucket = Schemas['CostBucket'];
export type Granularity = Schemas['Granularity'];
export type AuditRecord = Schemas['AuditRecord'];
export type ConnectionRecord = Schemas['ConnectionRecord'];
export type Message = Schemas['MessageRecord'];
export type MessageStatus = Schemas['MessageStatus'];
export type Decision = Schemas['Decision'];
export type LoginUser = Schemas['LoginUser'];
export type Me = Schemas['Me'];
export type ErrorBody = Schemas['ErrorBody'];
export type NewOrganization = Schemas['NewOrganization'];
export type Role = Schemas['Role'];
export type User = Schemas['UserRecord'];
export type NewUser = Schemas['NewUserRequest'];
export type UserUpdate = Schemas['UserUpdateRequest'];
export type EnrollmentToken = Schemas['OrchestratorCredentialRecord'];
export type NewEnrollmentToken = Schemas['NewCredentialRequest'];

/** The payload of the SSE `status` event. */
export type StatusEvent = eventComponents['schemas']['StatusEvent'];

/** One page of a listing, as every paginated endpoint returns it. */
export type OrchestratorPage =
  paths['/api/v1/controller/orchestrators']['get']['responses'][200]['content']['application/json']['data'];
export type OrganizationPage =
  paths['/api/v1/controller/organizations']['get']['responses'][200]['content']['application/json']['data'];
export type UserPage =
  paths['/api/v1/internal/users']['get']['responses'][200]['content']['application/json']['data'];
export type EnrollmentTokenPage =
  paths['/api/v1/internal/organizations/{organization_id}/enrollment-tokens']['get']['responses'][200]['content']['application/json']['data'];
export type AuditPage =
  paths['/api/v1/controller/logs']['get']['responses'][200]['content']['application/json']['data'];

export type OrchestratorListQuery = NonNullable<
  paths['/api/v1/controller/orchestrators']['get']['parameters']['query']
>;
export type AuditQuery = NonNullable<paths['/api/v1/controller/logs']['get']['parameters']['query']>;
export type CostQuery = NonNullable<paths['/api/v1/controller/costs']['get']['parameters']['query']>;
export type MessageListQuery = NonNullable<
  paths['/api/v1/internal/messages']['get']['parameters']['query']
>;
