//! Records read and written through the [`crate::Store`] trait. Records returned by the API
//! derive `Serialize` + `ToSchema` so the OpenAPI document describes them exactly.

use chrono::{DateTime, Utc};
use moolai_protocol::{DeliveredMessage, Dialect, Provisioning, Status};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// One page of a listing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: u32,
    pub page_size: u32,
}

/// 1-based page and a page size of at least 1.
#[must_use]
pub fn page_bounds(page: u32, page_size: u32) -> (u32, u32) {
    (page.max(1), page_size.max(1))
}

/// How many rows come before 1-based `page` of `page_size`.
#[must_use]
pub fn page_offset(page: u32, page_size: u32) -> i64 {
    (i64::from(page) - 1) * i64::from(page_size)
}

/// Who did something, for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `user:<name>`, `token:<name>`, `orchestrator:<id>` or `system`.
    pub name: String,
    pub client_addr: Option<String>,
}

impl Actor {
    #[must_use]
    pub fn system() -> Self {
        Self {
            name: "system".into(),
            client_addr: None,
        }
    }
}

// ---- orchestrator-side writes ---------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct HelloRegistration {
    pub orchestrator_id: String,
    /// Organization claimed by the hello (or granted by its credential).
    pub organization_id: Option<String>,
    /// Used when neither the hello nor an existing row names an organization.
    pub default_organization_id: String,
    pub name: Option<String>,
    pub location: Option<String>,
    pub features: Option<Value>,
    pub metadata: Map<String, Value>,
    pub session_id: String,
    pub edge_id: String,
    pub remote_addr: Option<String>,
    pub dialect: Dialect,
    /// The orchestrator credential the socket presented (`None`: an unauthenticated legacy
    /// client under `ORCHESTRATOR_AUTH=open`). Recorded on the connection and the instance so
    /// that revoking the credential can close the sockets that used it. The store refuses the
    /// hello when the credential was revoked in the meantime (checked inside the same
    /// transaction, so a revocation racing a hello never leaves a socket open), and when it is
    /// an enrollment credential for an orchestrator that has its own active credential.
    pub credential_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub provisioning: Provisioning,
    pub organization_id: String,
    /// Derived status before this hello (`None` for a new orchestrator).
    pub previous_status: Option<Status>,
    /// Derived status after it.
    pub status: Status,
    pub last_seen: Option<DateTime<Utc>>,
    pub pending_messages: Vec<DeliveredMessage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatWrite {
    pub orchestrator_id: String,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsageWrite {
    pub orchestrator_id: String,
    pub organization_id: String,
    pub model: Option<String>,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost: f64,
    pub reported_at: DateTime<Utc>,
}

/// A stored status that changed.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub orchestrator_id: String,
    pub organization_id: String,
    pub previous: Option<Status>,
    pub current: Status,
    pub is_independent: bool,
    pub last_seen: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepOutcome {
    pub changes: Vec<StatusChange>,
    /// Why the sweep did nothing, when it refused (another replica holds the lock, or the
    /// whole fleet looks silent at once).
    pub skipped: Option<String>,
}

// ---- orchestrators ---------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrchestratorRecord {
    pub orchestrator_id: String,
    pub organization_id: String,
    pub organization_name: Option<String>,
    pub name: Option<String>,
    pub location: Option<String>,
    /// Derived at read time: `independent`, `active` or `inactive`.
    pub status: Status,
    pub last_seen: Option<DateTime<Utc>>,
    pub is_independent: bool,
    /// True while a socket of this orchestrator is registered and has not disconnected.
    pub connected: bool,
    pub health_status: String,
    #[schema(value_type = Object)]
    pub metadata: Value,
    #[schema(value_type = Object)]
    pub features: Value,
    #[schema(value_type = Object)]
    pub session_config: Value,
    pub config_version: i64,
    #[schema(value_type = Option<Object>)]
    pub config_snapshot: Option<Value>,
    pub config_snapshot_at: Option<DateTime<Utc>>,
    pub privacy_mode: bool,
    pub monitoring_enabled: bool,
    pub session_id: Option<String>,
    pub edge_id: Option<String>,
    /// Client version from the hello metadata, when reported.
    pub version: Option<String>,
    pub last_activity: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Which version of an orchestrator's row a read would return, and its derived status then:
/// two reads with the same `version` and `status` return the same record (the version
/// changes with every write of the row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrchestratorVersion {
    pub orchestrator_id: String,
    pub version: i64,
    pub status: Status,
}

/// Every orchestrator's [`OrchestratorFacts`], with the database's next transaction id when
/// they were read (64-bit, never wrapping): a later read with a lower one means the database
/// went back (restored to an earlier point, or a standby promoted after losing transactions)
/// and row versions seen before may be handed out again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetFacts {
    pub next_transaction: i64,
    /// The database's clock then (statuses are derived on it).
    pub database_now: DateTime<Utc>,
    pub orchestrators: Vec<OrchestratorFacts>,
}

/// An orchestrator's row version with what its status and a listing's filters depend on:
/// one row of a view of the whole fleet kept in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrchestratorFacts {
    pub orchestrator_id: String,
    pub organization_id: String,
    pub version: i64,
    pub last_seen: Option<DateTime<Utc>>,
    pub is_independent: bool,
    /// Set by an explicit disconnect of the current session.
    pub disconnected: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrchestratorQuery {
    /// 1-based.
    pub page: u32,
    pub page_size: u32,
    pub status: Option<Status>,
    pub organization_id: Option<String>,
    /// Case-insensitive substring of id, name or organization id.
    pub search: Option<String>,
    /// Only these organizations (`None`: all). Set from the caller's role, never from input.
    pub scope: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NewOrchestrator {
    pub orchestrator_id: String,
    pub organization_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub features: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub session_config: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

impl NewOrchestrator {
    /// An orchestrator known by its id and organization only (the rest comes with its hello).
    #[must_use]
    pub fn new(orchestrator_id: impl Into<String>, organization_id: impl Into<String>) -> Self {
        Self {
            orchestrator_id: orchestrator_id.into(),
            organization_id: organization_id.into(),
            name: None,
            location: None,
            features: None,
            session_config: None,
            metadata: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct IndependenceChange {
    pub previous: bool,
    pub record: OrchestratorRecord,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionRecord {
    pub connection_id: String,
    pub orchestrator_id: String,
    /// `connected` or `disconnected`.
    pub status: String,
    pub edge_id: Option<String>,
    pub remote_addr: Option<String>,
    pub connected_at: DateTime<Utc>,
    pub disconnected_at: Option<DateTime<Utc>>,
    pub disconnect_reason: Option<String>,
}

// ---- organizations ---------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrganizationRecord {
    pub organization_id: String,
    pub name: String,
    pub location: Option<String>,
    /// `active` when at least one of its orchestrators is active, else `inactive`.
    pub status: String,
    pub is_independent: bool,
    pub is_active: bool,
    #[schema(value_type = Object)]
    pub metadata: Value,
    #[schema(value_type = Object)]
    pub features: Value,
    #[schema(value_type = Object)]
    pub settings: Value,
    pub orchestrator_count: i64,
    pub active_orchestrators: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NewOrganization {
    pub organization_id: String,
    pub name: String,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub features: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
}

// ---- overview and costs ----------------------------------------------------------------------

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Overview {
    pub total_organizations: i64,
    pub total_orchestrators: i64,
    pub active_orchestrators: i64,
    pub inactive_orchestrators: i64,
    pub independent_orchestrators: i64,
    pub total_users: i64,
    pub pending_messages: i64,
    /// Reported usage since the first day of the current month (UTC).
    pub cost_this_month: f64,
    pub requests_this_month: i64,
    pub tokens_this_month: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    #[default]
    Day,
    Week,
    Month,
}

impl Granularity {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CostQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub organization_id: Option<String>,
    pub orchestrator_id: Option<String>,
    pub granularity: Granularity,
    /// Only these organizations (`None`: all).
    pub scope: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct UsageTotals {
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
    pub cost: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CostBucket {
    /// Organization id, orchestrator id or model name (`unknown` when not reported).
    pub key: String,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CostPoint {
    pub period_start: DateTime<Utc>,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CostReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub granularity: Granularity,
    pub totals: UsageTotals,
    pub by_organization: Vec<CostBucket>,
    pub by_orchestrator: Vec<CostBucket>,
    pub by_model: Vec<CostBucket>,
    pub series: Vec<CostPoint>,
}

// ---- messages --------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Pending,
    Accepted,
    Dismissed,
}

impl MessageStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Dismissed => "dismissed",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "accepted" => Self::Accepted,
            "dismissed" => Self::Dismissed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub orchestrator_id: String,
    /// `recommendation` or `monitoring` (validated by the caller).
    pub message_type: String,
    pub content: String,
    pub metadata: Value,
    /// `api` or `orchestrator`.
    pub source: String,
    pub actor: Actor,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageRecord {
    /// `msg_` + a UUIDv7: unique and time-ordered, no same-second collisions.
    pub id: String,
    pub orchestrator_id: String,
    pub organization_id: Option<String>,
    pub message_type: String,
    pub content: String,
    #[schema(value_type = Object)]
    pub message_metadata: Value,
    pub status: MessageStatus,
    pub source: String,
    /// The dashboard hides messages of independent orchestrators.
    pub orchestrator_is_independent: bool,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl MessageRecord {
    /// The frame sent to the orchestrator once accepted.
    #[must_use]
    pub fn to_delivered(&self) -> DeliveredMessage {
        DeliveredMessage {
            id: self.id.clone(),
            orchestrator_id: self.orchestrator_id.clone(),
            message_type: self.message_type.clone(),
            content: self.content.clone(),
            metadata: self.message_metadata.clone(),
            status: self.status.as_str().to_owned(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageQuery {
    pub status: Option<MessageStatus>,
    pub message_type: Option<String>,
    pub orchestrator_id: Option<String>,
    pub organization_id: Option<String>,
    /// Newest first, at most this many (the API bounds it).
    pub limit: u32,
    /// Only these organizations (`None`: all).
    pub scope: Option<Vec<String>>,
}

// ---- audit and sessions ----------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub actor: Actor,
    /// e.g. `auth.login`, `orchestrator.independence`, `message.status`.
    pub action: String,
    /// e.g. `orchestrator:orch-001`.
    pub target: Option<String>,
    pub organization_id: Option<String>,
    pub details: Value,
    pub success: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub client_addr: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub organization_id: Option<String>,
    #[schema(value_type = Object)]
    pub details: Value,
    pub success: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    pub page: u32,
    pub page_size: u32,
    pub action: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub organization_id: Option<String>,
    /// Only entries `at >= from`.
    pub from: Option<DateTime<Utc>>,
    /// Only entries `at < to`.
    pub to: Option<DateTime<Utc>>,
    /// Only successful (`true`) or failed (`false`) attempts.
    pub success: Option<bool>,
    /// Only entries of these organizations (`None`: all, including entries without one).
    pub scope: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    /// SHA-256 of the token, hex; the token itself is never stored.
    pub token_hash: String,
    pub username: String,
    pub role: String,
    pub expires_at: DateTime<Utc>,
    pub client_addr: Option<String>,
}

/// A live login session with its user's *current* role and organizations (a role change or a
/// disabled account takes effect on the next request, not at the next login).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub username: String,
    pub role: Role,
    pub organization_ids: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

// ---- operators and their credentials ---------------------------------------------------------

/// What an operator (or an API token) may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, every organization.
    Superadmin,
    /// Reads and operator writes, only in the organizations assigned.
    OrgAdmin,
    /// Reads only, only in the organizations assigned.
    Viewer,
}

impl Role {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Superadmin => "superadmin",
            Self::OrgAdmin => "org_admin",
            Self::Viewer => "viewer",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "superadmin" => Self::Superadmin,
            "org_admin" => Self::OrgAdmin,
            "viewer" => Self::Viewer,
            _ => return None,
        })
    }

    /// Superadmin > org_admin > viewer.
    #[must_use]
    pub fn rank(self) -> u8 {
        match self {
            Self::Superadmin => 2,
            Self::OrgAdmin => 1,
            Self::Viewer => 0,
        }
    }

    /// True when this role includes everything `other` may do.
    #[must_use]
    pub fn at_least(self, other: Self) -> bool {
        self.rank() >= other.rank()
    }

    /// Superadmins see every organization; the other roles only those assigned.
    #[must_use]
    pub fn is_scoped(self) -> bool {
        self != Self::Superadmin
    }
}

/// An operator account as the API shows it (never with its password hash).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UserRecord {
    pub username: String,
    pub role: Role,
    /// Organizations an `org_admin` or `viewer` may see (ignored for a superadmin).
    pub organization_ids: Vec<String>,
    /// A disabled account cannot log in and its sessions stop working.
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user with the hash their password is checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct UserLogin {
    pub user: UserRecord,
    /// PHC string (argon2id); `None` for an account that cannot log in with a password.
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub username: String,
    pub role: Role,
    /// PHC string (argon2id), computed by the caller: the store never sees a password.
    pub password_hash: String,
    /// Must name existing organizations ([`crate::StoreError::NotFound`] otherwise).
    pub organization_ids: Vec<String>,
}

/// Changes to a user; `None` leaves a field as it is. Any change ends the user's sessions
/// (they log in again with the new role, organizations or password).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserUpdate {
    pub role: Option<Role>,
    pub password_hash: Option<String>,
    pub organization_ids: Option<Vec<String>>,
    pub disabled: Option<bool>,
}

impl UserUpdate {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.role.is_none()
            && self.password_hash.is_none()
            && self.organization_ids.is_none()
            && self.disabled.is_none()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewApiToken {
    pub name: String,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    pub role: Role,
    pub organization_ids: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A machine credential for the controller API (the token itself is shown once, at creation).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ApiTokenRecord {
    /// `apt_` + a UUIDv7.
    pub token_id: String,
    pub name: String,
    pub role: Role,
    pub organization_ids: Vec<String>,
    /// The audit actor that created it, e.g. `user:ops`.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What an orchestrator credential lets a socket claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// Any orchestrator id of one organization (new ones are registered in it).
    Enrollment,
    /// Exactly one existing orchestrator.
    Orchestrator,
}

impl CredentialKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enrollment => "enrollment",
            Self::Orchestrator => "orchestrator",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "enrollment" => Self::Enrollment,
            "orchestrator" => Self::Orchestrator,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewOrchestratorCredential {
    pub kind: CredentialKind,
    pub organization_id: String,
    /// Required for [`CredentialKind::Orchestrator`] (the orchestrator must exist in
    /// `organization_id`), absent for enrollment.
    pub orchestrator_id: Option<String>,
    pub name: Option<String>,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// An enrollment or orchestrator token (never the token itself).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OrchestratorCredentialRecord {
    /// `crd_` + a UUIDv7.
    pub credential_id: String,
    pub kind: CredentialKind,
    pub organization_id: String,
    pub orchestrator_id: Option<String>,
    pub name: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl OrchestratorCredentialRecord {
    /// Not revoked and not expired at `now`.
    #[must_use]
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CredentialQuery {
    pub page: u32,
    pub page_size: u32,
    pub kind: Option<CredentialKind>,
    pub organization_id: Option<String>,
    pub orchestrator_id: Option<String>,
    /// Revoked credentials are listed too when true.
    pub include_revoked: bool,
    /// Only these organizations (`None`: all).
    pub scope: Option<Vec<String>>,
}

/// A socket session registered with a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSession {
    pub orchestrator_id: String,
    pub organization_id: String,
    pub session_id: String,
}

/// A revoked credential and the current sessions that used it (to be closed).
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialRevocation {
    pub record: OrchestratorCredentialRecord,
    pub sessions: Vec<CredentialSession>,
}

/// The level-triggered state of one orchestrator, as [`Store::supervision`](crate::Store::supervision)
/// returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Supervision {
    pub orchestrator_id: String,
    /// The session that registered last.
    pub session_id: Option<String>,
    pub is_independent: bool,
    pub config_version: i64,
    pub session_config: Value,
}

impl From<(String, Option<String>, bool, i64, Value)> for Supervision {
    /// From a row of (orchestrator_id, session_id, is_independent, config_version,
    /// session_config), the columns both backends select.
    fn from(
        (orchestrator_id, session_id, is_independent, config_version, session_config): (
            String,
            Option<String>,
            bool,
            i64,
            Value,
        ),
    ) -> Self {
        Self {
            orchestrator_id,
            session_id,
            is_independent,
            config_version,
            session_config,
        }
    }
}
