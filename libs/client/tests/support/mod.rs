//! A scripted controller for client tests: a real WebSocket server on 127.0.0.1:0 whose
//! behaviour each test drives frame by frame.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use moolai_client::{Backoff, ClientConfig, ClientEvent, Dialect};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub const T: Duration = Duration::from_secs(10);

/// An upgrade answered with an HTTP error instead of 101.
#[derive(Clone, Copy)]
pub struct Refusal {
    pub status: u16,
    pub retry_after: Option<u64>,
}

pub enum Incoming {
    Refused { at: Instant, status: u16 },
    Accepted(Box<Conn>),
}

pub struct Server {
    pub url: String,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    refusals: Arc<Mutex<VecDeque<Refusal>>>,
}

pub struct Conn {
    pub ws: WebSocketStream<TcpStream>,
    /// When the TCP connection was accepted.
    pub at: Instant,
    pub peer: SocketAddr,
    pub authorization: Option<String>,
    pub path: String,
}

impl Server {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, incoming) = mpsc::unbounded_channel();
        let refusals: Arc<Mutex<VecDeque<Refusal>>> = Arc::default();
        let queue = refusals.clone();
        tokio::spawn(async move {
            while let Ok((tcp, peer)) = listener.accept().await {
                let at = Instant::now();
                let refusal = queue.lock().expect("lock").pop_front();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut authorization = None;
                    let mut path = String::new();
                    #[allow(clippy::result_large_err)] // the signature tungstenite asks for
                    let callback = |request: &Request, response: Response| {
                        authorization = request
                            .headers()
                            .get(header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        path = request.uri().path().to_owned();
                        match refusal {
                            None => Ok(response),
                            Some(r) => {
                                let mut error = ErrorResponse::new(Some("overloaded".into()));
                                *error.status_mut() =
                                    StatusCode::from_u16(r.status).expect("status");
                                if let Some(s) = r.retry_after {
                                    error.headers_mut().insert(
                                        header::RETRY_AFTER,
                                        s.to_string().parse().expect("header"),
                                    );
                                }
                                Err(error)
                            }
                        }
                    };
                    match tokio_tungstenite::accept_hdr_async(tcp, callback).await {
                        Ok(ws) => {
                            let _ = tx.send(Incoming::Accepted(Box::new(Conn {
                                ws,
                                at,
                                peer,
                                authorization,
                                path,
                            })));
                        }
                        Err(_) => {
                            if let Some(r) = refusal {
                                let _ = tx.send(Incoming::Refused {
                                    at,
                                    status: r.status,
                                });
                            }
                        }
                    }
                });
            }
        });
        Self {
            url: format!("ws://127.0.0.1:{port}/ws"),
            incoming,
            refusals,
        }
    }

    /// The next upgrade(s) get this HTTP answer instead of 101.
    pub fn refuse_next(&self, status: u16, retry_after: Option<u64>) {
        self.refusals.lock().expect("lock").push_back(Refusal {
            status,
            retry_after,
        });
    }

    pub async fn next(&mut self) -> Incoming {
        tokio::time::timeout(T, self.incoming.recv())
            .await
            .expect("no connection attempt in time")
            .expect("server gone")
    }

    pub async fn accept(&mut self) -> Conn {
        match self.next().await {
            Incoming::Accepted(c) => *c,
            Incoming::Refused { .. } => panic!("expected an accepted connection"),
        }
    }

    /// Asserts that no connection attempt arrives within `window`.
    pub async fn expect_no_attempt(&mut self, window: Duration) {
        if let Ok(Some(incoming)) = tokio::time::timeout(window, self.incoming.recv()).await {
            let at = match incoming {
                Incoming::Accepted(c) => c.at,
                Incoming::Refused { at, .. } => at,
            };
            panic!("unexpected connection attempt at {at:?}");
        }
    }
}

impl Conn {
    /// The next text frame within `timeout`, `None` on timeout. Panics on close.
    pub async fn recv(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match message {
                Some(Ok(Message::Text(t))) => {
                    return Some(serde_json::from_str(t.as_str()).expect("client sent JSON"));
                }
                Some(Ok(Message::Close(c))) => panic!("client closed: {c:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("socket error: {e}"),
                None => panic!("socket ended"),
            }
        }
    }

    /// The next text frame; panics after [`T`].
    pub async fn frame(&mut self) -> Value {
        self.recv(T)
            .await
            .expect("no frame from the client in time")
    }

    /// The next frame of type `kind`, skipping heartbeats.
    pub async fn frame_of(&mut self, kind: &str) -> Value {
        loop {
            let f = self.frame().await;
            if f["type"] == kind {
                return f;
            }
            assert_eq!(
                f["type"], "i_am_alive",
                "unexpected frame while waiting for {kind}: {f}"
            );
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .expect("send to the client");
    }

    /// Reads the hello, answers `handshake_ack` then `provisioning`; returns the hello.
    pub async fn welcome(
        &mut self,
        heartbeat_interval_sec: Option<u64>,
        independent: bool,
    ) -> Value {
        let hello = self.frame().await;
        let id = hello["orchestrator_id"]
            .as_str()
            .or_else(|| hello["data"]["orchestrator_id"].as_str())
            .expect("hello names an orchestrator")
            .to_owned();
        self.send(ack(&id, heartbeat_interval_sec)).await;
        self.send(provisioning(&id, independent, 3)).await;
        hello
    }

    pub async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = self.ws.close(Some(frame)).await;
        // Like the edge: read until the client's close arrives, then drop the connection
        // (the server closes TCP first; the client waits for it).
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(m)) = self.ws.next().await {
                if m.is_close() {
                    break;
                }
            }
        })
        .await;
    }

    /// Reads until the client closes; returns its close code.
    pub async fn expect_close(&mut self) -> u16 {
        let deadline = Instant::now() + T;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("client did not close")
            {
                Some(Ok(Message::Close(Some(f)))) => return f.code.into(),
                Some(Ok(Message::Close(None))) | None => return 1005,
                Some(Ok(_)) => {}
                Some(Err(_)) => return 1006,
            }
        }
    }
}

pub fn ack(id: &str, heartbeat_interval_sec: Option<u64>) -> Value {
    let mut ack = json!({"type": "handshake_ack", "success": true, "orch_id": id,
        "orchestrator_id": id, "ts": "2026-11-27T10:00:00.000Z", "organization_id": "org-1",
        "session_id": format!("session-{id}")});
    if let Some(s) = heartbeat_interval_sec {
        ack["heartbeat_interval_sec"] = json!(s);
    }
    ack
}

pub fn provisioning(id: &str, independent: bool, version: i64) -> Value {
    json!({"type": "provisioning", "data": {"orchestrator_id": id, "organization_id": "org-1",
        "name": "n", "location": "l", "features": {}, "metadata": {},
        "session_config": {"cache": {"enabled": true}}, "is_independent": independent,
        "privacy_mode": false, "monitoring_enabled": true, "config_version": version}})
}

/// A config with short timings so tests run in real time quickly.
pub fn config(url: &str, id: &str, dialect: Dialect) -> ClientConfig {
    let mut config = ClientConfig::new(url, id, dialect);
    config.backoff = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(1),
        multiplier: 2.0,
    };
    config.handshake_timeout = Duration::from_secs(5);
    config
}

/// Waits for the first event matching `pred`, skipping others.
pub async fn wait_event(
    events: &mut broadcast::Receiver<ClientEvent>,
    what: &str,
    mut pred: impl FnMut(&ClientEvent) -> bool,
) -> ClientEvent {
    let deadline = Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => panic!("timed out waiting for {what}"),
            Ok(Err(e)) => panic!("event stream failed while waiting for {what}: {e}"),
            Ok(Ok(event)) if pred(&event) => return event,
            Ok(Ok(_)) => {}
        }
    }
}
