//! One orchestrator socket, from upgrade to close.
//!
//! Close codes: 1000 idle timeout, 1001 edge shutting down, 1003 binary frame, 1008 policy
//! (no hello in time, first frame not a hello, rejected hello — including a missing, wrong,
//! revoked or other organization's credential — flood, repeated garbage), 1009 frame too
//! large, 1013 controller cannot register right now (retry), 4000 replaced by a newer
//! connection of the same orchestrator, 4001 the credential it registered with was revoked,
//! 4004 deregistered by an operator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chrono::Utc;
use moolai_bus::events::{
    DeliveryEvent, DisconnectEvent, FrameReply, FrameRequest, HeartbeatEventRef, HelloReply,
    HelloRequest,
};
use moolai_bus::{BusError, Kind, Outgoing, Subject};
use moolai_config::OrchestratorAuth;
use moolai_protocol::{
    ClientFrame, Decoded, ErrorFrame, HandshakeAck, Hello, MonitoringChange, ServerFrame,
    decode_client_frame, now_rfc3339,
};
use tracing::Instrument;

use crate::Edge;
use crate::registry::{Mail, Mailbox, SocketHandle};

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_UNSUPPORTED: u16 = 1003;
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_TRY_AGAIN: u16 = 1013;
pub const CLOSE_REPLACED: u16 = 4000;
/// The credential the socket registered with was revoked (sent by the api through a
/// `Command::Close`).
pub const CLOSE_CREDENTIAL_REVOKED: u16 = 4001;

/// Something to write to the socket, queued by the command router.
///
/// One pointer wide on purpose: every socket's queue allocates its first block of 32 slots
/// up front, so both variants are boxed (a 232-byte enum made that block 7 KiB per idle
/// socket, a 48-byte one 1.5 KiB).
#[derive(Debug)]
pub enum Outbound {
    /// A frame; with `message_id`, its delivery is reported after the write.
    Frame(Box<(ServerFrame, Option<String>)>),
    /// Close with `code` and `reason`; `disconnect_reason` goes in the disconnect event.
    Close(Box<(u16, String, &'static str)>),
}

const _: () = assert!(std::mem::size_of::<Outbound>() <= 16);

impl Outbound {
    #[must_use]
    pub fn frame(frame: ServerFrame, message_id: Option<String>) -> Self {
        Self::Frame(Box::new((frame, message_id)))
    }

    #[must_use]
    pub fn close(code: u16, reason: impl Into<String>, disconnect_reason: &'static str) -> Self {
        Self::Close(Box::new((code, reason.into(), disconnect_reason)))
    }

    /// Close 4000: a newer connection of the same orchestrator took over.
    #[must_use]
    pub fn replaced() -> Self {
        Self::close(CLOSE_REPLACED, "replaced by a newer connection", "replaced")
    }
}

/// Why a socket ended.
enum End {
    /// Report a disconnect with this reason, after closing with code/reason (if any).
    Disconnect {
        close: Option<(u16, String)>,
        reason: &'static str,
    },
    /// Edge shutdown: close with 1001 and do not report a disconnect.
    Shutdown,
}

/// A socket just upgraded, with what its life needs.
pub struct Accepted {
    pub edge: Arc<Edge>,
    pub socket: WebSocket,
    pub addr: SocketAddr,
    /// The `Authorization` bearer of the upgrade request.
    pub bearer: Option<String>,
}

/// A socket's whole life.
///
/// Every value an idle socket keeps is stored once in its task: an async function keeps
/// room for its arguments for its whole life even after moving them on, so the socket
/// arrives boxed and the serving loop runs here, beside what the boxed opening returned,
/// not nested in the calls that produced it. (Nested, the 368-byte `WebSocket` was stored
/// four times and the hello three; the task was 4.6 KiB per socket.)
pub async fn run(accepted: Box<Accepted>) {
    metrics::gauge!("moolai_edge_sockets").increment(1.0);
    let span = tracing::info_span!(
        "socket",
        addr = %accepted.addr,
        orchestrator_id = tracing::field::Empty
    );
    let edge = accepted.edge.clone();
    async {
        let Some((mut live, ok)) = Box::pin(opening(accepted)).await else {
            return;
        };
        let end = if ok {
            serve(&edge, &mut live.socket, &live.s, &live.mailbox).await
        } else {
            End::Disconnect {
                close: None,
                reason: "write_failed",
            }
        };
        Box::pin(finish(&edge, live, end)).await;
    }
    .instrument(span)
    .await;
    metrics::gauge!("moolai_edge_sockets").decrement(1.0);
}

/// The hello, its commit, the binding and the first frames: [`open`] after [`await_hello`].
async fn opening(accepted: Box<Accepted>) -> Option<(Live, bool)> {
    let Accepted {
        edge,
        mut socket,
        addr,
        bearer,
    } = *accepted;
    let hello = match await_hello(&edge, &mut socket).await {
        Ok(h) => h,
        Err((code, reason)) => {
            close(&mut socket, code, &reason).await;
            return None;
        }
    };
    tracing::Span::current().record("orchestrator_id", hello.orchestrator_id.as_str());
    open(&edge, socket, addr, bearer, hello).await
}

/// Waits for the first frame, which must be a valid hello.
async fn await_hello(edge: &Edge, socket: &mut WebSocket) -> Result<Hello, (u16, String)> {
    let timeout = Duration::from_secs(edge.settings.ws_hello_timeout_sec);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let next = tokio::select! {
            r = tokio::time::timeout_at(deadline, socket.recv()) => r,
            () = edge.shutdown.cancelled() => return Err((CLOSE_GOING_AWAY, "edge shutting down".into())),
        };
        let message = match next {
            Err(_) => {
                metrics::counter!("moolai_edge_closes_total", "reason" => "hello_timeout")
                    .increment(1);
                return Err((
                    CLOSE_POLICY,
                    format!("no register/handshake frame within {}s", timeout.as_secs()),
                ));
            }
            Ok(None) => return Err((CLOSE_NORMAL, String::new())),
            Ok(Some(Err(e))) => return Err(read_error_close(&e)),
            Ok(Some(Ok(m))) => m,
        };
        match message {
            Message::Text(text) => {
                let frame = match decode_client_frame(text.as_str()) {
                    Decoded::Frame(f) => f,
                    Decoded::Unknown(t) => {
                        return Err((
                            CLOSE_POLICY,
                            format!("first frame must be register or handshake, got {t:?}"),
                        ));
                    }
                    Decoded::Invalid(e) => {
                        return Err((
                            CLOSE_POLICY,
                            truncate(&format!("first frame is not a valid hello: {e}")),
                        ));
                    }
                };
                let kind = frame.type_name();
                let Some(hello) = Hello::from_frame(frame) else {
                    return Err((
                        CLOSE_POLICY,
                        format!("first frame must be register or handshake, got {kind:?}"),
                    ));
                };
                if let Err(e) = hello.validate() {
                    return Err((CLOSE_POLICY, truncate(&format!("invalid hello: {e}"))));
                }
                return Ok(hello);
            }
            Message::Binary(_) => {
                return Err((CLOSE_UNSUPPORTED, "binary frames are not accepted".into()));
            }
            Message::Close(_) => return Err((CLOSE_NORMAL, String::new())),
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}

/// Close reasons are limited to 123 bytes by the protocol.
fn truncate(s: &str) -> String {
    let mut end = s.len().min(120);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Maps a read error to a close: oversized frames get 1009.
fn read_error_close(e: &axum::Error) -> (u16, String) {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(err) = source {
        if let Some(tokio_tungstenite::tungstenite::Error::Capacity(_)) =
            err.downcast_ref::<tokio_tungstenite::tungstenite::Error>()
        {
            metrics::counter!("moolai_edge_closes_total", "reason" => "too_big").increment(1);
            return (CLOSE_TOO_BIG, "frame too large".into());
        }
        source = err.source();
    }
    (CLOSE_POLICY, "protocol error".into())
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        socket.send(Message::Close(Some(frame))),
    )
    .await;
    // Complete the close handshake: read (and discard) until the peer's close arrives, so the
    // TCP close does not reset a connection with unread data and lose our close frame.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// [`send`] with its future on the heap while it runs, for the serving loop: an idle
/// socket's task then keeps no room for a write in progress (264 bytes, mostly its timer).
fn send_boxed<'a>(
    socket: &'a mut WebSocket,
    frame: &'a ServerFrame,
) -> std::pin::Pin<Box<impl Future<Output = bool> + Send + 'a>> {
    Box::pin(send(socket, frame))
}

async fn send(socket: &mut WebSocket, frame: &ServerFrame) -> bool {
    // The write buffer is bounded (max_write_buffer_size): a client that stops reading makes
    // this fail or stall, and the timeout turns a stall into a close.
    matches!(
        tokio::time::timeout(
            Duration::from_secs(10),
            socket.send(Message::Text(frame.to_text().into()))
        )
        .await,
        Ok(Ok(()))
    )
}

/// Per-socket subjects, built once instead of per frame.
struct SessionSubjects {
    /// Shared bytes: every heartbeat takes a reference, not a copy.
    heartbeat: Subject,
    frame: String,
    disconnect: String,
    delivery: String,
}

struct Session {
    orchestrator_id: String,
    organization_id: String,
    session_id: String,
    subjects: SessionSubjects,
}

/// A socket registered as pending while its hello commits; unregistered when dropped.
struct Pending {
    edge: Arc<Edge>,
    orchestrator_id: String,
    session_id: Arc<str>,
}

impl Pending {
    fn add(edge: &Arc<Edge>, orchestrator_id: &str, handle: SocketHandle) -> Self {
        let session_id = handle.session_id.clone();
        edge.registry.add_pending(orchestrator_id, handle);
        Self {
            edge: edge.clone(),
            orchestrator_id: orchestrator_id.to_owned(),
            session_id,
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.edge
            .registry
            .remove_pending(&self.orchestrator_id, &self.session_id);
    }
}

/// A socket past its hello, bound in the registry: what its steady state holds.
struct Live {
    socket: WebSocket,
    s: Session,
    mailbox: Arc<Mailbox>,
}

/// Commits the hello, binds the socket and sends the first frames. `None` when the socket
/// is done (refused, or the controller unavailable); otherwise whether those writes succeeded.
#[allow(clippy::too_many_lines)]
async fn open(
    edge: &Arc<Edge>,
    mut socket: WebSocket,
    addr: SocketAddr,
    bearer: Option<String>,
    hello: Hello,
) -> Option<(Live, bool)> {
    let started = Instant::now();
    let session_id = uuid::Uuid::now_v7().to_string();
    let auth_token = bearer.or(hello.auth_token).filter(|t| !t.is_empty());
    if auth_token.is_none() && edge.settings.orchestrator_auth == OrchestratorAuth::Token {
        // Decided before any acknowledgement, without a round trip to state.
        metrics::counter!("moolai_edge_hellos_total", "outcome" => "rejected").increment(1);
        reject(
            &mut socket,
            "unauthorized",
            "this controller requires an orchestrator token: send Authorization: Bearer <token> \
             on the upgrade or auth_token in the hello",
        )
        .await;
        return None;
    }
    let request = HelloRequest {
        orchestrator_id: hello.orchestrator_id.clone(),
        organization_id: hello.organization_id.clone(),
        name: hello.name,
        location: hello.location,
        features: hello.features,
        metadata: hello.metadata,
        dialect: hello.dialect,
        auth_token,
        session_id: session_id.clone(),
        edge_id: edge.edge_id.clone(),
        remote_addr: Some(addr.to_string()),
    };
    // The socket's queue exists before the hello is sent: commands for this orchestrator that
    // arrive while state commits the hello wait in it (behind provisioning) instead of being
    // lost in the gap between the commit and the binding below.
    let mailbox = Mailbox::new(edge.settings.ws_outbound_queue);
    let handle = SocketHandle {
        session_id: session_id.as_str().into(),
        mailbox: mailbox.clone(),
    };
    let binding = Pending::add(edge, &request.orchestrator_id, handle.clone());
    let reply: Result<HelloReply, BusError> = edge
        .bus
        .request(
            edge.bus.subjects().hello(),
            &request,
            Duration::from_secs(edge.settings.hello_commit_timeout_sec),
        )
        // A short span of its own: the socket span lives as long as the socket, so without
        // this the edge's part of the hello trace would only be exported at disconnect.
        .instrument(tracing::info_span!("hello_commit"))
        .await;
    let (provisioning, pending) = match reply {
        Ok(HelloReply::Accepted {
            provisioning,
            pending_messages,
        }) => (provisioning, pending_messages),
        Ok(HelloReply::Rejected { code, message }) => {
            metrics::counter!("moolai_edge_hellos_total", "outcome" => "rejected").increment(1);
            reject(&mut socket, &code, &message).await;
            return None;
        }
        Err(e) => {
            metrics::counter!("moolai_edge_hellos_total", "outcome" => "unavailable").increment(1);
            tracing::warn!(error = %e, "hello not committed");
            let _ = send(
                &mut socket,
                &ServerFrame::Error(ErrorFrame {
                    code: "unavailable".into(),
                    message: "the controller cannot register orchestrators right now; retry later"
                        .into(),
                    retry_after_sec: Some(5),
                }),
            )
            .await;
            close(
                &mut socket,
                CLOSE_TRY_AGAIN,
                "controller unavailable, retry later",
            )
            .await;
            return None;
        }
    };
    metrics::counter!("moolai_edge_hellos_total", "outcome" => "accepted").increment(1);
    metrics::histogram!("moolai_edge_hello_seconds").record(started.elapsed().as_secs_f64());

    let org = provisioning.organization_id.clone();
    let id = provisioning.orchestrator_id.clone();
    let subjects = edge.bus.subjects();
    let s = Session {
        subjects: SessionSubjects {
            heartbeat: Subject::from(subjects.orchestrator(Kind::Heartbeat, &org, &id)),
            frame: subjects.orchestrator(Kind::Frame, &org, &id),
            disconnect: subjects.orchestrator(Kind::Disconnect, &org, &id),
            delivery: subjects.orchestrator(Kind::Delivery, &org, &id),
        },
        orchestrator_id: id,
        organization_id: org,
        session_id,
    };

    let replaced = edge.registry.insert(&s.orchestrator_id, handle);
    // Bound: commands now reach it through the registry, no longer as a pending socket.
    drop(binding);
    if let Some(old) = replaced {
        old.send(Outbound::replaced());
    }

    // handshake_ack is always the first frame; provisioning follows (level-triggered).
    let ack = ServerFrame::HandshakeAck(HandshakeAck {
        success: true,
        orch_id: s.orchestrator_id.clone(),
        orchestrator_id: s.orchestrator_id.clone(),
        ts: now_rfc3339(),
        organization_id: Some(s.organization_id.clone()),
        session_id: Some(s.session_id.clone()),
        heartbeat_interval_sec: Some(edge.settings.heartbeat_interval_sec),
    });
    let independent = provisioning.is_independent;
    let provisioning = ServerFrame::Provisioning { data: provisioning };
    mailbox.told.record(&provisioning);
    let mut ok = send(&mut socket, &ack).await && send(&mut socket, &provisioning).await;
    if ok && independent {
        ok = send(
            &mut socket,
            &ServerFrame::StopMonitoring(MonitoringChange {
                orchestrator_id: s.orchestrator_id.clone(),
                is_independent: true,
                ts: now_rfc3339(),
                reason: Some("orchestrator is in independence mode".into()),
            }),
        )
        .await;
    }
    for message in pending {
        if !ok {
            break;
        }
        let message_id = message.id.clone();
        ok = send(&mut socket, &ServerFrame::Message { data: message }).await;
        if ok {
            report_delivery(edge, &s, message_id).await;
        }
    }

    Some((Live { socket, s, mailbox }, ok))
}

/// Unbinds the socket, closes it and reports the disconnect.
async fn finish(edge: &Edge, live: Live, end: End) {
    let Live { mut socket, s, .. } = live;
    edge.registry
        .remove_if_current(&s.orchestrator_id, &s.session_id);
    match end {
        End::Shutdown => close(&mut socket, CLOSE_GOING_AWAY, "edge shutting down").await,
        End::Disconnect { close: c, reason } => {
            if let Some((code, text)) = c {
                close(&mut socket, code, &text).await;
            }
            metrics::counter!("moolai_edge_closes_total", "reason" => reason).increment(1);
            let event = DisconnectEvent {
                orchestrator_id: s.orchestrator_id.clone(),
                organization_id: s.organization_id.clone(),
                session_id: s.session_id.clone(),
                edge_id: edge.edge_id.clone(),
                reason: reason.to_owned(),
                at: Utc::now(),
            };
            if let Err(e) = edge.bus.publish(&s.subjects.disconnect, &event).await {
                tracing::warn!(error = %e, "disconnect not published; the TTL will expire the orchestrator");
            }
        }
    }
    tracing::debug!("socket closed");
}

/// Refuses a hello: an `error` frame, then close 1013 (retry later) when the controller is
/// unavailable, else 1008 with `hello rejected: <code>` (a missing, wrong, revoked or other
/// organization's credential is `unauthorized`, `forbidden` or `organization_mismatch`).
async fn reject(socket: &mut WebSocket, code: &str, message: &str) {
    let retry = code == "unavailable";
    let _ = send(
        socket,
        &ServerFrame::Error(ErrorFrame {
            code: code.to_owned(),
            message: message.to_owned(),
            retry_after_sec: retry.then_some(5),
        }),
    )
    .await;
    let close_code = if retry { CLOSE_TRY_AGAIN } else { CLOSE_POLICY };
    close(
        socket,
        close_code,
        &truncate(&format!("hello rejected: {code}")),
    )
    .await;
}

async fn report_delivery(edge: &Edge, s: &Session, message_id: String) {
    let event = DeliveryEvent {
        orchestrator_id: s.orchestrator_id.clone(),
        organization_id: s.organization_id.clone(),
        message_id,
        session_id: s.session_id.clone(),
        at: Utc::now(),
    };
    if let Err(e) = edge.bus.publish(&s.subjects.delivery, &event).await {
        tracing::warn!(error = %e, "delivery not reported; the message will be sent again on reconnect");
    }
}

/// Token bucket of frames per socket.
struct RateLimit {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
    /// Frames refused since the bucket last had room.
    refused: u32,
}

impl RateLimit {
    fn new(rate: u32, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            rate: f64::from(rate),
            burst: f64::from(burst),
            last: Instant::now(),
            refused: 0,
        }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            true
        } else {
            self.refused += 1;
            false
        }
    }
}

async fn serve(edge: &Edge, socket: &mut WebSocket, s: &Session, mailbox: &Mailbox) -> End {
    let settings = &edge.settings;
    let idle = Duration::from_secs(settings.ws_idle_timeout_sec);
    let mut ticker = tokio::time::interval(Duration::from_secs(settings.controller_heartbeat_sec));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate
    let mut last_inbound = Instant::now();
    let mut limiter = RateLimit::new(settings.ws_rate_limit_per_sec, settings.ws_rate_limit_burst);
    let mut invalid_in_a_row = 0u32;

    loop {
        tokio::select! {
            () = edge.shutdown.cancelled() => return End::Shutdown,
            mail = mailbox.recv() => {
                match mail {
                    Mail::Killed => {
                        return End::Disconnect { close: Some((CLOSE_POLICY, "too slow: outbound queue full".into())), reason: "slow_consumer" };
                    }
                    Mail::Out(Outbound::Frame(queued)) => {
                        let (frame, message_id) = *queued;
                        mailbox.told.record(&frame);
                        if !send_boxed(socket, &frame).await {
                            return End::Disconnect { close: None, reason: "write_failed" };
                        }
                        if let Some(id) = message_id {
                            // Boxed, as frame handling below: an idle socket's task does not
                            // carry room for these futures (see `run`).
                            Box::pin(report_delivery(edge, s, id)).await;
                        }
                    }
                    Mail::Out(Outbound::Close(close)) => {
                        let (code, reason, disconnect_reason) = *close;
                        return End::Disconnect { close: Some((code, reason)), reason: disconnect_reason };
                    }
                }
            }
            _ = ticker.tick() => {
                if last_inbound.elapsed() > idle {
                    return End::Disconnect { close: Some((CLOSE_NORMAL, "idle timeout".into())), reason: "idle_timeout" };
                }
                let hb = ServerFrame::ControllerHeartbeat { ts: now_rfc3339() };
                if !send_boxed(socket, &hb).await || socket.send(Message::Ping(Default::default())).await.is_err() {
                    return End::Disconnect { close: None, reason: "write_failed" };
                }
            }
            incoming = socket.recv() => {
                let message = match incoming {
                    None => return End::Disconnect { close: None, reason: "client_closed" },
                    Some(Err(e)) => {
                        let (code, text) = read_error_close(&e);
                        let reason = if code == CLOSE_TOO_BIG { "too_big" } else { "protocol_error" };
                        return End::Disconnect { close: Some((code, text)), reason };
                    }
                    Some(Ok(m)) => m,
                };
                last_inbound = Instant::now();
                let text = match message {
                    Message::Text(t) => t,
                    Message::Binary(_) => {
                        return End::Disconnect { close: Some((CLOSE_UNSUPPORTED, "binary frames are not accepted".into())), reason: "protocol_error" };
                    }
                    Message::Close(_) => return End::Disconnect { close: None, reason: "client_closed" },
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                if !limiter.allow() {
                    metrics::counter!("moolai_edge_frames_refused_total", "reason" => "rate_limited").increment(1);
                    if limiter.refused == 1 {
                        let err = ServerFrame::Error(ErrorFrame {
                            code: "rate_limited".into(),
                            message: format!("more than {} frames per second; slow down", settings.ws_rate_limit_per_sec),
                            retry_after_sec: Some(1),
                        });
                        let _ = send_boxed(socket, &err).await;
                    }
                    if limiter.refused > settings.ws_rate_limit_burst {
                        return End::Disconnect { close: Some((CLOSE_POLICY, "rate limit exceeded".into())), reason: "rate_limited" };
                    }
                    continue;
                }
                let reply = match decode_client_frame(text.as_str()) {
                    Decoded::Frame(frame) => {
                        invalid_in_a_row = 0;
                        Box::pin(handle_frame(edge, s, frame)).await
                    }
                    Decoded::Unknown(t) => {
                        invalid_in_a_row = 0;
                        metrics::counter!("moolai_edge_frames_total", "type" => "unknown").increment(1);
                        vec![ServerFrame::error("unknown_type", format!("unknown frame type {t:?}"))]
                    }
                    Decoded::Invalid(e) => {
                        invalid_in_a_row += 1;
                        metrics::counter!("moolai_edge_frames_total", "type" => "invalid").increment(1);
                        if invalid_in_a_row >= settings.ws_max_invalid_frames {
                            return End::Disconnect { close: Some((CLOSE_POLICY, "too many invalid frames".into())), reason: "protocol_error" };
                        }
                        vec![ServerFrame::error("invalid_frame", truncate(&e))]
                    }
                };
                for frame in &reply {
                    if !send_boxed(socket, frame).await {
                        return End::Disconnect { close: None, reason: "write_failed" };
                    }
                }
            }
        }
    }
}

/// Handles one decoded frame; returns the frames to write back.
async fn handle_frame(edge: &Edge, s: &Session, frame: ClientFrame) -> Vec<ServerFrame> {
    if let ClientFrame::IAmAlive(_) = frame {
        edge.heartbeat_frames.increment(1);
    } else {
        metrics::counter!("moolai_edge_frames_total", "type" => frame.type_name()).increment(1);
    }
    if let Some(claimed) = frame.claimed_id()
        && claimed != s.orchestrator_id
    {
        return vec![ServerFrame::error(
            "orchestrator_mismatch",
            format!(
                "this socket is registered as {}, not {claimed}",
                s.orchestrator_id
            ),
        )];
    }
    match frame {
        ClientFrame::IAmAlive(beat) => {
            let mut replies = Vec::new();
            let usage = match beat.usage {
                Some(u) => match u.validate() {
                    Ok(()) => Some(u.into_entries()),
                    Err(e) => {
                        replies.push(ServerFrame::error(
                            e.code,
                            format!("usage ignored: {}", e.message),
                        ));
                        None
                    }
                },
                None => None,
            };
            let event = HeartbeatEventRef {
                orchestrator_id: &s.orchestrator_id,
                organization_id: &s.organization_id,
                session_id: &s.session_id,
                received_at: Utc::now(),
                edge_id: &edge.edge_id,
                usage: usage.as_deref(),
            };
            match serde_json::to_vec(&event) {
                Ok(payload) => {
                    let message = Outgoing::new(s.subjects.heartbeat.clone(), payload.into());
                    if !edge.heartbeats.publish(message).await {
                        tracing::debug!("heartbeat not published: the edge is stopping");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "heartbeat not encoded"),
            }
            replies
        }
        ClientFrame::Keepalive(_) => vec![ServerFrame::KeepaliveAck { ts: now_rfc3339() }],
        ClientFrame::Register(_) | ClientFrame::Handshake(_) => vec![ServerFrame::error(
            "already_registered",
            "this socket already said hello; open a new socket to register another orchestrator",
        )],
        other => {
            let request = FrameRequest {
                orchestrator_id: s.orchestrator_id.clone(),
                organization_id: s.organization_id.clone(),
                session_id: s.session_id.clone(),
                frame: other,
            };
            match edge
                .bus
                .request::<_, FrameReply>(
                    s.subjects.frame.clone(),
                    &request,
                    moolai_bus::DEFAULT_REQUEST_TIMEOUT,
                )
                .await
            {
                Ok(reply) => reply.frames,
                Err(e) => {
                    tracing::warn!(error = %e, "frame not processed");
                    vec![ServerFrame::Error(ErrorFrame {
                        code: "unavailable".into(),
                        message: "the controller could not process this frame; send it again later"
                            .into(),
                        retry_after_sec: Some(5),
                    })]
                }
            }
        }
    }
}
