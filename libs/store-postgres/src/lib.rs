//! The PostgreSQL backend of the [`Store`] trait.
//!
//! Owns every SQL statement the controller runs and the schema's migrations (applied only by
//! [`PgStore::migrate`], which one actor runs: `moolai-state migrate`). Services never see
//! SQL or sqlx types: they hold an `Arc<dyn Store>`.
//!
//! Modules, grouped by aggregate:
//! - `orchestrators`: hello registration, reads with the derived status, operator writes;
//! - `liveness`: heartbeat flushes, disconnects and the expiry sweep;
//! - `organizations`, `messages`, `reports` (usage, overview, costs), `audit`;
//! - `accounts` (users, login sessions, API tokens) and `credentials` (orchestrator tokens);
//! - `sql`: the status derivation and column lists shared by those queries;
//! - [`testing`]: a throwaway database per test, for this crate's tests and the services'.
//!
//! What it must not do: trust the stored `status` column on reads (it only records the last
//! transition written, to detect the next one), format caller input into SQL, or run a
//! multi-statement write outside a transaction.

mod accounts;
mod audit;
mod credentials;
mod error;
mod hellos;
mod liveness;
mod messages;
mod orchestrators;
mod organizations;
mod reports;
mod rows;
mod sql;
pub mod testing;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use moolai_protocol::{DeliveredMessage, Provisioning};
use moolai_store::{
    Actor, ApiTokenRecord, AuditEntry, AuditQuery, AuditRecord, ConnectionRecord, CostQuery,
    CostReport, CredentialQuery, CredentialRevocation, FleetFacts, HeartbeatWrite,
    HelloRegistration, IndependenceChange, MessageQuery, MessageRecord, MessageStatus, NewApiToken,
    NewMessage, NewOrchestrator, NewOrchestratorCredential, NewOrganization, NewSession, NewUser,
    OrchestratorCredentialRecord, OrchestratorQuery, OrchestratorRecord, OrchestratorVersion,
    OrganizationRecord, Overview, Page, Registered, SessionRecord, StatusChange, Store, StoreError,
    StoreResult, Supervision, SweepOutcome, UsageWrite, UserLogin, UserRecord, UserUpdate,
};
use serde_json::{Map, Value};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

pub use error::mask_database_url;
pub use liveness::SWEEP_LOCK_KEY;

use error::{db_error, url_password};

/// The schema, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// How long a caller waits for a pooled connection (and start-up for the first one) before
/// the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The PostgreSQL [`Store`]. Cloning is cheap (the pool is shared).
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// How long after its last heartbeat an orchestrator still counts as active.
    heartbeat_ttl: Duration,
    /// The same TTL as bound into SQL (`make_interval(secs => ...)`).
    ttl_secs: f64,
    hello_batches: std::sync::Arc<hellos::BatchCounts>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("heartbeat_ttl", &self.heartbeat_ttl)
            .field("pool_size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects eagerly: a bad URL, a refused connection or wrong credentials fail here, with
    /// a message naming the URL (password masked) and `DATABASE_URL`.
    pub async fn connect(
        url: &str,
        heartbeat_ttl: Duration,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let masked = mask_database_url(url);
        let explain = |err: sqlx::Error| {
            let mut detail = err.to_string();
            if let Some(password) = url_password(url) {
                detail = detail.replace(&password, "***");
            }
            let message = format!(
                "cannot connect to PostgreSQL at {masked}: {detail} (set DATABASE_URL to a reachable database)"
            );
            match err {
                sqlx::Error::Configuration(_) => StoreError::Invalid(message),
                _ => StoreError::Unavailable(message),
            }
        };

        let options = PgConnectOptions::from_str(url)
            .map_err(explain)?
            .application_name("moolai-controller");

        // One direct connection first: the pool would retry until its timeout and report
        // only "timed out", while this says "connection refused" or "password authentication
        // failed".
        let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| explain(sqlx::Error::PoolTimedOut))?
            .map_err(explain)?;
        // Closing the probe is best effort: it already did its job.
        let _ = probe.close().await;

        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(explain)?;
        tracing::info!(url = %masked, max_connections, "connected to PostgreSQL");
        Ok(Self::from_pool(pool, heartbeat_ttl))
    }

    /// Wraps an existing pool (tests, or a caller with its own pool settings).
    #[must_use]
    pub fn from_pool(pool: PgPool, heartbeat_ttl: Duration) -> Self {
        Self {
            pool,
            heartbeat_ttl,
            ttl_secs: heartbeat_ttl.as_secs_f64(),
            hello_batches: Default::default(),
        }
    }

    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    #[must_use]
    pub fn heartbeat_ttl(&self) -> Duration {
        self.heartbeat_ttl
    }

    /// Applies the embedded migrations that are missing. Safe to run concurrently (sqlx takes
    /// an advisory lock), but only `moolai-state migrate` is meant to call it.
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => db_error(inner),
            other => StoreError::Other(format!("migration failed: {other}")),
        })
    }

    /// Fails unless every embedded migration has been applied, so a service started against
    /// an unmigrated database says what to do instead of failing on its first query.
    #[tracing::instrument(skip_all)]
    pub async fn check_migrations(&self) -> Result<(), StoreError> {
        const HINT: &str = "database schema is not migrated: run `moolai-state migrate`";
        let has_table: bool =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
        if !has_table {
            return Err(StoreError::Unavailable(format!(
                "{HINT} (no _sqlx_migrations table)"
            )));
        }
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
        let missing: Vec<String> = MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
            .map(|m| format!("{}_{}", m.version, m.description))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "{HINT} (missing: {})",
                missing.join(", ")
            )))
        }
    }
}

pub(crate) use moolai_store::{page_bounds, page_offset};

#[async_trait]
impl Store for PgStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(orchestrator_id = %hello.orchestrator_id, session_id = %hello.session_id))]
    async fn register_hello(&self, hello: &HelloRegistration) -> StoreResult<Registered> {
        self.register_hello_tx(hello).await
    }

    #[tracing::instrument(skip_all, fields(hellos = hellos.len()))]
    async fn register_hellos(&self, hellos: &[HelloRegistration]) -> Vec<StoreResult<Registered>> {
        self.register_hellos_batch(hellos).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(beats = beats.len()))]
    async fn flush_heartbeats(&self, beats: &[HeartbeatWrite]) -> StoreResult<Vec<StatusChange>> {
        self.flush_heartbeats_statement(beats).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rows = rows.len()))]
    async fn record_usage(&self, rows: &[UsageWrite]) -> StoreResult<()> {
        self.insert_usage(rows).await
    }

    #[tracing::instrument(skip_all, fields(orchestrator_id = %orchestrator_id, session_id = %session_id))]
    async fn record_disconnect(
        &self,
        orchestrator_id: &str,
        session_id: &str,
        reason: &str,
    ) -> StoreResult<Option<StatusChange>> {
        self.record_disconnect_tx(orchestrator_id, session_id, reason)
            .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn sweep_expired(&self) -> StoreResult<SweepOutcome> {
        self.sweep_expired_tx().await
    }

    #[tracing::instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
    async fn update_metadata(
        &self,
        orchestrator_id: &str,
        metadata: &Map<String, Value>,
    ) -> StoreResult<bool> {
        self.update_metadata_row(orchestrator_id, metadata).await
    }

    #[tracing::instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
    async fn save_config_snapshot(
        &self,
        orchestrator_id: &str,
        snapshot: &Value,
    ) -> StoreResult<bool> {
        self.save_config_snapshot_row(orchestrator_id, snapshot)
            .await
    }

    #[tracing::instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
    async fn provisioning(&self, orchestrator_id: &str) -> StoreResult<Option<Provisioning>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        orchestrators::provisioning(&mut conn, orchestrator_id).await
    }

    #[tracing::instrument(skip_all, fields(orchestrators = orchestrator_ids.len()))]
    async fn supervision(&self, orchestrator_ids: &[String]) -> StoreResult<Vec<Supervision>> {
        orchestrators::supervision(&self.pool, orchestrator_ids).await
    }

    #[tracing::instrument(skip_all, fields(message_id = %message_id, session_id = %session_id))]
    async fn mark_delivered(&self, message_id: &str, session_id: &str) -> StoreResult<()> {
        self.mark_message_delivered(message_id, session_id).await
    }

    #[tracing::instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
    async fn pending_deliveries(
        &self,
        orchestrator_id: &str,
    ) -> StoreResult<Vec<DeliveredMessage>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        orchestrators::pending_deliveries(&mut conn, orchestrator_id).await
    }

    #[tracing::instrument(skip_all, fields(page = q.page, page_size = q.page_size))]
    async fn list_orchestrators(
        &self,
        q: &OrchestratorQuery,
    ) -> StoreResult<Page<OrchestratorRecord>> {
        self.list_orchestrators_page(q).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn count_orchestrators(&self, q: &OrchestratorQuery) -> StoreResult<i64> {
        self.count_orchestrators_matching(q).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(page = q.page, page_size = q.page_size))]
    async fn orchestrator_page_items(
        &self,
        q: &OrchestratorQuery,
    ) -> StoreResult<Vec<OrchestratorRecord>> {
        self.orchestrator_items(q).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(limit))]
    async fn orchestrator_order(
        &self,
        q: &OrchestratorQuery,
        limit: usize,
    ) -> StoreResult<Option<Vec<String>>> {
        self.orchestrator_ids(q, limit).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(ids = ids.len()))]
    async fn orchestrators_in_order(
        &self,
        q: &OrchestratorQuery,
        ids: &[String],
    ) -> StoreResult<Vec<OrchestratorRecord>> {
        self.orchestrators_by_ids(q, ids).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(ids = ids.len()))]
    async fn orchestrator_versions_in_order(
        &self,
        q: &OrchestratorQuery,
        ids: &[String],
    ) -> StoreResult<Option<Vec<OrchestratorVersion>>> {
        self.orchestrator_versions_by_ids(q, ids).await.map(Some)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn orchestrator_facts(&self) -> StoreResult<Option<FleetFacts>> {
        self.all_orchestrator_facts().await.map(Some)
    }

    #[tracing::instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
    async fn get_orchestrator(
        &self,
        orchestrator_id: &str,
    ) -> StoreResult<Option<OrchestratorRecord>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        orchestrators::fetch(&mut conn, orchestrator_id, self.ttl_secs).await
    }

    #[tracing::instrument(skip_all, fields(orchestrator_id = %new.orchestrator_id))]
    async fn register_orchestrator(
        &self,
        new: &NewOrchestrator,
        actor: &Actor,
    ) -> StoreResult<OrchestratorRecord> {
        self.register_orchestrator_tx(new, actor).await
    }

    #[tracing::instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
    async fn deregister_orchestrator(
        &self,
        orchestrator_id: &str,
        actor: &Actor,
    ) -> StoreResult<Option<OrchestratorRecord>> {
        self.deregister_orchestrator_tx(orchestrator_id, actor)
            .await
    }

    #[tracing::instrument(skip_all, fields(orchestrator_id = %orchestrator_id, is_independent = is_independent))]
    async fn set_independence(
        &self,
        orchestrator_id: &str,
        is_independent: bool,
        actor: &Actor,
    ) -> StoreResult<Option<IndependenceChange>> {
        self.set_independence_tx(orchestrator_id, is_independent, actor)
            .await
    }

    #[tracing::instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
    async fn update_session_config(
        &self,
        orchestrator_id: &str,
        session_config: &Value,
        actor: &Actor,
    ) -> StoreResult<Option<i64>> {
        self.update_session_config_tx(orchestrator_id, session_config, actor)
            .await
    }

    #[tracing::instrument(skip_all, fields(page = page, page_size = page_size))]
    async fn list_organizations(
        &self,
        page: u32,
        page_size: u32,
        scope: Option<&[String]>,
    ) -> StoreResult<Page<OrganizationRecord>> {
        self.organizations_page(page, page_size, scope).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %organization_id))]
    async fn get_organization(
        &self,
        organization_id: &str,
    ) -> StoreResult<Option<OrganizationRecord>> {
        self.organization(organization_id).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %new.organization_id))]
    async fn create_organization(
        &self,
        new: &NewOrganization,
        actor: &Actor,
    ) -> StoreResult<OrganizationRecord> {
        self.create_organization_tx(new, actor).await
    }

    #[tracing::instrument(skip_all)]
    async fn overview(&self, scope: Option<&[String]>) -> StoreResult<Overview> {
        self.overview_row(scope).await
    }

    #[tracing::instrument(skip_all, fields(granularity = q.granularity.as_str()))]
    async fn costs(&self, q: &CostQuery) -> StoreResult<CostReport> {
        self.cost_report(q).await
    }

    #[tracing::instrument(skip_all, fields(orchestrator_id = %new.orchestrator_id, source = %new.source))]
    async fn create_message(&self, new: &NewMessage) -> StoreResult<MessageRecord> {
        self.create_message_tx(new).await
    }

    #[tracing::instrument(skip_all, fields(limit = q.limit))]
    async fn list_messages(&self, q: &MessageQuery) -> StoreResult<Vec<MessageRecord>> {
        self.messages(q).await
    }

    #[tracing::instrument(skip_all, fields(message_id = %message_id))]
    async fn get_message(&self, message_id: &str) -> StoreResult<Option<MessageRecord>> {
        self.message(message_id).await
    }

    #[tracing::instrument(skip_all, fields(message_id = %message_id, status = status.as_str()))]
    async fn update_message_status(
        &self,
        message_id: &str,
        status: MessageStatus,
        actor: &Actor,
    ) -> StoreResult<MessageRecord> {
        self.update_message_status_tx(message_id, status, actor)
            .await
    }

    #[tracing::instrument(skip_all, fields(action = %entry.action))]
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        audit::insert(&mut conn, entry).await
    }

    #[tracing::instrument(skip_all, fields(page = q.page, page_size = q.page_size))]
    async fn list_audit(&self, q: &AuditQuery) -> StoreResult<Page<AuditRecord>> {
        audit::list(&self.pool, q).await
    }

    #[tracing::instrument(skip_all, fields(username = %new.username))]
    async fn create_user(&self, new: &NewUser, actor: &Actor) -> StoreResult<UserRecord> {
        self.create_user_tx(new, actor).await
    }

    #[tracing::instrument(skip_all, fields(username = %username))]
    async fn get_user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        self.user(username).await
    }

    #[tracing::instrument(skip_all)]
    async fn user_login(&self, username: &str) -> StoreResult<Option<UserLogin>> {
        self.user_login_row(username).await
    }

    #[tracing::instrument(skip_all, fields(page = page, page_size = page_size))]
    async fn list_users(&self, page: u32, page_size: u32) -> StoreResult<Page<UserRecord>> {
        self.users_page(page, page_size).await
    }

    #[tracing::instrument(skip_all, fields(username = %username))]
    async fn update_user(
        &self,
        username: &str,
        update: &UserUpdate,
        actor: &Actor,
    ) -> StoreResult<Option<UserRecord>> {
        self.update_user_tx(username, update, actor).await
    }

    #[tracing::instrument(skip_all, fields(username = %username))]
    async fn delete_user(&self, username: &str, actor: &Actor) -> StoreResult<bool> {
        self.delete_user_tx(username, actor).await
    }

    #[tracing::instrument(skip_all, fields(username = %session.username))]
    async fn create_session(&self, session: &NewSession) -> StoreResult<()> {
        self.insert_session(session).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn session_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<SessionRecord>> {
        self.session(token_hash).await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        self.remove_session(token_hash).await
    }

    #[tracing::instrument(skip_all, fields(name = %new.name))]
    async fn create_api_token(
        &self,
        new: &NewApiToken,
        actor: &Actor,
    ) -> StoreResult<ApiTokenRecord> {
        self.create_api_token_tx(new, actor).await
    }

    #[tracing::instrument(skip_all, fields(page = page, page_size = page_size))]
    async fn list_api_tokens(
        &self,
        page: u32,
        page_size: u32,
    ) -> StoreResult<Page<ApiTokenRecord>> {
        self.api_tokens_page(page, page_size).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiTokenRecord>> {
        self.active_api_token(token_hash).await
    }

    #[tracing::instrument(skip_all, fields(token_id = %token_id))]
    async fn revoke_api_token(
        &self,
        token_id: &str,
        actor: &Actor,
    ) -> StoreResult<Option<ApiTokenRecord>> {
        self.revoke_api_token_tx(token_id, actor).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %new.organization_id))]
    async fn create_orchestrator_credential(
        &self,
        new: &NewOrchestratorCredential,
        actor: &Actor,
    ) -> StoreResult<OrchestratorCredentialRecord> {
        self.create_credential_tx(new, actor).await
    }

    #[tracing::instrument(skip_all, fields(page = q.page, page_size = q.page_size))]
    async fn list_orchestrator_credentials(
        &self,
        q: &CredentialQuery,
    ) -> StoreResult<Page<OrchestratorCredentialRecord>> {
        self.credentials_page(q).await
    }

    #[tracing::instrument(skip_all, fields(credential_id = %credential_id))]
    async fn get_orchestrator_credential(
        &self,
        credential_id: &str,
    ) -> StoreResult<Option<OrchestratorCredentialRecord>> {
        self.credential(credential_id).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn orchestrator_credential_by_hash(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<OrchestratorCredentialRecord>> {
        self.active_credential(token_hash).await
    }

    #[tracing::instrument(skip_all, fields(credential_id = %credential_id))]
    async fn revoke_orchestrator_credential(
        &self,
        credential_id: &str,
        actor: &Actor,
    ) -> StoreResult<Option<CredentialRevocation>> {
        self.revoke_credential_tx(credential_id, actor).await
    }

    #[tracing::instrument(skip_all, fields(orchestrator_id = %orchestrator_id, limit = limit))]
    async fn list_connections(
        &self,
        orchestrator_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<ConnectionRecord>> {
        self.connections(orchestrator_id, limit).await
    }
}
