//! What a client reports: events as they happen, and a state snapshot.

use std::fmt;
use std::time::Duration;

use moolai_protocol::{ConfigUpdate, DeliveredMessage, ErrorFrame, Provisioning, StatusData};
use serde_json::Value;

/// Something that happened to a client, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A session started: the controller acknowledged the hello and sent provisioning.
    Connected {
        session_id: Option<String>,
        provisioning: Box<Provisioning>,
        /// From the start of the TCP connect to `handshake_ack`.
        handshake_latency: Duration,
    },
    /// A later `provisioning` frame (after a `provisioning_request`).
    Provisioning(Box<Provisioning>),
    /// An operator changed this orchestrator's configuration; already applied to the state.
    ConfigUpdate(ConfigUpdate),
    /// Independence mode switched on (`true`, `stop_monitoring`) or off (`false`).
    Independence(bool),
    /// An operator accepted a message about this orchestrator.
    Message(DeliveredMessage),
    /// Reply to `request_status`.
    Status(StatusData),
    /// The controller durably stored a `message`, `usage` or `update_metadata` frame.
    Ack {
        ack_type: String,
        id: Option<String>,
    },
    /// An `error` frame. The socket stays open unless a close follows.
    ServerError(ErrorFrame),
    /// A connection attempt or a session ended.
    Disconnected {
        /// Close code sent by the controller, if it sent one.
        code: Option<u16>,
        reason: String,
        kind: DisconnectKind,
        /// How long the session lasted; `None` when it never reached provisioning.
        session: Option<Duration>,
    },
    /// The client will try again after `delay`.
    Reconnecting {
        /// Failed attempts in a row before this one (0 after a healthy session).
        attempt: u32,
        delay: Duration,
    },
    /// The client stopped for good; nothing follows.
    Stopped { why: StopReason },
}

/// Why a connection attempt or a session ended. `Display` gives a stable short name
/// (`close_1001`, `http_503`, …) for counting by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectKind {
    /// DNS, TCP connect or the connect timeout failed.
    Connect,
    /// The upgrade was answered with this HTTP status instead of 101.
    Http(u16),
    /// `handshake_ack` or `provisioning` did not arrive within the handshake timeout.
    HandshakeTimeout,
    /// The controller broke the protocol (first frame not `handshake_ack`, binary hello…).
    Protocol,
    /// The controller closed the socket with this code (1005 when it gave none).
    Closed(u16),
    /// The connection failed without a close frame (reset, EOF, write error).
    Io,
    /// Nothing was heard from the controller for `server_silence_timeout`.
    Silent,
}

impl fmt::Display for DisconnectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect => f.write_str("connect_failed"),
            Self::Http(status) => write!(f, "http_{status}"),
            Self::HandshakeTimeout => f.write_str("handshake_timeout"),
            Self::Protocol => f.write_str("protocol_error"),
            Self::Closed(code) => write!(f, "close_{code}"),
            Self::Io => f.write_str("io_error"),
            Self::Silent => f.write_str("server_silent"),
        }
    }
}

/// Why a client stopped for good.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// [`shutdown`](crate::ClientHandle::shutdown) was called or the handle was dropped.
    Shutdown,
    /// Close 4000: a newer connection of the same orchestrator took over.
    Replaced { reason: String },
    /// Close 4004: an operator deleted this orchestrator.
    Deregistered { reason: String },
    /// The hello (or the upgrade) was refused for a reason retrying cannot fix.
    Rejected { reason: String },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shutdown => f.write_str("shutdown"),
            Self::Replaced { reason } => write!(f, "replaced: {reason}"),
            Self::Deregistered { reason } => write!(f, "deregistered: {reason}"),
            Self::Rejected { reason } => write!(f, "rejected: {reason}"),
        }
    }
}

impl StopReason {
    /// A stable short name: `shutdown`, `replaced`, `deregistered`, `rejected`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Shutdown => "shutdown",
            Self::Replaced { .. } => "replaced",
            Self::Deregistered { .. } => "deregistered",
            Self::Rejected { .. } => "rejected",
        }
    }
}

/// A snapshot of a client, from [`ClientHandle::state`](crate::ClientHandle::state).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientState {
    /// A session is up (provisioning received, socket open).
    pub connected: bool,
    /// The controller put this orchestrator in independence mode.
    pub independent: bool,
    /// Session id from the latest `handshake_ack`.
    pub session_id: Option<String>,
    /// Version of `session_config`, from provisioning or the latest `config_update`.
    pub config_version: Option<i64>,
    /// The latest session configuration (`Null` before the first provisioning).
    pub session_config: Value,
    /// Heartbeat period in effect for the current (or last) session.
    pub heartbeat_interval: Option<Duration>,
    /// Heartbeats written since the client started.
    pub heartbeats_sent: u64,
    /// Connection attempts after the first one.
    pub reconnects: u64,
    /// How the last attempt or session ended.
    pub last_disconnect: Option<DisconnectKind>,
    /// Set once the client has stopped for good.
    pub stopped: Option<StopReason>,
}

/// Receives every event of the clients it is attached to, synchronously, on the client's
/// task: keep it cheap and never block (count, push to a channel with `try_send`…).
pub trait Observer: Send + Sync + 'static {
    fn on_event(&self, orchestrator_id: &str, event: &ClientEvent);
}
