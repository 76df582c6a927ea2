//! `moolai`: the whole controller in one process for one machine.
//!
//! ws-edge, state and api run as they do separately, but share one listener
//! (`CONTROLLER_HOST:CONTROLLER_PORT`): `/ws` and WebSocket upgrades on `/` go to the edge,
//! `/api/…` and `/health` to the api, everything else to the dashboard's static files.
//! Dependencies are chosen from the environment:
//! - no `NATS_URL`: an in-process bus (same subjects and semantics); with it, NATS, and other
//!   systems can subscribe as usual;
//! - no `DATABASE_URL`, or a `sqlite:` one: an embedded SQLite file under `MOOLAI_DATA_DIR`;
//!   a `postgres://` one: PostgreSQL.
//!
//! Being the only process, it applies migrations itself at start. It must not contain service
//! logic: everything here is wiring.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use moolai_api::{ApiService, ApiSettings};
use moolai_bus::{Bus, Subjects};
use moolai_config::LivenessSettings;
use moolai_state::StateSettings;
use moolai_store::Store;
use moolai_ws_edge::{Edge, EdgeService, EdgeSettings};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tower_http::services::{ServeDir, ServeFile};

/// Settings of the single binary itself; each embedded service reads its own as well.
#[derive(Debug, Deserialize)]
pub struct SingleSettings {
    #[serde(default = "default_host")]
    pub controller_host: String,
    /// The one port for the dashboard, the API and `/ws`.
    #[serde(default = "default_port")]
    pub controller_port: u16,
    /// Where the embedded SQLite database lives.
    #[serde(default = "default_data_dir")]
    pub moolai_data_dir: PathBuf,
    /// The built dashboard (`frontend/dist`); without one, `/` answers with a short note.
    #[serde(default)]
    pub moolai_dashboard_dir: Option<PathBuf>,
    /// Unset: the in-process bus.
    #[serde(default)]
    pub nats_url: Option<String>,
    #[serde(default = "default_prefix")]
    pub nats_subject_prefix: String,
    /// Unset or `sqlite:`: embedded SQLite; `postgres://`: PostgreSQL.
    #[serde(default)]
    pub database_url: Option<SecretString>,
    #[serde(default = "default_max_connections")]
    pub database_max_connections: u32,
}

fn default_host() -> String {
    "0.0.0.0".into()
}
fn default_port() -> u16 {
    8765
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}
fn default_prefix() -> String {
    "moolai".into()
}
fn default_max_connections() -> u32 {
    10
}

/// Which store the settings select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    Sqlite(PathBuf),
    /// The URL (with its password: never log it).
    Postgres(String),
}

impl SingleSettings {
    /// # Errors
    /// When a variable has the wrong type or the database URL has an unknown scheme.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut s: Self = moolai_config::load()?;
        s.nats_url = s.nats_url.filter(|u| !u.trim().is_empty());
        s.database_url = s
            .database_url
            .filter(|u| !u.expose_secret().trim().is_empty());
        s.store_choice()?;
        Subjects::new(&s.nats_subject_prefix).context("NATS_SUBJECT_PREFIX")?;
        Ok(s)
    }

    /// # Errors
    /// When `DATABASE_URL` is neither `sqlite:` nor `postgres://`.
    pub fn store_choice(&self) -> anyhow::Result<StoreChoice> {
        let Some(url) = &self.database_url else {
            return Ok(StoreChoice::Sqlite(moolai_store_sqlite::database_path(
                &self.moolai_data_dir,
            )));
        };
        let url = url.expose_secret();
        if moolai_store_sqlite::is_sqlite_url(url) {
            return Ok(StoreChoice::Sqlite(
                moolai_store_sqlite::path_from_url(url).context("DATABASE_URL")?,
            ));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreChoice::Postgres(url.to_owned()));
        }
        anyhow::bail!(
            "DATABASE_URL must be a sqlite: or postgres:// URL, got {}",
            moolai_config::mask_password(url)
        )
    }

    /// The dashboard directory (`MOOLAI_DASHBOARD_DIR`, else `frontend/dist`), when it holds a
    /// built dashboard.
    #[must_use]
    pub fn dashboard_dir(&self) -> Option<PathBuf> {
        let dir = self
            .moolai_dashboard_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("frontend/dist"));
        dir.join("index.html").exists().then_some(dir)
    }
}

/// Opens the selected store and applies its migrations (this process is the only actor).
///
/// # Errors
/// When the database cannot be opened or migrated.
pub async fn open_store(
    choice: &StoreChoice,
    ttl: Duration,
    max_connections: u32,
) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match choice {
        StoreChoice::Sqlite(path) => {
            let store = moolai_store_sqlite::SqliteStore::open(path, ttl)
                .await
                .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
            store.migrate().await.context("migrating SQLite")?;
            tracing::info!(path = %path.display(), "embedded SQLite store");
            Arc::new(store)
        }
        StoreChoice::Postgres(url) => {
            let store = moolai_store_postgres::PgStore::connect(url, ttl, max_connections).await?;
            store.migrate().await.context("migrating PostgreSQL")?;
            tracing::info!(url = %moolai_config::mask_password(url), "PostgreSQL store");
            Arc::new(store)
        }
    })
}

/// NATS when `NATS_URL` is set, else the in-process bus.
///
/// # Errors
/// When NATS is configured but unreachable.
pub async fn connect_bus(settings: &SingleSettings) -> anyhow::Result<Bus> {
    let subjects = Subjects::new(&settings.nats_subject_prefix).context("NATS_SUBJECT_PREFIX")?;
    Ok(match &settings.nats_url {
        Some(url) => {
            let bus = Bus::connect(url, subjects, "moolai").await?;
            tracing::info!(%url, "NATS bus");
            bus
        }
        None => {
            tracing::info!("in-process bus (set NATS_URL to use NATS)");
            Bus::in_process(subjects)
        }
    })
}

/// Everything the embedded services read from the environment.
pub struct Services {
    pub edge: EdgeSettings,
    pub state: StateSettings,
    pub api: ApiSettings,
    pub liveness: LivenessSettings,
}

impl Services {
    /// # Errors
    /// When any service's settings are invalid.
    pub fn from_env() -> anyhow::Result<Self> {
        let edge: EdgeSettings = moolai_config::load()?;
        edge.validate()?;
        let state: StateSettings = moolai_config::load()?;
        state.validate()?;
        let liveness: LivenessSettings = moolai_config::load()?;
        liveness.validate()?;
        // MOOLAI_ADMIN_USERNAME alone is allowed here: it names the superadmin generated on a
        // first start (see `first_login`). Everything else is checked now.
        let api = moolai_config::load::<ApiSettings>()?.normalized();
        let mut probe = api.clone();
        if probe.moolai_admin_password.is_none() {
            probe.moolai_admin_username = None;
        }
        probe.validate()?;
        Ok(Self {
            edge,
            state,
            api,
            liveness,
        })
    }
}

/// Runs everything on `listener` until `shutdown` fires, then stops in order: sockets close
/// with 1001, the API drains, state flushes pending heartbeats.
///
/// # Errors
/// When a service cannot start or the server fails.
pub async fn serve_with_listener(
    settings: &SingleSettings,
    services: Services,
    store: Arc<dyn Store>,
    bus: Bus,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // State first: it answers the hellos the edge forwards.
    let state_task = tokio::spawn(moolai_state::launch(
        services.state,
        services.liveness.clone(),
        store.clone(),
        bus.clone(),
        shutdown.clone(),
    ));
    let edge = EdgeService::start(services.edge, bus.clone(), shutdown.clone()).await?;
    let api = ApiService::start(
        services.api,
        services.liveness,
        store,
        bus,
        shutdown.clone(),
    )
    .await?;

    let dashboard = settings.dashboard_dir();
    let app = Router::new()
        .route("/ws", get(moolai_ws_edge::upgrade).with_state(edge.edge()))
        .route(
            "/",
            get(root).with_state(Root {
                edge: edge.edge(),
                index: dashboard.as_ref().map(|d| d.join("index.html")),
            }),
        )
        .merge(api.router_with_fallback(dashboard_router(dashboard.as_deref())));

    let addr = listener.local_addr()?;
    tracing::info!(%addr, "moolai listening: dashboard, /api and /ws on one port");
    moolai_api::startup::serve_until_drained(listener, app, &shutdown).await?;
    edge.drain().await;
    api.stop().await;
    match tokio::time::timeout(Duration::from_secs(20), state_task).await {
        Ok(Ok(result)) => result?,
        Ok(Err(e)) => anyhow::bail!("state task failed: {e}"),
        Err(_) => tracing::warn!("state did not stop within 20 s"),
    }
    Ok(())
}

#[derive(Clone)]
struct Root {
    edge: Arc<Edge>,
    index: Option<PathBuf>,
}

/// `/`: deployed orchestrators connect here with an upgrade; browsers get the dashboard.
async fn root(
    State(root): State<Root>,
    connect: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    request: axum::extract::Request,
) -> Response {
    if moolai_ws_edge::is_upgrade(&headers) {
        return moolai_ws_edge::upgrade(State(root.edge), connect, headers, ws).await;
    }
    match root.index {
        Some(index) => {
            use tower::ServiceExt as _;
            match ServeFile::new(index).oneshot(request).await {
                Ok(r) => r.into_response(),
                Err(e) => (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot read the dashboard: {e}"),
                )
                    .into_response(),
            }
        }
        None => no_dashboard().await.into_response(),
    }
}

async fn no_dashboard() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        "Moolai Controller is running. The dashboard is not built: run \
         `npm --prefix frontend ci && npm --prefix frontend run build` (or set \
         MOOLAI_DASHBOARD_DIR). The API is at /api/v1 (OpenAPI: /api/v1/openapi.json); \
         orchestrators connect to /ws.\n",
    )
}

/// Static files of the dashboard, with `index.html` for client-side routes.
fn dashboard_router(dir: Option<&Path>) -> Router {
    match dir {
        Some(dir) => Router::new()
            .fallback_service(ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")))),
        None => Router::new().fallback(no_dashboard),
    }
}

/// How operators log in on this start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstLogin {
    /// `MOOLAI_ADMIN_USERNAME` / `MOOLAI_ADMIN_PASSWORD` are set: that superadmin (seeded by
    /// the api at start).
    Configured { username: String },
    /// First start, nobody configured: a superadmin was just created with this password,
    /// which is shown this once.
    Generated { username: String, password: String },
    /// Users exist already: they log in as before.
    Existing,
}

/// Decides the login of this start. With neither `MOOLAI_ADMIN_PASSWORD` nor any user in
/// the store, creates the superadmin `MOOLAI_ADMIN_USERNAME` (default `admin`) with a
/// generated password. On later starts users exist, so nothing is generated (or printed).
///
/// # Errors
/// When the store fails.
pub async fn first_login(api: &mut ApiSettings, store: &dyn Store) -> anyhow::Result<FirstLogin> {
    if let Some((username, _)) = api.admin_credential() {
        return Ok(FirstLogin::Configured {
            username: username.to_owned(),
        });
    }
    let username = api
        .moolai_admin_username
        .take()
        .unwrap_or_else(|| "admin".to_owned());
    let users = store
        .list_users(1, 1)
        .await
        .context("cannot count the operator users")?;
    if users.total > 0 {
        return Ok(FirstLogin::Existing);
    }
    let password = moolai_api::admin::generate_password();
    moolai_api::startup::seed_superadmin(store, &username, &password).await?;
    Ok(FirstLogin::Generated { username, password })
}
