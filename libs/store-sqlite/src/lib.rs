//! The embedded SQLite backend of the [`Store`] trait: the "one binary, zero setup" mode, where
//! the single `moolai` binary keeps everything in one file under `MOOLAI_DATA_DIR` (or the
//! file a `sqlite:` `DATABASE_URL` names) and needs no database server.
//!
//! It keeps the PostgreSQL backend's semantics exactly (the conformance suite of
//! `moolai-store` runs against both); where SQLite differs, the module that works around the
//! difference says how. The main ones:
//! - times are TEXT in one fixed RFC 3339 shape (see `time`), written from this process's
//!   clock, so comparing strings compares times;
//! - SQLite has one writer at a time. Every write takes this store's write gate (a FIFO async
//!   mutex) and write transactions start with `BEGIN IMMEDIATE`, so a transaction never has to
//!   upgrade a read lock to a write lock (the upgrade is what fails with `SQLITE_BUSY` at once,
//!   whatever the busy timeout). The busy timeout still covers another process on the file;
//! - no advisory locks: one process owns the file, and its writes are serialized anyway.
//!
//! Modules, grouped by aggregate like the PostgreSQL crate:
//! - `orchestrators`: hello registration, reads with the derived status, operator writes;
//! - `liveness`: heartbeat flushes, disconnects and the expiry sweep;
//! - `organizations`, `messages`, `reports` (usage, overview, costs), `audit`;
//! - `accounts` (users, login sessions, API tokens) and `credentials` (orchestrator tokens);
//! - `sql`: the status derivation and column lists shared by those queries;
//! - `time`: the one timestamp format and the clock;
//! - [`testing`]: a throwaway database file per test.
//!
//! What it must not do: trust the stored `status` column on reads, format caller input into
//! SQL, run a multi-statement write outside a transaction, or write without the write gate.

mod accounts;
mod audit;
mod credentials;
mod error;
mod liveness;
mod messages;
mod orchestrators;
mod organizations;
mod reports;
mod rows;
mod sql;
pub mod testing;
mod time;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::TimeDelta;
use moolai_protocol::{DeliveredMessage, Provisioning};
use moolai_store::{
    Actor, ApiTokenRecord, AuditEntry, AuditQuery, AuditRecord, ConnectionRecord, CostQuery,
    CostReport, CredentialQuery, CredentialRevocation, HeartbeatWrite, HelloRegistration,
    IndependenceChange, MessageQuery, MessageRecord, MessageStatus, NewApiToken, NewMessage,
    NewOrchestrator, NewOrchestratorCredential, NewOrganization, NewSession, NewUser,
    OrchestratorCredentialRecord, OrchestratorQuery, OrchestratorRecord, OrganizationRecord,
    Overview, Page, Registered, SessionRecord, StatusChange, Store, StoreError, StoreResult,
    Supervision, SweepOutcome, UsageWrite, UserLogin, UserRecord, UserUpdate,
};
use serde_json::{Map, Value};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use error::db_error;

/// The schema, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// File name of the database inside the data directory (`MOOLAI_DATA_DIR`).
pub const DEFAULT_FILE_NAME: &str = "moolai.db";

/// Connections in the pool. SQLite runs one writer at a time, so more connections only add
/// concurrent readers (WAL lets them read while the writer writes).
const MAX_CONNECTIONS: u32 = 4;

/// How long SQLite itself waits for a lock held by another connection (another process on
/// the same file, or a rollback still finishing) before giving up with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a caller waits for a pooled connection before the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write waits for its turn behind the other writes of this process. Generous:
/// writes queue here in FIFO order (a burst of a thousand small transactions takes a second
/// or two), and only a write stuck far longer than any real one means something is wrong.
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// The SQLite [`Store`]. Cloning is cheap (the pool and the write gate are shared).
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Serializes this process's writes. SQLite allows one writer at a time; queueing here
    /// (fairly, without holding a connection) beats every writer polling in SQLite's busy
    /// handler, and makes `BEGIN IMMEDIATE` succeed at once in the common case.
    write_gate: Arc<Mutex<()>>,
    /// How long after its last heartbeat an orchestrator still counts as active.
    heartbeat_ttl: Duration,
    /// The same TTL as a chrono delta, to compute the cutoff bound into SQL.
    ttl: TimeDelta,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("heartbeat_ttl", &self.heartbeat_ttl)
            .field("pool_size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

/// A write transaction holding the write gate; the gate is released after the transaction
/// ends (fields drop in declaration order).
pub(crate) struct WriteTx {
    pub(crate) tx: Transaction<'static, Sqlite>,
    _gate: OwnedMutexGuard<()>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(db_error)
    }
}

/// The path of the database inside a data directory (`MOOLAI_DATA_DIR`, default `./data`).
#[must_use]
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DEFAULT_FILE_NAME)
}

/// Whether a `DATABASE_URL` names an SQLite database (`sqlite:...`).
#[must_use]
pub fn is_sqlite_url(url: &str) -> bool {
    url.get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("sqlite:"))
}

/// The file a `sqlite:` URL names: `sqlite:data/moolai.db`, `sqlite://data/moolai.db`
/// (relative) or `sqlite:///var/lib/moolai/moolai.db` (absolute). The only query parameter
/// accepted is sqlx's `mode=rwc` / `mode=rw` (the file is always created when missing); an
/// in-memory database is refused, since it would vanish with the process and each pooled
/// connection would see a different one.
pub fn path_from_url(url: &str) -> Result<PathBuf, StoreError> {
    let invalid = |why: &str| {
        StoreError::Invalid(format!(
            "DATABASE_URL {url:?} is not a usable SQLite URL: {why} (expected sqlite:path/to/file.db)"
        ))
    };
    if !is_sqlite_url(url) {
        return Err(invalid("it does not start with sqlite:"));
    }
    let rest = &url[7..];
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if !matches!(pair, "mode=rwc" | "mode=rw") {
            return Err(invalid(&format!("unsupported parameter {pair:?}")));
        }
    }
    if path.is_empty() {
        return Err(invalid("no file named"));
    }
    if path == ":memory:" || path.starts_with("file::memory:") {
        return Err(invalid(
            "an in-memory database would lose everything on exit",
        ));
    }
    Ok(PathBuf::from(path))
}

impl SqliteStore {
    /// Opens (creating the parent directory and the file when missing) the database at
    /// `path`, eagerly: a path that cannot be created or a file that is not a database fails
    /// here, with a message naming the path and `MOOLAI_DATA_DIR`. Does not migrate: call
    /// [`Self::migrate`] (the single binary does, as the one actor applying migrations).
    ///
    /// Durability: WAL journal with `synchronous = NORMAL`. A commit is in the WAL (in the
    /// operating system's hands) when it returns, so everything committed survives the process
    /// being killed (`kill -9`, a panic, an OOM kill); SQLite only syncs the WAL to disk at
    /// checkpoints, so a power loss or kernel crash may lose the last transactions (never
    /// corrupt the file). `FULL` would sync on every commit; heartbeats are already batched,
    /// but messages and hellos arrive one per transaction in bursts, and losing the last
    /// seconds of liveness on a power cut costs nothing (reconnects repair it), so NORMAL is
    /// the usual WAL trade-off here.
    ///
    /// Open one store per file and clone it: clones share the write gate. A second store on
    /// the same file (or another process) works, but its writes then queue in SQLite's busy
    /// handler (up to the busy timeout) rather than in the gate.
    pub async fn open(path: &Path, heartbeat_ttl: Duration) -> Result<Self, StoreError> {
        let explain = |detail: String| {
            StoreError::Unavailable(format!(
                "cannot open the SQLite database at {}: {detail} (set MOOLAI_DATA_DIR to a writable directory, or DATABASE_URL)",
                path.display()
            ))
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| explain(format!("cannot create {}: {e}", parent.display())))?;
        }

        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // Refreshes the planner's statistics when a connection closes (cheap with the
            // limit), as SQLite recommends for long-lived databases.
            .optimize_on_close(true, 400);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| explain(e.to_string()))?;

        // Reading the schema proves the file is a database (SQLite opens anything lazily).
        let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .map_err(|e| explain(e.to_string()))?;
        if !journal_mode.eq_ignore_ascii_case("wal") {
            // A file system without shared memory (some network file systems) refuses WAL;
            // SQLite then keeps a rollback journal, which is slower but as safe.
            tracing::warn!(path = %path.display(), journal_mode, "SQLite refused WAL mode");
        }
        tracing::info!(path = %path.display(), max_connections = MAX_CONNECTIONS, "opened SQLite database");
        Ok(Self {
            pool,
            write_gate: Arc::new(Mutex::new(())),
            heartbeat_ttl,
            ttl: TimeDelta::from_std(heartbeat_ttl).unwrap_or(TimeDelta::MAX),
            path: path.to_owned(),
        })
    }

    /// [`Self::open`] on the file a `sqlite:` `DATABASE_URL` names (see [`path_from_url`]).
    pub async fn connect_url(url: &str, heartbeat_ttl: Duration) -> Result<Self, StoreError> {
        Self::open(&path_from_url(url)?, heartbeat_ttl).await
    }

    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    #[must_use]
    pub fn heartbeat_ttl(&self) -> Duration {
        self.heartbeat_ttl
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes every connection (checkpointing the WAL into the main file when this was the
    /// last one).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Applies the embedded migrations that are missing (in the write gate, so none of this
    /// store's writes interleave).
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let _gate = self.write_gate().await?;
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => db_error(inner),
            other => StoreError::Other(format!("migration failed: {other}")),
        })
    }

    /// Fails unless every embedded migration has been applied.
    #[tracing::instrument(skip_all)]
    pub async fn check_migrations(&self) -> Result<(), StoreError> {
        const HINT: &str = "database schema is not migrated: apply the migrations first (`moolai` does at start-up)";
        let has_table: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master \
             WHERE type = 'table' AND name = '_sqlx_migrations')",
        )
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

    /// Waits for this process's turn to write.
    pub(crate) async fn write_gate(&self) -> Result<OwnedMutexGuard<()>, StoreError> {
        tokio::time::timeout(
            WRITE_QUEUE_TIMEOUT,
            Arc::clone(&self.write_gate).lock_owned(),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "database busy: no turn to write within {} s",
                WRITE_QUEUE_TIMEOUT.as_secs()
            ))
        })
    }

    /// A write transaction: the write gate, then `BEGIN IMMEDIATE` (the write lock up front,
    /// so the transaction never upgrades a read lock, which SQLite cannot wait for).
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let gate = self.write_gate().await?;
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        Ok(WriteTx { tx, _gate: gate })
    }

    /// The oldest `last_seen` that still counts as alive at `now` (exclusive), as bound into
    /// the status SQL.
    pub(crate) fn cutoff(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        time::cutoff(now, self.ttl)
    }
}

pub(crate) use moolai_store::{page_bounds, page_offset};

#[async_trait]
impl Store for SqliteStore {
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

    #[tracing::instrument(level = "debug", skip_all, fields(beats = beats.len()))]
    async fn flush_heartbeats(&self, beats: &[HeartbeatWrite]) -> StoreResult<Vec<StatusChange>> {
        self.flush_heartbeats_tx(beats).await
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
        self.update_metadata_tx(orchestrator_id, metadata).await
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

    async fn orchestrator_order(
        &self,
        q: &OrchestratorQuery,
        limit: usize,
    ) -> StoreResult<Option<Vec<String>>> {
        self.orchestrator_ids(q, limit).await
    }

    async fn orchestrators_in_order(
        &self,
        q: &OrchestratorQuery,
        ids: &[String],
    ) -> StoreResult<Vec<OrchestratorRecord>> {
        self.orchestrators_by_ids(q, ids).await
    }

    #[tracing::instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
    async fn get_orchestrator(
        &self,
        orchestrator_id: &str,
    ) -> StoreResult<Option<OrchestratorRecord>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        orchestrators::fetch(&mut conn, orchestrator_id, &self.cutoff(time::now())).await
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
        let _gate = self.write_gate().await?;
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        audit::insert(&mut conn, entry, &time::now()).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_paths_from_sqlite_urls() {
        let path = |url: &str| path_from_url(url).map(|p| p.display().to_string());
        assert_eq!(
            path("sqlite:data/moolai.db").ok().as_deref(),
            Some("data/moolai.db")
        );
        assert_eq!(
            path("sqlite://data/moolai.db").ok().as_deref(),
            Some("data/moolai.db")
        );
        assert_eq!(
            path("sqlite:///var/lib/m.db").ok().as_deref(),
            Some("/var/lib/m.db")
        );
        assert_eq!(path("SQLITE:m.db?mode=rwc").ok().as_deref(), Some("m.db"));
        for bad in [
            "sqlite::memory:",
            "sqlite:",
            "sqlite://",
            "sqlite:m.db?cache=shared",
            "postgres://db/moolai",
            "sqlit",
        ] {
            assert!(
                matches!(path_from_url(bad), Err(StoreError::Invalid(ref m)) if m.contains("DATABASE_URL")),
                "{bad}"
            );
        }
        assert!(is_sqlite_url("sqlite:x.db"));
        assert!(!is_sqlite_url("postgres://x"));
        assert_eq!(
            database_path(Path::new("./data")),
            Path::new("./data/moolai.db")
        );
    }
}
