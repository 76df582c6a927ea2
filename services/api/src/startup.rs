//! Starting and stopping the service: [`launch_with_listener`] (what tests call, on port 0),
//! [`run`] (binds the configured ports, serves metrics) and the CLI entry points
//! [`serve_from_env`] / [`migrate_from_env`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use moolai_bus::{Bus, Subjects};
use moolai_config::{DatabaseSettings, LivenessSettings, NatsSettings};
use moolai_store::{Actor, NewUser, Role, Store, StoreError, UserUpdate};
use moolai_store_postgres::PgStore;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth_cache::AuthCache;
use crate::fleet_view::FleetView;
use crate::report_cache::{Follows, ReportCache, Staleness};
use crate::routes::events::{CHANNEL_CAPACITY, StatusFanout};
use crate::row_cache::RowCache;
use crate::settings::ApiSettings;
use crate::state::{AppState, Shared};
use crate::throttle::LoginThrottle;
use secrecy::ExposeSecret;

/// How long open requests may keep running after shutdown starts.
const DRAIN_DEADLINE: Duration = Duration::from_secs(20);

/// A started API: settings checked, the operator user ensured, the live-event fan-out
/// subscribed. Serve [`ApiService::router`] (alone, or inside a larger server), then call
/// [`ApiService::stop`] once the server stopped.
pub struct ApiService {
    state: AppState,
    tracker: TaskTracker,
}

impl ApiService {
    /// # Errors
    /// Invalid settings, or the operator user or the status subscription cannot be set up.
    pub async fn start(
        settings: ApiSettings,
        liveness: LivenessSettings,
        store: Arc<dyn Store>,
        bus: Bus,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let settings = settings.normalized();
        settings.validate()?;
        liveness.validate()?;
        announce_authentication(&settings);
        if let Some((username, password)) = settings.admin_credential() {
            seed_superadmin(store.as_ref(), username, password.expose_secret()).await?;
        }
        let dummy_password_hash = crate::password::hash_blocking(crate::auth::new_session_token())
            .await
            .map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?;
        let login_throttle = LoginThrottle::new(
            settings.login_max_failures,
            settings.login_max_failures_per_address,
            Duration::from_secs(settings.login_lockout_sec),
        );

        let tracker = TaskTracker::new();
        let (status_events, _) = broadcast::channel(CHANNEL_CAPACITY);
        let staleness = Staleness::default();
        let heartbeat_ttl = chrono::Duration::seconds(
            i64::try_from(liveness.heartbeat_ttl_sec).context("HEARTBEAT_TTL_SEC is too large")?,
        );
        let fleet_view = Arc::new(FleetView::new(
            Duration::from_millis(settings.api_fleet_view_ms),
            heartbeat_ttl,
            staleness.clone(),
        ));
        StatusFanout::start(
            &bus,
            status_events.clone(),
            staleness.clone(),
            fleet_view.clone(),
            &tracker,
            shutdown.clone(),
        )
        .await
        .context("cannot subscribe to status events on NATS")?;

        let openapi_json = serde_json::to_vec(&crate::router::openapi())
            .context("cannot encode the OpenAPI document")?;
        let report_ttl = Duration::from_millis(settings.api_report_cache_ms);
        let auth_ttl = Duration::from_millis(settings.api_auth_cache_ms);
        let orchestrator_rows = Arc::new(RowCache::new(
            settings.api_row_cache_mb.saturating_mul(1 << 20),
        ));
        tracker.spawn(fleet_view.clone().run(
            store.clone(),
            orchestrator_rows.clone(),
            shutdown.clone(),
        ));
        let state = AppState::new(Shared {
            store,
            bus,
            settings,
            heartbeat_ttl,
            status_events,
            openapi_json: openapi_json.into(),
            shutdown,
            login_throttle,
            dummy_password_hash,
            overview_cache: ReportCache::new(report_ttl, staleness.clone()),
            costs_cache: ReportCache::writes_only(report_ttl, staleness.clone()),
            orchestrator_listings: ReportCache::bounded(
                report_ttl,
                staleness.clone(),
                crate::listings::KEPT_LISTINGS,
                Follows::StatusEventsOf(|key| key.organization_id.as_deref()),
            ),
            auth_cache: AuthCache::new(auth_ttl),
            orchestrator_rows,
            fleet_view,
            staleness,
        });
        Ok(Self { state, tracker })
    }

    /// The complete application: API routes, JSON 404/405, body limit, metrics, tracing, CORS.
    pub fn router(&self) -> axum::Router {
        crate::router::router(&self.state, None)
    }

    /// The application with `fallback` answering every path outside `/api/` that no route
    /// matches (the single binary serves the dashboard this way); unknown `/api/` paths still
    /// get the JSON 404.
    pub fn router_with_fallback(&self, fallback: axum::Router) -> axum::Router {
        crate::router::router(&self.state, Some(fallback))
    }

    /// Waits for the background tasks (the live-event fan-out stops on shutdown).
    pub async fn stop(self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Serves the API on `listener` until `shutdown` fires, then drains.
///
/// # Errors
/// Invalid settings, the operator user or the status subscription cannot be set up, or the
/// server fails.
pub async fn launch_with_listener(
    settings: ApiSettings,
    liveness: LivenessSettings,
    store: Arc<dyn Store>,
    bus: Bus,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let service = ApiService::start(settings, liveness, store, bus, shutdown.clone()).await?;
    let app = service.router();
    let addr = listener.local_addr().context("listener has no address")?;
    tracing::info!(%addr, "api listening");
    serve_until_drained(listener, app, &shutdown).await?;
    service.stop().await;
    tracing::info!("api stopped");
    Ok(())
}

/// Serves `app` until `shutdown` fires, giving open requests [`DRAIN_DEADLINE`] to finish.
/// Connections must send their request headers within
/// [`HEADER_READ_TIMEOUT`](moolai_telemetry::http::HEADER_READ_TIMEOUT).
///
/// # Errors
/// None today; kept fallible for the callers.
pub async fn serve_until_drained(
    listener: TcpListener,
    app: axum::Router,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    moolai_telemetry::http::serve_with(
        listener,
        app,
        shutdown.clone(),
        moolai_telemetry::http::HEADER_READ_TIMEOUT,
        DRAIN_DEADLINE,
    )
    .await;
    Ok(())
}

fn announce_authentication(settings: &ApiSettings) {
    if settings.dev_bearer_token.is_some() {
        tracing::warn!(
            "DEV_BEARER_TOKEN is set: that static token is a superadmin on every route; \
             it exists for compatibility only: use API tokens and unset it"
        );
    }
    if let Some(origins) = &settings.cors_allowed_origins {
        tracing::info!(%origins, "CORS allowed origins (credentials never allowed)");
    }
}

/// Makes sure the superadmin named by `MOOLAI_ADMIN_USERNAME` exists with the password in
/// `MOOLAI_ADMIN_PASSWORD`: created when missing; when it exists with another password, the
/// password is reset to the configured one (the environment stays the way back in). Its role
/// and organizations are left as an operator set them.
///
/// # Errors
/// When the store fails.
pub async fn seed_superadmin(
    store: &dyn Store,
    username: &str,
    password: &str,
) -> anyhow::Result<()> {
    let existing = store
        .user_login(username)
        .await
        .context("cannot read the operator user")?;
    match existing {
        Some(found)
            if found
                .password_hash
                .as_deref()
                .is_some_and(|h| crate::password::verify(password, h)) =>
        {
            tracing::info!(username, "operator from MOOLAI_ADMIN_USERNAME exists");
        }
        Some(_) => {
            let password_hash = hash(password).await?;
            store
                .update_user(
                    username,
                    &UserUpdate {
                        password_hash: Some(password_hash),
                        ..UserUpdate::default()
                    },
                    &Actor::system(),
                )
                .await
                .context("cannot reset the operator's password")?;
            tracing::warn!(
                username,
                "the password of the operator from MOOLAI_ADMIN_USERNAME was reset to MOOLAI_ADMIN_PASSWORD"
            );
        }
        None => {
            let password_hash = hash(password).await?;
            let created = store
                .create_user(
                    &NewUser {
                        username: username.to_owned(),
                        role: Role::Superadmin,
                        password_hash,
                        organization_ids: Vec::new(),
                    },
                    &Actor::system(),
                )
                .await;
            match created {
                // Another replica created it at the same time.
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => {
                    return Err(anyhow::Error::from(e).context("cannot create the operator user"));
                }
            }
            tracing::info!(username, "superadmin created from MOOLAI_ADMIN_USERNAME");
        }
    }
    Ok(())
}

async fn hash(password: &str) -> anyhow::Result<String> {
    crate::password::hash_blocking(password.to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Binds `CONTROLLER_HOST:CONTROLLER_PORT` (API) and `CONTROLLER_HOST:API_METRICS_PORT`
/// (Prometheus), then serves until `shutdown` fires.
///
/// # Errors
/// A port cannot be bound, or [`launch_with_listener`] fails.
pub async fn run(
    settings: ApiSettings,
    liveness: LivenessSettings,
    store: Arc<dyn Store>,
    bus: Bus,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let host: IpAddr = settings.controller_host.parse().with_context(|| {
        format!(
            "CONTROLLER_HOST={} is not an IP address",
            settings.controller_host
        )
    })?;
    let listener = TcpListener::bind((host, settings.controller_port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {host}:{} (CONTROLLER_HOST / CONTROLLER_PORT)",
                settings.controller_port
            )
        })?;
    let metrics_listener = TcpListener::bind((host, settings.api_metrics_port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {host}:{} (API_METRICS_PORT)",
                settings.api_metrics_port
            )
        })?;
    // Install the recorder before the first request is counted.
    let _ = moolai_telemetry::metrics();
    let metrics_shutdown = shutdown.child_token();
    let metrics = tokio::spawn(moolai_telemetry::serve_metrics(
        metrics_listener,
        metrics_shutdown.clone(),
    ));
    let result = launch_with_listener(settings, liveness, store, bus, listener, shutdown).await;
    metrics_shutdown.cancel();
    match metrics.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics listener failed"),
        Err(e) => tracing::warn!(error = %e, "metrics task panicked"),
    }
    result
}

/// Settings of every concern the api reads, loaded and validated.
struct Environment {
    api: ApiSettings,
    liveness: LivenessSettings,
    database: DatabaseSettings,
    nats: NatsSettings,
}

fn load_environment() -> anyhow::Result<Environment> {
    let api = ApiSettings::from_env()?;
    let liveness: LivenessSettings = moolai_config::load()?;
    liveness.validate()?;
    let database: DatabaseSettings = moolai_config::load()?;
    database.validate()?;
    let nats: NatsSettings = moolai_config::load()?;
    Ok(Environment {
        api,
        liveness,
        database,
        nats,
    })
}

async fn connect_store(
    database: &DatabaseSettings,
    liveness: &LivenessSettings,
) -> anyhow::Result<PgStore> {
    PgStore::connect(
        &database.url(),
        liveness.ttl(),
        database.database_max_connections,
    )
    .await
    // The error names the (masked) URL and DATABASE_URL already.
    .map_err(anyhow::Error::from)
}

/// `moolai-api serve`: configuration → telemetry → PostgreSQL and NATS (eagerly, failing
/// fast) → serve until SIGINT/SIGTERM.
///
/// # Errors
/// Bad configuration, an unreachable dependency, unapplied migrations, or a server failure.
pub async fn serve_from_env() -> anyhow::Result<()> {
    let env = load_environment()?;
    let _telemetry = moolai_telemetry::init("moolai-api")?;
    let store = connect_store(&env.database, &env.liveness).await?;
    store
        .check_migrations()
        .await
        .context("the database schema is not at this version: run `moolai-api migrate` first")?;
    let subjects =
        Subjects::new(&env.nats.nats_subject_prefix).context("invalid NATS_SUBJECT_PREFIX")?;
    let bus = Bus::connect(&env.nats.nats_url, subjects, "moolai-api").await?;
    let shutdown = moolai_config::shutdown_token();
    run(env.api, env.liveness, Arc::new(store), bus, shutdown).await
}

/// `moolai-api migrate`: applies the PostgreSQL migrations, then returns.
///
/// # Errors
/// Bad configuration, an unreachable database, or a failed migration.
pub async fn migrate_from_env() -> anyhow::Result<()> {
    let liveness: LivenessSettings = moolai_config::load()?;
    let database: DatabaseSettings = moolai_config::load()?;
    database.validate()?;
    let _telemetry = moolai_telemetry::init("moolai-api")?;
    let store = connect_store(&database, &liveness).await?;
    store
        .migrate()
        .await
        .context("applying the migrations failed")?;
    tracing::info!(database = %database.display_url(), "migrations applied");
    Ok(())
}

/// `moolai-api admin …`: one account or token command against the configured PostgreSQL.
///
/// # Errors
/// Bad configuration, an unreachable or unmigrated database, or the command fails.
pub async fn admin_from_env(command: crate::admin::AdminCommand) -> anyhow::Result<()> {
    let liveness: LivenessSettings = moolai_config::load()?;
    let database: DatabaseSettings = moolai_config::load()?;
    database.validate()?;
    let store = connect_store(&database, &liveness).await?;
    store
        .check_migrations()
        .await
        .context("the database schema is not at this version: run `moolai-api migrate` first")?;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout();
    crate::admin::run(command, &store, &mut input, &mut out).await
}

/// `moolai-api openapi`: prints the OpenAPI document to stdout (no configuration needed).
///
/// # Errors
/// When the document cannot be encoded.
pub fn print_openapi() -> anyhow::Result<()> {
    let doc = serde_json::to_string_pretty(&crate::router::openapi())
        .context("cannot encode the OpenAPI document")?;
    println!("{doc}");
    Ok(())
}

/// An error and its causes on one line, skipping causes whose text the line already holds
/// (configuration errors embed their source in their own message).
#[must_use]
pub fn error_report(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_skip_repeated_causes() {
        let inner = anyhow::anyhow!("connection refused");
        let e = inner.context("cannot reach NATS at nats://x (set NATS_URL)");
        assert_eq!(
            error_report(&e),
            "cannot reach NATS at nats://x (set NATS_URL): connection refused"
        );
        let e = anyhow::Error::from(moolai_config::ConfigError::Invalid {
            var: "CONTROLLER_PORT",
            message: "bad".into(),
        })
        .context("loading");
        assert_eq!(
            error_report(&e),
            "loading: invalid value for CONTROLLER_PORT: bad"
        );
    }
}
