//! The storage contract of the controller: the [`Store`] trait and the records it reads
//! and writes.
//!
//! Backends live in their own crates (`moolai-store-postgres`; an embedded one can be added
//! the same way) and own their migrations. Services depend on `Arc<dyn Store>` only, so a
//! backend is chosen once at start-up and no `if postgres` leaks into the services.
//!
//! Rules every backend keeps (the conformance tests in each backend check them):
//! - status is derived at read time from `is_independent`, `last_seen` (within the TTL the
//!   backend was built with) and `disconnected_at`, never trusted from a stored column;
//! - a heartbeat flush is one statement that skips independent orchestrators inside the
//!   write itself and never moves `last_seen` backwards;
//! - a disconnect only counts for the session that is still current.
//!
//! This crate does no I/O. It also holds the token prefixes and [`token_hash`], shared by the
//! api (which mints tokens) and state (which checks orchestrator tokens).

mod records;

#[cfg(feature = "conformance")]
pub mod conformance;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use moolai_protocol::{DeliveredMessage, Provisioning, Status};
use serde_json::{Map, Value};

pub use records::*;

/// Prefix of API tokens (machines calling the controller API).
pub const API_TOKEN_PREFIX: &str = "moo_api_";
/// Prefix of orchestrator enrollment tokens.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "moo_enr_";
/// Prefix of per-orchestrator tokens.
pub const ORCHESTRATOR_TOKEN_PREFIX: &str = "moo_orc_";

/// SHA-256 of a token, hex: what the store keeps and looks tokens up by. Tokens are 32 random
/// bytes, so a fast hash is enough (there is nothing to brute-force) and the lookup is one
/// index probe; passwords, which are guessable, are hashed with argon2id instead.
#[must_use]
pub fn token_hash(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing named does not exist (404).
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness or state rule refused the write (409).
    #[error("{0}")]
    Conflict(String),
    /// The request broke a data rule the API did not catch (422).
    #[error("{0}")]
    Invalid(String),
    /// A credential is unknown, revoked or expired (401; for orchestrators, the hello is
    /// rejected).
    #[error("{0}")]
    Unauthorized(String),
    /// The database cannot be reached or refused to work (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else (500; detail logged, never returned).
    #[error("storage error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- health -------------------------------------------------------------------------

    /// One cheap round trip to the database.
    async fn ping(&self) -> StoreResult<()>;

    // ---- writes that come from orchestrators (state service) -----------------------------

    /// Registers a hello in one transaction: creates the organization when missing, upserts
    /// the orchestrator (metadata, session, `disconnected_at = NULL`, `last_seen` unless
    /// independent), records the connection, and returns its provisioning.
    /// An orchestrator that already exists keeps its organization; a hello claiming another
    /// one is refused with [`StoreError::Conflict`]. With a credential, the credential must
    /// still be active ([`StoreError::Unauthorized`] otherwise, decided inside the
    /// transaction). A new orchestrator is audited as `orchestrator.register`.
    async fn register_hello(&self, hello: &HelloRegistration) -> StoreResult<Registered>;

    /// Registers many hellos; each gets the outcome [`Store::register_hello`] would give it,
    /// in the order given. A backend may commit them together (PostgreSQL: one transaction of
    /// set-based statements per batch); this default registers them one by one.
    async fn register_hellos(&self, hellos: &[HelloRegistration]) -> Vec<StoreResult<Registered>> {
        let mut outcomes = Vec::with_capacity(hellos.len());
        for hello in hellos {
            outcomes.push(self.register_hello(hello).await);
        }
        outcomes
    }

    /// Writes a batch of heartbeats in one statement: `last_seen = GREATEST(last_seen, t)`
    /// for orchestrators that are not independent (checked in the same statement). Returns the
    /// orchestrators whose stored status changed to active.
    async fn flush_heartbeats(&self, beats: &[HeartbeatWrite]) -> StoreResult<Vec<StatusChange>>;

    /// Appends usage rows (one statement).
    async fn record_usage(&self, rows: &[UsageWrite]) -> StoreResult<()>;

    /// Marks the orchestrator disconnected if `session_id` is still its current session.
    async fn record_disconnect(
        &self,
        orchestrator_id: &str,
        session_id: &str,
        reason: &str,
    ) -> StoreResult<Option<StatusChange>>;

    /// Writes `status = 'inactive'` for orchestrators whose heartbeat is older than the TTL or
    /// who disconnected, returning the transitions. Only one caller at a time does the work
    /// (others get an empty outcome), and when the whole fleet looks silent at once the sweep
    /// refuses to flip it (the controller is the likely problem) and says so.
    async fn sweep_expired(&self) -> StoreResult<SweepOutcome>;

    /// Merges keys into the orchestrator's metadata. `false` when it does not exist.
    async fn update_metadata(
        &self,
        orchestrator_id: &str,
        metadata: &Map<String, Value>,
    ) -> StoreResult<bool>;

    /// Stores the orchestrator's last reported effective configuration.
    async fn save_config_snapshot(
        &self,
        orchestrator_id: &str,
        snapshot: &Value,
    ) -> StoreResult<bool>;

    /// Current provisioning of an orchestrator.
    async fn provisioning(&self, orchestrator_id: &str) -> StoreResult<Option<Provisioning>>;

    /// What the controller has told (or must tell) these orchestrators: their current
    /// session, independence and configuration. Unknown (deregistered) ids are absent. Used
    /// by an edge whose connection to the broker came back, to repair what it missed.
    async fn supervision(&self, orchestrator_ids: &[String]) -> StoreResult<Vec<Supervision>>;

    /// Records that an accepted message was written to the orchestrator's socket.
    async fn mark_delivered(&self, message_id: &str, session_id: &str) -> StoreResult<()>;

    /// Accepted messages not yet delivered to this orchestrator, oldest first.
    async fn pending_deliveries(&self, orchestrator_id: &str)
    -> StoreResult<Vec<DeliveredMessage>>;

    // ---- reads and operator writes (api service) ------------------------------------------

    async fn list_orchestrators(
        &self,
        q: &OrchestratorQuery,
    ) -> StoreResult<Page<OrchestratorRecord>>;

    /// How many orchestrators match `q`'s filters (its page is ignored): the `total` of
    /// [`Store::list_orchestrators`], for a caller that keeps it.
    async fn count_orchestrators(&self, q: &OrchestratorQuery) -> StoreResult<i64> {
        let first = OrchestratorQuery {
            page: 1,
            page_size: 1,
            ..q.clone()
        };
        Ok(self.list_orchestrators(&first).await?.total)
    }

    /// The items of [`Store::list_orchestrators`] without counting the matches.
    async fn orchestrator_page_items(
        &self,
        q: &OrchestratorQuery,
    ) -> StoreResult<Vec<OrchestratorRecord>> {
        Ok(self.list_orchestrators(q).await?.items)
    }

    /// The ids of every orchestrator matching `q`'s filters (its page is ignored), in listing
    /// order, when there are at most `limit`; `None` when there are more. A caller that keeps
    /// them reads any page with [`Store::orchestrators_in_order`], by primary key, instead of
    /// walking the listing up to the page.
    async fn orchestrator_order(
        &self,
        q: &OrchestratorQuery,
        limit: usize,
    ) -> StoreResult<Option<Vec<String>>>;

    /// The orchestrators of `ids` (taken from [`Store::orchestrator_order`]) that still match
    /// `q`'s filters (its page is ignored), in listing order; deleted ones and ones that no
    /// longer match are left out.
    async fn orchestrators_in_order(
        &self,
        q: &OrchestratorQuery,
        ids: &[String],
    ) -> StoreResult<Vec<OrchestratorRecord>>;

    /// The versions of what [`Store::orchestrators_in_order`] would return for the same
    /// arguments — far less to read and send than the records, so a caller that keeps records
    /// by version reads only the changed ones. `None` when this store has no row versions.
    async fn orchestrator_versions_in_order(
        &self,
        _q: &OrchestratorQuery,
        _ids: &[String],
    ) -> StoreResult<Option<Vec<OrchestratorVersion>>> {
        Ok(None)
    }

    /// Every orchestrator's version and status facts, for a view of the fleet kept in memory
    /// that answers [`Store::orchestrator_versions_in_order`] without a read per page. `None`
    /// when this store has no row versions.
    async fn orchestrator_facts(&self) -> StoreResult<Option<FleetFacts>> {
        Ok(None)
    }

    async fn get_orchestrator(
        &self,
        orchestrator_id: &str,
    ) -> StoreResult<Option<OrchestratorRecord>>;

    /// Operator pre-registration, audited. [`StoreError::Conflict`] when the id exists.
    async fn register_orchestrator(
        &self,
        new: &NewOrchestrator,
        actor: &Actor,
    ) -> StoreResult<OrchestratorRecord>;

    /// Deletes the orchestrator (its messages and usage stay for the record) and revokes its
    /// orchestrator credentials, so a later orchestrator of the same id cannot use them.
    /// Returns what was deleted.
    async fn deregister_orchestrator(
        &self,
        orchestrator_id: &str,
        actor: &Actor,
    ) -> StoreResult<Option<OrchestratorRecord>>;

    /// Sets `is_independent`, audited in the same transaction.
    async fn set_independence(
        &self,
        orchestrator_id: &str,
        is_independent: bool,
        actor: &Actor,
    ) -> StoreResult<Option<IndependenceChange>>;

    /// Replaces `session_config` and bumps `config_version`, audited.
    async fn update_session_config(
        &self,
        orchestrator_id: &str,
        session_config: &Value,
        actor: &Actor,
    ) -> StoreResult<Option<i64>>;

    /// Organizations, restricted to `scope` when given.
    async fn list_organizations(
        &self,
        page: u32,
        page_size: u32,
        scope: Option<&[String]>,
    ) -> StoreResult<Page<OrganizationRecord>>;

    async fn get_organization(
        &self,
        organization_id: &str,
    ) -> StoreResult<Option<OrganizationRecord>>;

    /// [`StoreError::Conflict`] when the id exists.
    async fn create_organization(
        &self,
        new: &NewOrganization,
        actor: &Actor,
    ) -> StoreResult<OrganizationRecord>;

    /// Fleet statistics over the organizations of `scope` (every organization when `None`;
    /// a scoped overview counts the users assigned to one of them).
    async fn overview(&self, scope: Option<&[String]>) -> StoreResult<Overview>;

    async fn costs(&self, q: &CostQuery) -> StoreResult<CostReport>;

    /// [`StoreError::NotFound`] when the orchestrator does not exist.
    async fn create_message(&self, new: &NewMessage) -> StoreResult<MessageRecord>;

    async fn list_messages(&self, q: &MessageQuery) -> StoreResult<Vec<MessageRecord>>;

    async fn get_message(&self, message_id: &str) -> StoreResult<Option<MessageRecord>>;

    /// `pending` → `accepted` | `dismissed`. [`StoreError::Conflict`] when the message is not
    /// pending, [`StoreError::NotFound`] when it does not exist. Audited.
    async fn update_message_status(
        &self,
        message_id: &str,
        status: MessageStatus,
        actor: &Actor,
    ) -> StoreResult<MessageRecord>;

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;

    async fn list_audit(&self, q: &AuditQuery) -> StoreResult<Page<AuditRecord>>;

    // ---- operators (api service) ------------------------------------------------------------

    /// Creates an operator, audited as `user.create`. [`StoreError::Conflict`] when the name
    /// is taken, [`StoreError::NotFound`] when an organization does not exist.
    async fn create_user(&self, new: &NewUser, actor: &Actor) -> StoreResult<UserRecord>;

    async fn get_user(&self, username: &str) -> StoreResult<Option<UserRecord>>;

    /// The user and their password hash, for login.
    async fn user_login(&self, username: &str) -> StoreResult<Option<UserLogin>>;

    async fn list_users(&self, page: u32, page_size: u32) -> StoreResult<Page<UserRecord>>;

    /// Applies `update` (audited as `user.update`, never with the hash) and ends the user's
    /// login sessions. `None` when the user does not exist.
    async fn update_user(
        &self,
        username: &str,
        update: &UserUpdate,
        actor: &Actor,
    ) -> StoreResult<Option<UserRecord>>;

    /// Deletes the user and their sessions, audited as `user.delete`. `false` when missing.
    async fn delete_user(&self, username: &str, actor: &Actor) -> StoreResult<bool>;

    async fn create_session(&self, session: &NewSession) -> StoreResult<()>;

    /// The unexpired session with this token hash, with its user's current role and
    /// organizations; `None` when the user was deleted or disabled.
    async fn session_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<SessionRecord>>;

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;

    /// Audited as `api_token.create`. [`StoreError::NotFound`] for an unknown organization.
    async fn create_api_token(
        &self,
        new: &NewApiToken,
        actor: &Actor,
    ) -> StoreResult<ApiTokenRecord>;

    /// Newest first, revoked ones included.
    async fn list_api_tokens(&self, page: u32, page_size: u32)
    -> StoreResult<Page<ApiTokenRecord>>;

    /// The API token with this hash, when it is neither revoked nor expired.
    async fn api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiTokenRecord>>;

    /// Sets `revoked_at` (once; revoking again changes nothing), audited as
    /// `api_token.revoke`. `None` when no such token exists.
    async fn revoke_api_token(
        &self,
        token_id: &str,
        actor: &Actor,
    ) -> StoreResult<Option<ApiTokenRecord>>;

    // ---- orchestrator credentials ---------------------------------------------------------

    /// Audited as `credential.create`. [`StoreError::NotFound`] when the organization (or,
    /// for an orchestrator credential, the orchestrator in that organization) does not exist.
    async fn create_orchestrator_credential(
        &self,
        new: &NewOrchestratorCredential,
        actor: &Actor,
    ) -> StoreResult<OrchestratorCredentialRecord>;

    /// Newest first.
    async fn list_orchestrator_credentials(
        &self,
        q: &CredentialQuery,
    ) -> StoreResult<Page<OrchestratorCredentialRecord>>;

    async fn get_orchestrator_credential(
        &self,
        credential_id: &str,
    ) -> StoreResult<Option<OrchestratorCredentialRecord>>;

    /// The credential with this hash when it is neither revoked nor expired (the hello path).
    async fn orchestrator_credential_by_hash(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<OrchestratorCredentialRecord>>;

    /// Revokes the credential (audited as `credential.revoke`) and returns the current
    /// sessions registered with it, whose sockets the caller closes. `None` when missing.
    async fn revoke_orchestrator_credential(
        &self,
        credential_id: &str,
        actor: &Actor,
    ) -> StoreResult<Option<CredentialRevocation>>;

    /// Connection history (newest first).
    async fn list_connections(
        &self,
        orchestrator_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<ConnectionRecord>>;
}

/// Derives the status shown everywhere from the three facts it depends on.
#[must_use]
pub fn derive_status(
    is_independent: bool,
    last_seen: Option<DateTime<Utc>>,
    disconnected: bool,
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> Status {
    if is_independent {
        Status::Independent
    } else if !disconnected && last_seen.is_some_and(|t| now - t <= ttl) {
        Status::Active
    } else {
        Status::Inactive
    }
}
