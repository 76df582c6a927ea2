//! The client task: connect, serve a session, decide whether and when to reconnect.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use moolai_protocol::{
    ClientFrame, Dialect, Heartbeat, OptionalId, ServerFrame, StatusData, now_rfc3339,
};
use rand::Rng;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::backoff::Backoff;
use crate::config::{ClientConfig, MAX_DURATION, ReconnectPolicy};
use crate::connection::{self, Ending, Established};
use crate::event::{ClientEvent, DisconnectKind, StopReason};
use crate::{ClientError, Command, Shared};

/// Runs one client until it stops for good.
pub(crate) async fn run(
    config: ClientConfig,
    shared: Arc<Shared>,
    mut commands: mpsc::Receiver<Command>,
) -> StopReason {
    // Failed attempts in a row; reset by a healthy session.
    let mut attempt: u32 = 0;
    let mut first = true;
    let why = loop {
        if !first {
            shared.update(|s| s.reconnects += 1);
        }
        first = false;
        let ending = match connect(&config, &shared, &mut commands).await {
            Attempt::Shutdown => break StopReason::Shutdown,
            Attempt::Failed(ending) => ending,
            Attempt::Established(established) => {
                match serve(&config, &shared, &mut commands, *established).await {
                    SessionEnd::Shutdown => break StopReason::Shutdown,
                    SessionEnd::Ended(ending) => ending,
                }
            }
        };
        tracing::debug!(kind = %ending.kind, code = ?ending.code, reason = %ending.reason, "disconnected");
        shared.update(|s| {
            s.connected = false;
            s.last_disconnect = Some(ending.kind);
        });
        shared.emit(|| ClientEvent::Disconnected {
            code: ending.code,
            reason: ending.reason.clone(),
            kind: ending.kind,
            session: ending.session,
        });
        if let Some(why) = stop_reason(&config.reconnect, &ending) {
            break why;
        }
        if ending
            .session
            .is_some_and(|lasted| lasted >= config.healthy_session_reset)
        {
            attempt = 0;
        }
        let delay = retry_delay(&config.backoff, attempt, ending.retry_after);
        tracing::debug!(attempt, ?delay, "reconnecting");
        shared.emit(|| ClientEvent::Reconnecting { attempt, delay });
        attempt = attempt.saturating_add(1);
        if !wait_between_attempts(delay, &mut commands).await {
            break StopReason::Shutdown;
        }
    };
    tracing::debug!(%why, "client stopped");
    shared.update(|s| {
        s.connected = false;
        s.stopped = Some(why.clone());
    });
    shared.emit(|| ClientEvent::Stopped { why: why.clone() });
    why
}

/// Whether an ending stops the client for good, per the policy.
pub(crate) fn stop_reason(policy: &ReconnectPolicy, ending: &Ending) -> Option<StopReason> {
    let reason = ending.reason.clone();
    match ending.kind {
        DisconnectKind::Closed(4000) if policy.stop_when_replaced => {
            Some(StopReason::Replaced { reason })
        }
        DisconnectKind::Closed(4004) if policy.stop_when_deregistered => {
            Some(StopReason::Deregistered { reason })
        }
        _ if ending.rejected && policy.stop_when_rejected => Some(StopReason::Rejected { reason }),
        _ => None,
    }
}

/// The delay before the next attempt: full-jitter backoff, or the server's hint plus jitter.
pub(crate) fn retry_delay(backoff: &Backoff, attempt: u32, hint: Option<Duration>) -> Duration {
    let mut rng = rand::rng();
    match hint {
        Some(hint) => backoff.delay_after_hint(hint, &mut rng),
        None => backoff.delay(attempt, &mut rng),
    }
}

/// Sleeps between attempts, refusing commands; `false` when the client must stop.
async fn wait_between_attempts(delay: Duration, commands: &mut mpsc::Receiver<Command>) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return true,
            command = commands.recv() => match command {
                None | Some(Command::Shutdown) => return false,
                Some(other) => other.refuse(ClientError::NotConnected),
            },
        }
    }
}

enum Attempt {
    Established(Box<Established>),
    Failed(Ending),
    Shutdown,
}

/// One connection attempt, interruptible by shutdown.
async fn connect(
    config: &ClientConfig,
    shared: &Shared,
    commands: &mut mpsc::Receiver<Command>,
) -> Attempt {
    let establishing = connection::establish(config, shared);
    tokio::pin!(establishing);
    loop {
        tokio::select! {
            result = &mut establishing => return match result {
                Ok(established) => Attempt::Established(Box::new(established)),
                Err(ending) => Attempt::Failed(ending),
            },
            command = commands.recv() => match command {
                None | Some(Command::Shutdown) => return Attempt::Shutdown,
                Some(other) => other.refuse(ClientError::NotConnected),
            },
        }
    }
}

enum SessionEnd {
    Ended(Ending),
    Shutdown,
}

/// The heartbeat of a session in its dialect. The HLD one never changes: encoded once.
enum HeartbeatFrame {
    Hld(Utf8Bytes),
    Deployed,
}

impl HeartbeatFrame {
    fn new(config: &ClientConfig) -> Self {
        match config.dialect {
            Dialect::Hld => Self::Hld(
                connection::encode(&ClientFrame::IAmAlive(Heartbeat {
                    orchestrator_id: Some(config.orchestrator_id.clone()),
                    timestamp: None,
                    usage: None,
                }))
                .into(),
            ),
            Dialect::Deployed => Self::Deployed,
        }
    }

    fn message(&self) -> Message {
        match self {
            Self::Hld(text) => Message::Text(text.clone()),
            Self::Deployed => {
                Message::text(connection::encode(&ClientFrame::IAmAlive(Heartbeat {
                    orchestrator_id: None,
                    timestamp: Some(Value::String(now_rfc3339())),
                    usage: None,
                })))
            }
        }
    }
}

/// What the session loop must do after a frame.
enum After {
    Nothing,
    /// Heartbeats resumed: send one now.
    BeatNow,
}

/// Per-session state the frame handler updates.
struct SessionState<'a> {
    shared: &'a Shared,
    independent: bool,
    config_version: i64,
    retry_hint: Option<Duration>,
    pending_status: VecDeque<oneshot::Sender<Result<StatusData, ClientError>>>,
}

impl SessionState<'_> {
    fn set_independent(&mut self, independent: bool) -> After {
        if self.independent == independent {
            return After::Nothing;
        }
        self.independent = independent;
        self.shared.update(|s| s.independent = independent);
        self.shared.emit(|| ClientEvent::Independence(independent));
        tracing::debug!(independent, "independence changed");
        if independent {
            After::Nothing
        } else {
            After::BeatNow
        }
    }

    fn handle(&mut self, frame: ServerFrame) -> After {
        match frame {
            ServerFrame::Provisioning { data } => {
                if data.config_version >= self.config_version {
                    self.config_version = data.config_version;
                    let config = data.session_config.clone();
                    self.shared.update(|s| {
                        s.config_version = Some(data.config_version);
                        s.session_config = config;
                    });
                }
                let independent = data.is_independent;
                self.shared
                    .emit(|| ClientEvent::Provisioning(Box::new(data)));
                self.set_independent(independent)
            }
            ServerFrame::ConfigUpdate { data } => {
                // Level-triggered state can deliver an older version after a newer one
                // (provisioning on reconnect racing an update): keep the newest.
                if data.config_version < self.config_version {
                    tracing::debug!(
                        version = data.config_version,
                        current = self.config_version,
                        "ignoring a stale config_update"
                    );
                    return After::Nothing;
                }
                self.config_version = data.config_version;
                let config = data.session_config.clone();
                self.shared.update(|s| {
                    s.config_version = Some(data.config_version);
                    s.session_config = config;
                });
                self.shared.emit(|| ClientEvent::ConfigUpdate(data));
                After::Nothing
            }
            ServerFrame::StopMonitoring(_) => self.set_independent(true),
            ServerFrame::ResumeMonitoring(_) => self.set_independent(false),
            ServerFrame::Status { data } => {
                if let Some(reply) = self.pending_status.pop_front() {
                    let _ = reply.send(Ok(data.clone()));
                }
                self.shared.emit(|| ClientEvent::Status(data));
                After::Nothing
            }
            ServerFrame::Message { data } => {
                self.shared.emit(|| ClientEvent::Message(data));
                After::Nothing
            }
            ServerFrame::Ack { ack_type, id } => {
                self.shared.emit(|| ClientEvent::Ack { ack_type, id });
                After::Nothing
            }
            ServerFrame::Error(error) => {
                if let Some(seconds) = error.retry_after_sec {
                    let hint = Duration::from_secs(seconds);
                    self.retry_hint = Some(self.retry_hint.map_or(hint, |h| h.max(hint)));
                }
                tracing::debug!(code = %error.code, message = %error.message, "error frame");
                self.shared.emit(|| ClientEvent::ServerError(error));
                After::Nothing
            }
            // Nothing to answer: the controller's heartbeat only proves it is alive.
            ServerFrame::ControllerHeartbeat { .. }
            | ServerFrame::KeepaliveAck { .. }
            | ServerFrame::HandshakeAck(_) => After::Nothing,
        }
    }
}

/// Serves one session until it ends.
async fn serve(
    config: &ClientConfig,
    shared: &Shared,
    commands: &mut mpsc::Receiver<Command>,
    established: Established,
) -> SessionEnd {
    let Established {
        mut ws,
        ack,
        provisioning,
        handshake_latency,
        early,
    } = established;
    let started = Instant::now();
    let interval = match ack.heartbeat_interval_sec {
        Some(seconds) if seconds > 0 && !config.pin_heartbeat_interval => {
            Duration::from_secs(seconds).min(MAX_DURATION)
        }
        _ => config.heartbeat_interval,
    };
    tracing::debug!(session_id = ?ack.session_id, ?interval, ?handshake_latency, "session started");
    shared.update(|s| {
        s.connected = true;
        s.session_id.clone_from(&ack.session_id);
        s.independent = provisioning.is_independent;
        s.config_version = Some(provisioning.config_version);
        s.session_config = provisioning.session_config.clone();
        s.heartbeat_interval = Some(interval);
    });
    let mut session = SessionState {
        shared,
        independent: provisioning.is_independent,
        config_version: provisioning.config_version,
        retry_hint: None,
        pending_status: VecDeque::new(),
    };
    shared.emit(|| ClientEvent::Connected {
        session_id: ack.session_id.clone(),
        provisioning: Box::new(provisioning),
        handshake_latency,
    });
    for frame in early {
        session.handle(frame);
    }

    let heartbeat = HeartbeatFrame::new(config);
    let mut beats: u64 = 0;
    let beat_timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(beat_timer);
    let silence = tokio::time::sleep(config.server_silence_timeout);
    tokio::pin!(silence);

    let mut ending = loop {
        let beating = !(session.independent && config.stop_heartbeats_when_independent);
        tokio::select! {
            () = &mut beat_timer, if beating => {
                if let Err(e) = connection::send_text(&mut ws, heartbeat.message()).await {
                    break Ending::from_ws_error(&e);
                }
                beats += 1;
                shared.update(|s| s.heartbeats_sent += 1);
                let now = Instant::now();
                let next = if beats == 1 && config.spread_heartbeats {
                    now + interval.mul_f64(rand::rng().random_range(0.0..1.0))
                } else {
                    now + interval
                };
                beat_timer.as_mut().reset(next);
            }
            message = ws.next() => {
                silence.as_mut().reset(Instant::now() + config.server_silence_timeout);
                match message {
                    Some(Ok(Message::Text(text))) => {
                        match serde_json::from_str::<ServerFrame>(text.as_str()) {
                            Ok(frame) => {
                                if let After::BeatNow = session.handle(frame) {
                                    beat_timer.as_mut().reset(Instant::now());
                                }
                            }
                            // Unknown types are ignored (forward compatibility).
                            Err(e) => tracing::debug!(error = %e, "ignoring an undecodable frame"),
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let ending = connection::close_ending(frame.as_ref());
                        connection::finish_close(&mut ws).await;
                        break ending;
                    }
                    // Pings are answered by tungstenite; binary frames mean nothing here.
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break Ending::from_ws_error(&e),
                    None => break Ending::new(DisconnectKind::Io, "connection ended without a close frame"),
                }
            }
            command = commands.recv() => match command {
                None | Some(Command::Shutdown) => {
                    connection::close(&mut ws, 1000, "client shutdown").await;
                    return SessionEnd::Shutdown;
                }
                Some(Command::Send { frame, done }) => {
                    let result = connection::send_text(&mut ws, connection::encode(&frame)).await;
                    let failed = result.as_ref().err().map(Ending::from_ws_error);
                    let _ = done.send(result.map_err(|_| ClientError::Disconnected));
                    if let Some(ending) = failed {
                        break ending;
                    }
                }
                Some(Command::RequestStatus { reply }) => {
                    let orchestrator_id = match config.dialect {
                        Dialect::Hld => Some(config.orchestrator_id.clone()),
                        Dialect::Deployed => None,
                    };
                    let frame = ClientFrame::RequestStatus(OptionalId { orchestrator_id });
                    match connection::send_text(&mut ws, connection::encode(&frame)).await {
                        Ok(()) => session.pending_status.push_back(reply),
                        Err(e) => {
                            let _ = reply.send(Err(ClientError::Disconnected));
                            break Ending::from_ws_error(&e);
                        }
                    }
                }
            },
            () = &mut silence => {
                break Ending::new(
                    DisconnectKind::Silent,
                    format!("nothing from the controller for {:?}", config.server_silence_timeout),
                );
            }
        }
    };
    // Pending status requests are dropped: their callers get `Disconnected`.
    ending.session = Some(started.elapsed());
    if let Some(hint) = session.retry_hint {
        ending.retry_after = Some(ending.retry_after.map_or(hint, |h| h.max(hint)));
    }
    SessionEnd::Ended(ending)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ending(kind: DisconnectKind, rejected: bool) -> Ending {
        let mut e = Ending::new(kind, "why");
        e.rejected = rejected;
        e
    }

    #[test]
    fn the_policy_decides_which_endings_stop_the_client() {
        let stop = ReconnectPolicy::default();
        let keep = ReconnectPolicy {
            stop_when_replaced: false,
            stop_when_deregistered: false,
            stop_when_rejected: false,
        };
        let replaced = ending(DisconnectKind::Closed(4000), false);
        let deregistered = ending(DisconnectKind::Closed(4004), false);
        let rejected = ending(DisconnectKind::Closed(1008), true);
        let unauthorized = ending(DisconnectKind::Http(401), true);
        assert!(matches!(
            stop_reason(&stop, &replaced),
            Some(StopReason::Replaced { .. })
        ));
        assert!(matches!(
            stop_reason(&stop, &deregistered),
            Some(StopReason::Deregistered { .. })
        ));
        assert!(matches!(
            stop_reason(&stop, &rejected),
            Some(StopReason::Rejected { .. })
        ));
        assert!(matches!(
            stop_reason(&stop, &unauthorized),
            Some(StopReason::Rejected { .. })
        ));
        for e in [&replaced, &deregistered, &rejected, &unauthorized] {
            assert_eq!(stop_reason(&keep, e), None, "{e:?}");
        }
        // Retry-later and transient endings never stop the client.
        for kind in [
            DisconnectKind::Closed(1001),
            DisconnectKind::Closed(1013),
            DisconnectKind::Closed(1008), // policy close after the session started
            DisconnectKind::Http(503),
            DisconnectKind::Connect,
            DisconnectKind::Io,
            DisconnectKind::Silent,
            DisconnectKind::Protocol,
        ] {
            assert_eq!(stop_reason(&stop, &ending(kind, false)), None, "{kind}");
        }
    }

    #[test]
    fn a_retry_hint_is_a_floor() {
        let backoff = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            multiplier: 2.0,
        };
        for attempt in [0, 3, 100] {
            let d = retry_delay(&backoff, attempt, Some(Duration::from_secs(2)));
            assert!(
                d >= Duration::from_secs(2) && d <= Duration::from_secs(4),
                "{d:?}"
            );
            let d = retry_delay(&backoff, attempt, None);
            assert!(d <= Duration::from_millis(50), "{d:?}");
        }
        // The hint replaces the exponential backoff: after many attempts (ceiling 60 s) a
        // client told "2 s" is back within 4 s.
        for _ in 0..200 {
            let d = retry_delay(&Backoff::default(), 20, Some(Duration::from_secs(2)));
            assert!(
                d >= Duration::from_secs(2) && d <= Duration::from_secs(4),
                "{d:?}"
            );
        }
    }
}
