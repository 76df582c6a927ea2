//! The WebSocket edge: terminates orchestrator sockets and speaks NATS.
//!
//! - [`socket`]: one task per socket — hello (its token, from the upgrade's `Authorization`
//!   or the hello, forwarded to state, which checks it; acknowledged only after state
//!   committed it; in `token` mode a hello without any token is refused here),
//!   frame validation, rate limiting, heartbeats published, other frames forwarded as requests,
//!   commands written back, close codes as the protocol says;
//! - [`registry`]: which orchestrator is on which socket of this edge, so commands arriving on
//!   the bus reach the right socket in milliseconds and a newer session replaces an older one.
//!
//! The edge holds no database connection and no state that outlives a socket: any replica can
//! take any orchestrator. On shutdown it closes every socket with 1001 within a deadline and does
//! not report those closes as disconnects (the orchestrators are not gone; they reconnect).

pub mod admission;
pub mod publisher;
pub mod registry;
pub mod socket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use moolai_bus::events::{Command, ResyncReply, ResyncRequest, ToldState};
use moolai_bus::{Bus, Kind};
use moolai_config::OrchestratorAuth;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::registry::Registry;

/// Settings of the edge (environment variables of the same name, upper-case).
#[derive(Debug, Clone, Deserialize)]
pub struct EdgeSettings {
    #[serde(default = "default_host")]
    pub controller_host: String,
    #[serde(default = "default_port")]
    pub ws_edge_port: u16,
    #[serde(default = "default_metrics_port")]
    pub ws_edge_metrics_port: u16,
    /// Name of this replica in events and logs (default: host name + random suffix).
    #[serde(default)]
    pub edge_id: Option<String>,
    /// Largest accepted text frame; larger ones close the socket with 1009.
    #[serde(default = "default_max_frame")]
    pub ws_max_frame_bytes: usize,
    /// Time a new socket has to send its hello.
    #[serde(default = "default_hello_timeout")]
    pub ws_hello_timeout_sec: u64,
    /// A socket with no inbound traffic (frames or pongs) for this long is closed.
    #[serde(default = "default_idle")]
    pub ws_idle_timeout_sec: u64,
    /// Sustained frames per second allowed per socket.
    #[serde(default = "default_rate")]
    pub ws_rate_limit_per_sec: u32,
    /// Burst allowed above the sustained rate.
    #[serde(default = "default_burst")]
    pub ws_rate_limit_burst: u32,
    /// Consecutive undecodable frames before the socket is closed.
    #[serde(default = "default_invalid")]
    pub ws_max_invalid_frames: u32,
    /// Frames queued for one socket before it is considered too slow and closed.
    #[serde(default = "default_outbound")]
    pub ws_outbound_queue: usize,
    /// Sockets this edge accepts at once; past it the upgrade gets 503 with Retry-After.
    #[serde(default = "default_max_conn")]
    pub ws_max_connections: usize,
    /// New handshakes per second this edge accepts; past it upgrades get 503 + Retry-After.
    #[serde(default = "default_handshake_rate")]
    pub ws_max_handshakes_per_sec: u32,
    /// Interval of the `controller_heartbeat` frame (and WebSocket ping).
    #[serde(default = "default_ctrl_hb")]
    pub controller_heartbeat_sec: u64,
    /// Interval orchestrators are asked to heartbeat at (sent in `handshake_ack`).
    #[serde(default = "default_hb_interval")]
    pub heartbeat_interval_sec: u64,
    /// How long a hello waits for state to commit it.
    #[serde(default = "default_hello_commit")]
    pub hello_commit_timeout_sec: u64,
    /// Deadline for closing every socket on shutdown.
    #[serde(default = "default_grace")]
    pub shutdown_grace_sec: u64,
    /// `ORCHESTRATOR_AUTH`: in `token` mode (default) a hello without any token is refused
    /// here, before state is asked; state checks every token (and decides in both modes).
    #[serde(default)]
    pub orchestrator_auth: OrchestratorAuth,
}

fn default_host() -> String {
    "0.0.0.0".into()
}
fn default_port() -> u16 {
    8766
}
fn default_metrics_port() -> u16 {
    9101
}
fn default_max_frame() -> usize {
    64 * 1024
}
fn default_hello_timeout() -> u64 {
    15
}
fn default_idle() -> u64 {
    90
}
fn default_rate() -> u32 {
    20
}
fn default_burst() -> u32 {
    40
}
fn default_invalid() -> u32 {
    10
}
fn default_outbound() -> usize {
    64
}
fn default_max_conn() -> usize {
    200_000
}
fn default_handshake_rate() -> u32 {
    2_000
}
fn default_ctrl_hb() -> u64 {
    20
}
fn default_hb_interval() -> u64 {
    30
}
fn default_hello_commit() -> u64 {
    10
}
fn default_grace() -> u64 {
    10
}

impl EdgeSettings {
    /// # Errors
    /// When a value is out of range.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1024..=16 * 1024 * 1024).contains(&self.ws_max_frame_bytes),
            "WS_MAX_FRAME_BYTES must be between 1024 and 16777216"
        );
        anyhow::ensure!(
            self.ws_hello_timeout_sec >= 1,
            "WS_HELLO_TIMEOUT_SEC must be at least 1"
        );
        anyhow::ensure!(
            self.ws_idle_timeout_sec > self.controller_heartbeat_sec,
            "WS_IDLE_TIMEOUT_SEC must be longer than CONTROLLER_HEARTBEAT_SEC (pings keep idle sockets alive)"
        );
        anyhow::ensure!(
            self.controller_heartbeat_sec >= 1,
            "CONTROLLER_HEARTBEAT_SEC must be at least 1"
        );
        anyhow::ensure!(
            self.ws_rate_limit_per_sec >= 1,
            "WS_RATE_LIMIT_PER_SEC must be at least 1"
        );
        anyhow::ensure!(
            self.ws_max_invalid_frames >= 1,
            "WS_MAX_INVALID_FRAMES must be at least 1"
        );
        anyhow::ensure!(
            self.ws_outbound_queue >= 4,
            "WS_OUTBOUND_QUEUE must be at least 4"
        );
        anyhow::ensure!(
            self.ws_max_connections >= 1,
            "WS_MAX_CONNECTIONS must be at least 1"
        );
        anyhow::ensure!(
            self.ws_max_handshakes_per_sec >= 1,
            "WS_MAX_HANDSHAKES_PER_SEC must be at least 1"
        );
        if let Some(id) = &self.edge_id {
            moolai_protocol::validate_id("EDGE_ID", id)
                .map_err(|e| anyhow::anyhow!("invalid EDGE_ID: {e}"))?;
        }
        Ok(())
    }
}

/// How long a stopping edge waits for its queued heartbeats to reach NATS.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// Shared by every socket of this edge.
pub struct Edge {
    pub settings: EdgeSettings,
    pub edge_id: String,
    pub bus: Bus,
    pub registry: Registry,
    /// Fires on shutdown: sockets close with 1001.
    pub shutdown: CancellationToken,
    /// Caps concurrent sockets (admission control).
    pub slots: Arc<Semaphore>,
    /// Caps new handshakes per second (reconnect storms).
    pub handshakes: admission::HandshakeLimiter,
    pub sockets: TaskTracker,
    /// `moolai_edge_frames_total{type="i_am_alive"}`, looked up once: the one counter every
    /// heartbeat moves.
    heartbeat_frames: metrics::Counter,
    /// Heartbeats leave through here, in bursts.
    pub(crate) heartbeats: publisher::Publisher,
}

/// A started edge: subscribed to commands, ready to take sockets through [`EdgeService::router`]
/// (or [`upgrade`] mounted by an embedding server).
pub struct EdgeService {
    edge: Arc<Edge>,
    command_task: tokio::task::JoinHandle<()>,
    resync_task: tokio::task::JoinHandle<()>,
    publish_task: tokio::task::JoinHandle<()>,
}

impl EdgeService {
    /// Subscribes to the command subjects. Sockets close with 1001 when `shutdown` fires.
    ///
    /// # Errors
    /// When the command subscription fails.
    pub async fn start(
        settings: EdgeSettings,
        bus: Bus,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let edge_id = settings.edge_id.clone().unwrap_or_else(default_edge_id);
        match settings.orchestrator_auth {
            OrchestratorAuth::Open => tracing::warn!(
                "ORCHESTRATOR_AUTH=open: orchestrators WITHOUT credentials are accepted (if state \
                 is open too) and may claim any orchestrator id; use it only to migrate legacy \
                 clients"
            ),
            OrchestratorAuth::Token => {
                tracing::info!("ORCHESTRATOR_AUTH=token: hellos without a token are refused");
            }
        }
        // Install the recorder before the heartbeat counter's handle is taken from it.
        let _ = moolai_telemetry::metrics();
        let (heartbeats, publish_task) = publisher::Publisher::start(bus.clone());
        let edge = Arc::new(Edge {
            heartbeats,
            heartbeat_frames: metrics::counter!("moolai_edge_frames_total", "type" => "i_am_alive"),
            slots: Arc::new(Semaphore::new(settings.ws_max_connections)),
            handshakes: admission::HandshakeLimiter::new(settings.ws_max_handshakes_per_sec),
            settings,
            edge_id,
            bus: bus.clone(),
            registry: Registry::default(),
            shutdown,
            sockets: TaskTracker::new(),
        });
        let commands = bus
            .subscribe(bus.subjects().all(Kind::Command))
            .await
            .context("subscribing to commands")?;
        bus.flush()
            .await
            .context("flushing the command subscription")?;
        let command_task = tokio::spawn(route_commands(edge.clone(), commands));
        let resync_task = tokio::spawn(resync_after_reconnects(edge.clone()));
        Ok(Self {
            edge,
            command_task,
            resync_task,
            publish_task,
        })
    }

    /// The shared edge, for embedding servers that mount [`upgrade`] themselves.
    #[must_use]
    pub fn edge(&self) -> Arc<Edge> {
        self.edge.clone()
    }

    /// `/ws` and `/`, both WebSocket upgrades. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/ws", get(upgrade))
            .route("/", get(upgrade))
            .with_state(self.edge.clone())
    }

    /// After the server stopped: waits for every socket to close (they close themselves with
    /// 1001 on shutdown), bounded by `SHUTDOWN_GRACE_SEC`.
    pub async fn drain(self) {
        // axum's graceful shutdown does not wait for upgraded sockets.
        self.edge.sockets.close();
        let grace = Duration::from_secs(self.edge.settings.shutdown_grace_sec);
        if tokio::time::timeout(grace, self.edge.sockets.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.edge.sockets.len(),
                "sockets still open at the shutdown deadline"
            );
        }
        // Heartbeats still queued go to the client before it is flushed; both bounded, as
        // NATS may be away (its client then stops taking messages).
        let flushing = async {
            self.edge.heartbeats.flush().await;
            let _ = self.edge.bus.flush().await;
        };
        if tokio::time::timeout(FLUSH_GRACE, flushing).await.is_err() {
            tracing::warn!("heartbeats not all handed to NATS by the shutdown deadline");
        }
        self.command_task.abort();
        self.resync_task.abort();
        self.publish_task.abort();
    }
}

/// Serves `/ws` and `/` on `listener` until `shutdown` fires, then closes every socket with
/// 1001 and waits for them (bounded by `SHUTDOWN_GRACE_SEC`).
///
/// # Errors
/// When the command subscription or the listener fails.
pub async fn launch_with_listener(
    settings: EdgeSettings,
    bus: Bus,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let service = EdgeService::start(settings, bus, shutdown.clone()).await?;
    tracing::info!(addr = %listener.local_addr()?, edge_id = %service.edge.edge_id, "ws-edge listening");
    // Upgrade requests must arrive whole within the header deadline: half-open ones by the
    // thousand cannot pile up (the socket cap only counts upgraded sockets).
    moolai_telemetry::http::serve(listener, service.router(), shutdown).await;
    service.drain().await;
    Ok(())
}

/// True when the request asks for a WebSocket upgrade.
#[must_use]
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn default_edge_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| moolai_protocol::validate_id("host", h).is_ok())
        .unwrap_or_else(|| "edge".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}

/// The upgrade handler of `/ws` and `/`: admission control, then the socket task.
pub async fn upgrade(
    State(edge): State<Arc<Edge>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"success":false,"error":{"code":"upgrade_required","message":"this endpoint only accepts WebSocket upgrades"}}"#,
        )
            .into_response();
    };
    if edge.shutdown.is_cancelled() {
        return overloaded("the edge is shutting down", 1);
    }
    let Ok(permit) = edge.slots.clone().try_acquire_owned() else {
        metrics::counter!("moolai_edge_upgrades_refused_total", "reason" => "max_connections")
            .increment(1);
        return overloaded("too many connections on this edge", 5);
    };
    if let Err(retry_after) = edge.handshakes.try_acquire() {
        metrics::counter!("moolai_edge_upgrades_refused_total", "reason" => "handshake_rate")
            .increment(1);
        return overloaded("too many new connections right now", retry_after);
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned());
    let max = edge.settings.ws_max_frame_bytes;
    // Frames from orchestrators are small (a heartbeat is ~150 bytes); a larger one is read
    // in several chunks. The buffer is allocated per socket and kept for its life.
    ws.read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(max * 2)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            let tracker = edge.sockets.clone();
            // Boxed before the task's future is built: see `socket::run`.
            let accepted = Box::new(socket::Accepted {
                edge,
                socket,
                addr,
                bearer,
            });
            tracker.track_future(async move {
                socket::run(accepted).await;
                drop(permit);
            })
        })
}

fn overloaded(message: &str, retry_after: u64) -> Response {
    let body = serde_json::json!({
        "success": false,
        "error": { "code": "overloaded", "message": message }
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    // The refused client will come back on a new connection: close this one now. Its
    // TIME_WAIT then stays here, where it costs no port, instead of holding one of the
    // client's source ports for a minute (a crowd of refused clients behind one address
    // would run out of them), and no idle keep-alive connection lingers on the edge.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Delivers commands from the bus to the sockets this edge holds.
async fn route_commands(edge: Arc<Edge>, mut commands: moolai_bus::Deliveries) {
    while let Some(delivery) = commands.next().await {
        let Some((_, orchestrator_id, _)) = edge.bus.subjects().parse(&delivery.subject) else {
            continue;
        };
        let command: Command = match delivery.json() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, subject = %delivery.subject, "undecodable command");
                continue;
            }
        };
        apply(&edge, orchestrator_id, command);
    }
}

/// Applies one command to the socket of `orchestrator_id`, if this edge holds it.
fn apply(edge: &Edge, orchestrator_id: &str, command: Command) {
    // A socket whose hello is committing gets the frames too, queued behind its provisioning:
    // a command published after the commit but before the socket is bound would otherwise be
    // lost (the hello already read the state before the change).
    if let Command::Send { frame, message_id } = &command {
        for pending in edge.registry.pending(orchestrator_id) {
            pending.send(socket::Outbound::frame(frame.clone(), message_id.clone()));
        }
    }
    let Some(handle) = edge.registry.get(orchestrator_id) else {
        return; // another edge holds it, or nobody: state is repaired on reconnect
    };
    metrics::counter!("moolai_edge_commands_total").increment(1);
    match command {
        Command::Send { frame, message_id } => {
            handle.send(socket::Outbound::frame(frame, message_id));
        }
        Command::SessionStarted { session_id } => {
            if *handle.session_id != *session_id {
                handle.send(socket::Outbound::replaced());
            }
        }
        Command::Close {
            code,
            reason,
            session_id,
        } => {
            if session_id.is_none_or(|s| *handle.session_id == *s) {
                let disconnect_reason = if code == socket::CLOSE_CREDENTIAL_REVOKED {
                    "credential_revoked"
                } else {
                    "closed_by_controller"
                };
                handle.send(socket::Outbound::close(code, reason, disconnect_reason));
            }
        }
    }
}

/// Sockets per resync request (state answers up to `MAX_SOCKETS_PER_REQUEST` of them).
const RESYNC_CHUNK: usize = 1_000;

/// After every reconnection to NATS, asks state which commands the sockets of this edge
/// missed while it was cut off, and applies them.
async fn resync_after_reconnects(edge: Arc<Edge>) {
    let mut reconnections = edge.bus.reconnections();
    while reconnections.changed().await.is_ok() {
        resync(&edge).await;
    }
}

async fn resync(edge: &Edge) {
    let sockets = edge.registry.snapshot();
    let mut repaired = 0usize;
    for chunk in sockets.chunks(RESYNC_CHUNK) {
        let request = ResyncRequest {
            sockets: chunk
                .iter()
                .map(|(id, h)| ToldState {
                    orchestrator_id: id.clone(),
                    session_id: h.session_id.to_string(),
                    independent: h.mailbox.told.independent(),
                    config_version: h.mailbox.told.config_version(),
                })
                .collect(),
        };
        // State may be reconnecting too: retry with a growing pause, then give up on this
        // chunk (its sockets get their state on their next hello).
        for attempt in 1..=10_u32 {
            let subject = edge.bus.subjects().resync();
            match edge
                .bus
                .request::<_, ResyncReply>(subject, &request, Duration::from_secs(5))
                .await
            {
                Ok(reply) => {
                    repaired += reply.commands.len();
                    for c in reply.commands {
                        apply(edge, &c.orchestrator_id, c.command);
                    }
                    break;
                }
                Err(e) if attempt < 10 && !edge.shutdown.is_cancelled() => {
                    tracing::debug!(error = %e, attempt, "resync not answered yet");
                    tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, sockets = chunk.len(), "resync gave up");
                    break;
                }
            }
        }
    }
    metrics::counter!("moolai_edge_resync_commands_total").increment(repaired as u64);
    tracing::info!(
        sockets = sockets.len(),
        commands = repaired,
        "resynchronized with state after reconnecting to NATS"
    );
}
