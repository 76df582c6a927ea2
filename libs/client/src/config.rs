//! What a client needs to know before it connects.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use moolai_protocol::validate_id;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

pub use moolai_protocol::Dialect;

use crate::backoff::Backoff;
use crate::event::Observer;

/// Longest accepted duration in a configuration (and in the controller's heartbeat interval).
pub const MAX_DURATION: Duration = Duration::from_secs(86_400);

/// Everything a [`Client`](crate::Client) needs. Start from [`ClientConfig::new`] and set
/// fields; every field has a default that suits one production orchestrator.
#[derive(Clone)]
pub struct ClientConfig {
    /// `ws://host:port/ws` (or `/`, where deployed clients connect). `wss://` is refused: the
    /// workspace compiles no TLS backend, so TLS is terminated by a proxy in front of the
    /// edge (or a sidecar next to the orchestrator).
    pub url: String,
    pub orchestrator_id: String,
    /// Sent in the hello; the controller uses its default organization when absent.
    pub organization_id: Option<String>,
    /// Which hello and heartbeat shapes to speak.
    pub dialect: Dialect,
    /// Sent as `Authorization: Bearer` on the upgrade *and* as `auth_token` in the hello, for
    /// controllers (or proxies) that only see one of them.
    pub auth_token: Option<SecretString>,
    /// The hello's `metadata` (`name`, `location`, `version`, `hostname`, `features`…).
    pub metadata: Map<String, Value>,
    /// Heartbeat period until the controller says otherwise in `handshake_ack`.
    pub heartbeat_interval: Duration,
    /// Keep `heartbeat_interval` even when `handshake_ack` asks for another (load tests that
    /// choose their own rate).
    pub pin_heartbeat_interval: bool,
    /// Delay the second heartbeat of a session by a random fraction of the interval, so a
    /// fleet that connected at once does not heartbeat in lockstep forever. The first
    /// heartbeat always goes out right after provisioning.
    pub spread_heartbeats: bool,
    /// Stop heartbeating while the controller has put this orchestrator in independence mode
    /// (it ignores those heartbeats anyway); resume on `resume_monitoring`.
    pub stop_heartbeats_when_independent: bool,
    /// Delays between connection attempts.
    pub backoff: Backoff,
    /// A session that lasted at least this long resets the backoff to its first step; shorter
    /// sessions keep climbing, so a controller that accepts and immediately drops the client
    /// is not hammered.
    pub healthy_session_reset: Duration,
    /// When to give up instead of reconnecting.
    pub reconnect: ReconnectPolicy,
    /// TCP connect plus WebSocket upgrade.
    pub connect_timeout: Duration,
    /// From sending the hello to receiving `handshake_ack`, and again to `provisioning`. The
    /// edge waits up to 10 s for the controller to commit a hello.
    pub handshake_timeout: Duration,
    /// A session with no frame (or ping) from the controller for this long is considered dead
    /// and reconnected. The edge sends `controller_heartbeat` and a ping every 20 s.
    pub server_silence_timeout: Duration,
    /// Source address of the TCP socket. One source address reaches one server port through
    /// ~28k ephemeral ports: load generators spread sockets over 127.0.0.x.
    pub local_address: Option<IpAddr>,
    /// Capacity of the [`events`](crate::ClientHandle::events) broadcast; `0` turns events
    /// off (no channel is allocated), for processes that run thousands of clients.
    pub event_capacity: usize,
    /// Called synchronously with every event, whether or not `event_capacity` is 0. One
    /// observer can be shared by many clients to aggregate without a channel per client.
    pub observer: Option<Arc<dyn Observer>>,
    /// Shared between clients of one process to cap concurrent handshakes: a permit is held
    /// from TCP connect until provisioning arrives (or the attempt fails).
    pub connect_permits: Option<Arc<Semaphore>>,
}

/// When a client stops for good instead of reconnecting. Every default is `true`: in each of
/// these cases reconnecting cannot succeed, or succeeds by hurting someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Close 4000: a newer connection with the same orchestrator id replaced this one. If the
    /// old process reconnected it would replace its successor, which would reconnect and
    /// replace it back: two processes flapping forever, each flap a hello the controller
    /// has to commit. Set to `false` only when a lost-then-restored network is more likely
    /// than a duplicate process (the newest connection still wins each round).
    pub stop_when_replaced: bool,
    /// Close 4004: an operator deleted this orchestrator. Reconnecting would silently
    /// re-create it.
    pub stop_when_deregistered: bool,
    /// The hello was refused (close 1008 before `handshake_ack`, or HTTP 401/403 on the
    /// upgrade): a bad id or bad credentials do not fix themselves, and retrying only adds
    /// load. "Try again later" refusals (1013, 503, 429) are always retried.
    pub stop_when_rejected: bool,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            stop_when_replaced: true,
            stop_when_deregistered: true,
            stop_when_rejected: true,
        }
    }
}

impl ClientConfig {
    /// A configuration with every default: 30 s heartbeats (until the controller says
    /// otherwise), backoff 1 s doubling to 60 s with full jitter, events on.
    pub fn new(
        url: impl Into<String>,
        orchestrator_id: impl Into<String>,
        dialect: Dialect,
    ) -> Self {
        Self {
            url: url.into(),
            orchestrator_id: orchestrator_id.into(),
            organization_id: None,
            dialect,
            auth_token: None,
            metadata: Map::new(),
            heartbeat_interval: Duration::from_secs(30),
            pin_heartbeat_interval: false,
            spread_heartbeats: false,
            stop_heartbeats_when_independent: true,
            backoff: Backoff::default(),
            healthy_session_reset: Duration::from_secs(60),
            reconnect: ReconnectPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(20),
            server_silence_timeout: Duration::from_secs(90),
            local_address: None,
            event_capacity: 64,
            observer: None,
            connect_permits: None,
        }
    }

    /// Checks what would otherwise fail on every attempt.
    ///
    /// # Errors
    /// The first field that is out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_id("orchestrator_id", &self.orchestrator_id)
            .map_err(|e| ConfigError::Invalid(e.message))?;
        if let Some(org) = &self.organization_id {
            validate_id("organization_id", org).map_err(|e| ConfigError::Invalid(e.message))?;
        }
        if !self.url.starts_with("ws://") {
            return Err(ConfigError::Invalid(format!(
                "url must start with ws:// (no TLS backend is compiled in), got {:?}",
                self.url
            )));
        }
        if let Some(token) = &self.auth_token
            && !token.expose_secret().bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ConfigError::Invalid(
                "auth_token must be printable ASCII without spaces".into(),
            ));
        }
        let positive = [
            ("heartbeat_interval", self.heartbeat_interval),
            ("backoff.initial", self.backoff.initial),
            ("connect_timeout", self.connect_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("server_silence_timeout", self.server_silence_timeout),
        ];
        for (name, value) in positive.into_iter().chain([
            ("backoff.max", self.backoff.max),
            ("healthy_session_reset", self.healthy_session_reset),
        ]) {
            if value.is_zero() {
                return Err(ConfigError::Invalid(format!("{name} must be positive")));
            }
            // Deadlines are `now + duration`: keep them far from overflowing.
            if value > MAX_DURATION {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be at most a day"
                )));
            }
        }
        if self.backoff.max < self.backoff.initial {
            return Err(ConfigError::Invalid(
                "backoff.max must be at least backoff.initial".into(),
            ));
        }
        if !(self.backoff.multiplier.is_finite() && self.backoff.multiplier >= 1.0) {
            return Err(ConfigError::Invalid(
                "backoff.multiplier must be a finite number of at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SecretString prints as redacted; the observer and semaphore are opaque.
        f.debug_struct("ClientConfig")
            .field("url", &self.url)
            .field("orchestrator_id", &self.orchestrator_id)
            .field("organization_id", &self.organization_id)
            .field("dialect", &self.dialect)
            .field("auth_token", &self.auth_token)
            .field("metadata", &self.metadata)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("pin_heartbeat_interval", &self.pin_heartbeat_interval)
            .field("spread_heartbeats", &self.spread_heartbeats)
            .field(
                "stop_heartbeats_when_independent",
                &self.stop_heartbeats_when_independent,
            )
            .field("backoff", &self.backoff)
            .field("healthy_session_reset", &self.healthy_session_reset)
            .field("reconnect", &self.reconnect)
            .field("connect_timeout", &self.connect_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("server_silence_timeout", &self.server_silence_timeout)
            .field("local_address", &self.local_address)
            .field("event_capacity", &self.event_capacity)
            .field("observer", &self.observer.is_some())
            .field("connect_permits", &self.connect_permits.is_some())
            .finish()
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid client configuration: {0}")]
    Invalid(String),
}
