//! One connection attempt: TCP connect (from a chosen source address), WebSocket upgrade,
//! hello, `handshake_ack` (required first), `provisioning`.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use moolai_protocol::{
    ClientFrame, Dialect, ErrorFrame, Handshake, HandshakeAck, HandshakeData, Provisioning,
    Register, ServerFrame, now_rfc3339,
};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::Shared;
use crate::config::ClientConfig;
use crate::event::{ClientEvent, DisconnectKind};

/// Plain TCP: the workspace compiles no TLS backend (terminate TLS in front of the edge).
pub(crate) type Socket = WebSocketStream<TcpStream>;

/// Writes that take longer than this mean the controller stopped reading: the session ends.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a close handshake may take before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A session that reached provisioning.
pub(crate) struct Established {
    pub ws: Socket,
    pub ack: HandshakeAck,
    pub provisioning: Provisioning,
    pub handshake_latency: Duration,
    /// Frames that arrived between the ack and provisioning, handled by the session.
    pub early: Vec<ServerFrame>,
}

/// How an attempt (or a session) ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ending {
    pub kind: DisconnectKind,
    pub code: Option<u16>,
    pub reason: String,
    /// The server asked for at least this long before the next attempt.
    pub retry_after: Option<Duration>,
    /// The controller refused this client for a reason retrying cannot fix.
    pub rejected: bool,
    /// How long the session lasted; `None` when it never reached provisioning.
    pub session: Option<Duration>,
}

impl Ending {
    pub(crate) fn new(kind: DisconnectKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            code: None,
            reason: reason.into(),
            retry_after: None,
            rejected: false,
            session: None,
        }
    }

    pub(crate) fn closed(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code: Some(code),
            ..Self::new(DisconnectKind::Closed(code), reason)
        }
    }

    pub(crate) fn from_ws_error(error: &WsError) -> Self {
        match error {
            WsError::Protocol(_) | WsError::Capacity(_) | WsError::Utf8(_) => {
                Self::new(DisconnectKind::Protocol, error.to_string())
            }
            _ => Self::new(DisconnectKind::Io, error.to_string()),
        }
    }
}

/// Buffers sized for many sockets per process (tungstenite's defaults allocate 128 KiB of
/// read buffer per socket eagerly); frames from the controller are small.
fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(4 * 1024 * 1024))
        .max_frame_size(Some(4 * 1024 * 1024))
}

/// Connects and completes the hello. The latency clock starts after a connect permit (if
/// any) is obtained; the permit is held until provisioning or failure.
pub(crate) async fn establish(
    config: &ClientConfig,
    shared: &Shared,
) -> Result<Established, Ending> {
    let _permit = match &config.connect_permits {
        // A closed semaphore only means nobody limits us any more.
        Some(permits) => permits.clone().acquire_owned().await.ok(),
        None => None,
    };
    let started = Instant::now();
    let request = upgrade_request(config)?;
    let connect_deadline = started + config.connect_timeout;
    let tcp = tokio::time::timeout_at(connect_deadline, connect_tcp(config, &request))
        .await
        .map_err(|_| Ending::new(DisconnectKind::Connect, "connect timed out"))??;
    let upgraded = tokio::time::timeout_at(
        connect_deadline,
        tokio_tungstenite::client_async_with_config(request, tcp, Some(websocket_config())),
    )
    .await
    .map_err(|_| Ending::new(DisconnectKind::Connect, "WebSocket upgrade timed out"))?;
    let mut ws = match upgraded {
        Ok((ws, _response)) => ws,
        Err(WsError::Http(response)) => return Err(refused_upgrade(&response)),
        Err(e) => return Err(Ending::new(DisconnectKind::Connect, e.to_string())),
    };
    tracing::debug!(url = %config.url, "upgraded; sending hello");

    send_text(&mut ws, encode(&hello(config)))
        .await
        .map_err(|e| Ending::from_ws_error(&e))?;

    // handshake_ack must be the very first frame; an `error` first means the hello is being
    // refused and a close follows.
    let ack_deadline = Instant::now() + config.handshake_timeout;
    let mut refusal: Option<ErrorFrame> = None;
    let ack = loop {
        let text = match next_text(&mut ws, ack_deadline).await {
            Ok(text) => text,
            Err(mut ending) => {
                if let Some(error) = refusal {
                    ending.reason = if ending.reason.is_empty() {
                        format!("{}: {}", error.code, error.message)
                    } else {
                        format!("{} ({}: {})", ending.reason, error.code, error.message)
                    };
                    ending.retry_after = error.retry_after_sec.map(Duration::from_secs);
                }
                // A policy close before the ack is the controller refusing this hello.
                ending.rejected = ending.code == Some(1008);
                return Err(ending);
            }
        };
        match serde_json::from_str::<ServerFrame>(&text) {
            Ok(ServerFrame::HandshakeAck(ack)) if ack.success => break ack,
            Ok(ServerFrame::HandshakeAck(_)) => {
                close(&mut ws, 1008, "handshake not successful").await;
                let mut ending =
                    Ending::new(DisconnectKind::Protocol, "handshake_ack with success=false");
                ending.rejected = true;
                return Err(ending);
            }
            Ok(ServerFrame::Error(error)) => {
                shared.emit(|| ClientEvent::ServerError(error.clone()));
                refusal = Some(error);
            }
            other => {
                let what = other.map_or_else(|_| first_chars(&text), |f| frame_name(&f).to_owned());
                close(&mut ws, 1002, "expected handshake_ack").await;
                return Err(Ending::new(
                    DisconnectKind::Protocol,
                    format!("first frame is not handshake_ack: {what}"),
                ));
            }
        }
    };
    let handshake_latency = started.elapsed();

    let provisioning_deadline = Instant::now() + config.handshake_timeout;
    let mut early = Vec::new();
    let provisioning = loop {
        let text = next_text(&mut ws, provisioning_deadline).await?;
        match serde_json::from_str::<ServerFrame>(&text) {
            Ok(ServerFrame::Provisioning { data }) => break data,
            Ok(frame) => early.push(frame),
            // Unknown types are ignored (forward compatibility).
            Err(e) => tracing::debug!(error = %e, "ignoring an undecodable frame"),
        }
    };
    Ok(Established {
        ws,
        ack,
        provisioning,
        handshake_latency,
        early,
    })
}

/// The upgrade request, with the bearer token.
fn upgrade_request(config: &ClientConfig) -> Result<Request, Ending> {
    let mut request = config
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| Ending::new(DisconnectKind::Connect, format!("bad url: {e}")))?;
    if let Some(token) = &config.auth_token {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| {
                Ending::new(
                    DisconnectKind::Connect,
                    "auth_token is not a valid header value",
                )
            })?;
        value.set_sensitive(true);
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    Ok(request)
}

/// Resolves the URL's host and connects, from `local_address` when set.
async fn connect_tcp(config: &ClientConfig, request: &Request) -> Result<TcpStream, Ending> {
    let uri = request.uri();
    let host = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .ok_or_else(|| Ending::new(DisconnectKind::Connect, "url has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Ending::new(DisconnectKind::Connect, format!("resolving {host}: {e}")))?;
    let mut last_error = format!("{host} resolved to no usable address");
    for addr in addrs {
        if let Some(local) = config.local_address
            && local.is_ipv4() != addr.is_ipv4()
        {
            continue;
        }
        match connect_one(config, addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = format!("connecting to {addr}: {e}"),
        }
    }
    Err(Ending::new(DisconnectKind::Connect, last_error))
}

async fn connect_one(config: &ClientConfig, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(local) = config.local_address {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    let stream = socket.connect(addr).await?;
    // Heartbeats are tiny and latency-sensitive; do not let Nagle hold them back.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Maps a non-101 answer to the upgrade.
fn refused_upgrade(
    response: &tokio_tungstenite::tungstenite::handshake::client::Response,
) -> Ending {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response
        .body()
        .as_deref()
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
        .unwrap_or_default();
    let mut ending = Ending::new(
        DisconnectKind::Http(status),
        format!("upgrade refused with HTTP {status}: {body}"),
    );
    ending.retry_after = retry_after;
    ending.rejected = matches!(status, 401 | 403);
    ending
}

/// The hello in the configured dialect. The token goes in the hello as well as the header.
fn hello(config: &ClientConfig) -> ClientFrame {
    let auth_token = config
        .auth_token
        .as_ref()
        .map(|t| t.expose_secret().to_owned());
    let metadata = Some(Value::Object(config.metadata.clone()));
    match config.dialect {
        Dialect::Hld => ClientFrame::Register(Register {
            orchestrator_id: config.orchestrator_id.clone(),
            organization_id: config.organization_id.clone(),
            metadata,
            auth_token,
        }),
        Dialect::Deployed => ClientFrame::Handshake(Handshake {
            service: Some("orchestrator".into()),
            data: HandshakeData {
                orchestrator_id: config.orchestrator_id.clone(),
                organization_id: config.organization_id.clone(),
                metadata,
                auth_token: None,
            },
            timestamp: Some(Value::String(now_rfc3339())),
            auth_token,
        }),
    }
}

/// Serializes a client frame. These are plain structs with string keys: serialization
/// cannot fail.
pub(crate) fn encode(frame: &ClientFrame) -> String {
    serde_json::to_string(frame).unwrap_or_default()
}

/// Writes one text frame, bounded by [`WRITE_TIMEOUT`].
pub(crate) async fn send_text(ws: &mut Socket, text: impl Into<Message>) -> Result<(), WsError> {
    match tokio::time::timeout(WRITE_TIMEOUT, ws.send(text.into())).await {
        Ok(result) => result,
        Err(_) => Err(WsError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "write timed out: the controller is not reading",
        ))),
    }
}

/// The next text frame before `deadline`; pings and pongs are skipped (tungstenite answers
/// pings itself), everything else ends the attempt.
async fn next_text(ws: &mut Socket, deadline: Instant) -> Result<String, Ending> {
    loop {
        let message = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| {
                Ending::new(
                    DisconnectKind::HandshakeTimeout,
                    "no handshake_ack/provisioning in time",
                )
            })?;
        match message {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => {
                let ending = close_ending(frame.as_ref());
                finish_close(ws).await;
                return Err(ending);
            }
            Some(Ok(Message::Binary(_))) => {
                close(ws, 1003, "binary frames are not expected").await;
                return Err(Ending::new(
                    DisconnectKind::Protocol,
                    "binary frame during the handshake",
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(Ending::from_ws_error(&e)),
            None => {
                return Err(Ending::new(
                    DisconnectKind::Io,
                    "connection ended without a close frame",
                ));
            }
        }
    }
}

/// The ending a close frame describes (1005 when the peer gave no code).
pub(crate) fn close_ending(frame: Option<&CloseFrame>) -> Ending {
    match frame {
        Some(f) => Ending::closed(u16::from(f.code), f.reason.as_str()),
        None => Ending::closed(1005, ""),
    }
}

/// After the peer's close frame: flush tungstenite's queued reply, then let the caller drop
/// the socket (RFC 6455 lets the client close TCP once both close frames have passed).
pub(crate) async fn finish_close(ws: &mut Socket) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.flush()).await;
}

/// Starts a close handshake and waits (bounded) for the peer's close frame.
pub(crate) async fn close(ws: &mut Socket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    if tokio::time::timeout(CLOSE_TIMEOUT, ws.close(Some(frame)))
        .await
        .is_ok()
    {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            while let Some(Ok(message)) = ws.next().await {
                if message.is_close() {
                    break;
                }
            }
        })
        .await;
    }
}

fn first_chars(text: &str) -> String {
    text.chars().take(80).collect()
}

/// The wire name of a server frame, for error messages.
pub(crate) fn frame_name(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::HandshakeAck(_) => "handshake_ack",
        ServerFrame::Provisioning { .. } => "provisioning",
        ServerFrame::ConfigUpdate { .. } => "config_update",
        ServerFrame::StopMonitoring(_) => "stop_monitoring",
        ServerFrame::ResumeMonitoring(_) => "resume_monitoring",
        ServerFrame::Status { .. } => "status",
        ServerFrame::KeepaliveAck { .. } => "keepalive_ack",
        ServerFrame::ControllerHeartbeat { .. } => "controller_heartbeat",
        ServerFrame::Message { .. } => "message",
        ServerFrame::Ack { .. } => "ack",
        ServerFrame::Error(_) => "error",
    }
}
