//! The reference orchestrator client of the Moolai controller.
//!
//! An orchestrator embeds this crate to hold its WebSocket to the controller's ws-edge:
//! [`Client::spawn`] starts a task that connects, says hello in either dialect
//! ([`Dialect::Hld`] `register` or [`Dialect::Deployed`] `handshake`), requires
//! `handshake_ack` as the first frame and `provisioning` after it, heartbeats at the interval
//! the controller asks for, applies `config_update`, stops heartbeating while the controller
//! has switched the orchestrator to independence mode, and reconnects whenever the socket
//! ends. The [`ClientHandle`] it returns exposes [`events`](ClientHandle::events), a
//! [`state`](ClientHandle::state) snapshot, and frames to send (`message`, `usage`,
//! `request_status`).
//!
//! Reconnects follow the lessons of fleet controllers that met reconnect storms: exponential
//! backoff with **full jitter** that resets after a healthy session and never collapses to
//! zero at the cap ([`Backoff`]); the server's "not now" (`Retry-After` on a 503 upgrade,
//! `retry_after_sec` in an `error` frame) is the wait, with a little jitter, instead of the
//! backoff (the edge paces a crowd with it; see [`Backoff::delay_after_hint`]); and a client
//! that was replaced by a newer connection (close 4000), deregistered (4004) or refused
//! (1008 before the ack, HTTP 401/403) stops instead of fighting ([`ReconnectPolicy`]).
//!
//! Modules: `config` (what to connect to and how), `backoff` (delays), `event` (what the
//! client reports), `connection` (TCP, upgrade, hello, ack, provisioning), `session` (the
//! task: heartbeats, frames, commands, reconnects).
//!
//! It must not: log above `debug` on per-heartbeat paths, record metrics (embedders count
//! events through an [`Observer`]), or retry a hello the controller refused.
//!
//! Runnable example, against a controller on the default port:
//!
//! ```text
//! cargo run -p moolai-client --example orchestrator -- [ws://127.0.0.1:8766/ws] [orchestrator-id]
//! ```
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use moolai_client::{Client, ClientConfig, ClientEvent, Dialect};
//!
//! let config = ClientConfig::new("ws://127.0.0.1:8766/ws", "orch-001", Dialect::Deployed);
//! let client = Client::spawn(config)?;
//! let mut events = client.events();
//! while let Ok(event) = events.recv().await {
//!     if let ClientEvent::Connected { session_id, .. } = &event {
//!         println!("connected, session {session_id:?}");
//!         client.send_message("monitoring", "hello from the example").await?;
//!         break;
//!     }
//! }
//! client.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod backoff;
mod config;
mod connection;
mod event;
mod session;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use moolai_protocol::{
    ClientFrame, MessageFrame, StatusData, UsageEntry, UsageFrame, UsagePayload, ValidationError,
    validate_message,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use backoff::{Backoff, MAX_RETRY_HINT};
pub use config::{ClientConfig, ConfigError, Dialect, MAX_DURATION, ReconnectPolicy};
pub use event::{ClientEvent, ClientState, DisconnectKind, Observer, StopReason};
pub use moolai_protocol;

/// How long [`ClientHandle::request_status`] waits for the `status` reply.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts clients. See the crate documentation.
pub struct Client;

impl Client {
    /// Validates `config` and spawns the client task on the current Tokio runtime. The task
    /// runs until [`ClientHandle::shutdown`], until the handle is dropped, or until the
    /// [`ReconnectPolicy`] says to stop.
    ///
    /// # Errors
    /// When the configuration cannot work (bad id, URL scheme, zero durations…).
    ///
    /// # Panics
    /// Outside a Tokio runtime, like `tokio::spawn`.
    pub fn spawn(config: ClientConfig) -> Result<ClientHandle, ConfigError> {
        config.validate()?;
        // Commands are rare (messages, usage, status): a small queue is enough, and each
        // client allocates only a block of it.
        let (commands, receiver) = mpsc::channel(8);
        let (events, first_receiver) = if config.event_capacity > 0 {
            let (sender, receiver) = broadcast::channel(config.event_capacity);
            (Some(sender), Some(receiver))
        } else {
            (None, None)
        };
        let shared = Arc::new(Shared {
            orchestrator_id: config.orchestrator_id.clone(),
            state: Mutex::new(ClientState::default()),
            events,
            observer: config.observer.clone(),
        });
        let span = tracing::debug_span!("moolai_client", orchestrator_id = %config.orchestrator_id);
        let task = tokio::spawn(session::run(config, shared.clone(), receiver).instrument(span));
        Ok(ClientHandle {
            commands,
            shared,
            task,
            first_receiver: Mutex::new(first_receiver),
        })
    }
}

/// Controls one running client. Dropping it stops the client (clean close 1000) like
/// [`shutdown`](Self::shutdown), without waiting.
pub struct ClientHandle {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    task: JoinHandle<StopReason>,
    /// Subscribed before the task started and handed out by the first `events()` call, so
    /// that caller misses nothing (not even a fast `Connected`).
    first_receiver: Mutex<Option<broadcast::Receiver<ClientEvent>>>,
}

impl ClientHandle {
    #[must_use]
    pub fn orchestrator_id(&self) -> &str {
        &self.shared.orchestrator_id
    }

    /// A receiver of events. The first call returns a receiver subscribed when the client
    /// was spawned (every event since the start, up to `event_capacity` of them buffered);
    /// later calls see events from the moment of the call. With `event_capacity: 0` the
    /// receiver is closed at once (`RecvError::Closed`); use an [`Observer`] instead. A
    /// receiver that falls more than `event_capacity` events behind gets
    /// `RecvError::Lagged`.
    #[must_use]
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        if let Some(first) = self
            .first_receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            return first;
        }
        match &self.shared.events {
            Some(sender) => sender.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// A snapshot of the client's state.
    #[must_use]
    pub fn state(&self) -> ClientState {
        self.shared.snapshot()
    }

    /// Whether the client task has ended (stopped for good).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Raises a `recommendation` or `monitoring` message about this orchestrator. Returns once
    /// the frame is written; the controller's `ack` arrives as [`ClientEvent::Ack`].
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for an unknown type or empty/oversized content;
    /// [`ClientError::NotConnected`] between sessions; [`ClientError::Stopped`].
    pub async fn send_message(&self, message_type: &str, content: &str) -> Result<(), ClientError> {
        validate_message(message_type, content)?;
        self.send(ClientFrame::Message(MessageFrame {
            message_type: message_type.to_owned(),
            content: content.to_owned(),
            metadata: None,
        }))
        .await
    }

    /// Reports usage counters (deltas since the previous report) in a `usage` frame.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for no entries, too many, or negative/non-finite cost; else as
    /// [`send`](Self::send).
    pub async fn report_usage(&self, entries: Vec<UsageEntry>) -> Result<(), ClientError> {
        if entries.is_empty() {
            return Err(ClientError::Invalid(ValidationError::new(
                "invalid_usage",
                "at least one usage entry is required",
            )));
        }
        let usage = UsagePayload::Many(entries);
        usage.validate()?;
        self.send(ClientFrame::Usage(UsageFrame { usage })).await
    }

    /// Asks the controller for this orchestrator's derived status and waits for the reply
    /// (also delivered as [`ClientEvent::Status`]).
    ///
    /// # Errors
    /// [`ClientError::Timeout`] after [`STATUS_TIMEOUT`]; [`ClientError::NotConnected`],
    /// [`ClientError::Disconnected`], [`ClientError::Stopped`].
    pub async fn request_status(&self) -> Result<StatusData, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::RequestStatus { reply })
            .await
            .map_err(|_| ClientError::Stopped)?;
        match tokio::time::timeout(STATUS_TIMEOUT, answer).await {
            Err(_) => Err(ClientError::Timeout(STATUS_TIMEOUT)),
            Ok(Err(_)) => Err(ClientError::Disconnected),
            Ok(Ok(result)) => result,
        }
    }

    /// Writes any non-hello frame on the current session (`update_metadata`,
    /// `o_config_snapshot`, `keepalive`…). Returns once it is written.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a hello (the client says hello itself);
    /// [`ClientError::NotConnected`] between sessions; [`ClientError::Disconnected`] when the
    /// write failed; [`ClientError::Stopped`].
    pub async fn send(&self, frame: ClientFrame) -> Result<(), ClientError> {
        if matches!(frame, ClientFrame::Register(_) | ClientFrame::Handshake(_)) {
            return Err(ClientError::Invalid(ValidationError::new(
                "invalid_frame",
                "the client sends its hello itself",
            )));
        }
        let (done, written) = oneshot::channel();
        self.commands
            .send(Command::Send {
                frame: Box::new(frame),
                done,
            })
            .await
            .map_err(|_| ClientError::Stopped)?;
        written.await.map_err(|_| ClientError::Stopped)?
    }

    /// Closes the socket cleanly (1000) and waits for the client task to end.
    pub async fn shutdown(self) -> StopReason {
        // Fails only when the task already ended; its own reason is returned below.
        let _ = self.commands.send(Command::Shutdown).await;
        self.wait().await
    }

    /// Waits until the client stops on its own (replaced, deregistered, rejected).
    pub async fn wait(self) -> StopReason {
        let shared = self.shared;
        match self.task.await {
            Ok(why) => why,
            Err(e) => {
                tracing::debug!(error = %e, "client task ended abnormally");
                shared.snapshot().stopped.unwrap_or(StopReason::Shutdown)
            }
        }
    }
}

/// Why a frame could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("not connected to the controller")]
    NotConnected,
    #[error("the connection dropped before the frame was written or answered")]
    Disconnected,
    #[error("the client has stopped")]
    Stopped,
    #[error("invalid frame: {0}")]
    Invalid(#[from] ValidationError),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
}

/// What a handle asks of its task.
pub(crate) enum Command {
    /// Boxed so the per-client command queue stays small.
    Send {
        frame: Box<ClientFrame>,
        done: oneshot::Sender<Result<(), ClientError>>,
    },
    RequestStatus {
        reply: oneshot::Sender<Result<StatusData, ClientError>>,
    },
    Shutdown,
}

impl Command {
    /// Answers a command that cannot be carried out now.
    pub(crate) fn refuse(self, error: ClientError) {
        match self {
            Self::Send { done, .. } => {
                let _ = done.send(Err(error));
            }
            Self::RequestStatus { reply } => {
                let _ = reply.send(Err(error));
            }
            Self::Shutdown => {}
        }
    }
}

/// State shared by a handle and its task.
pub(crate) struct Shared {
    pub(crate) orchestrator_id: String,
    state: Mutex<ClientState>,
    events: Option<broadcast::Sender<ClientEvent>>,
    observer: Option<Arc<dyn Observer>>,
}

impl Shared {
    pub(crate) fn update(&self, change: impl FnOnce(&mut ClientState)) {
        // A panic while holding this lock cannot leave the plain-data state half-written in a
        // way that matters more than losing it: keep going.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut state);
    }

    pub(crate) fn snapshot(&self) -> ClientState {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Emits an event, building it only when someone listens.
    pub(crate) fn emit(&self, make: impl FnOnce() -> ClientEvent) {
        let listening = self.events.as_ref().is_some_and(|s| s.receiver_count() > 0);
        if !listening && self.observer.is_none() {
            return;
        }
        let event = make();
        if let Some(observer) = &self.observer {
            observer.on_event(&self.orchestrator_id, &event);
        }
        if listening && let Some(sender) = &self.events {
            let _ = sender.send(event);
        }
    }
}
