//! A minimal orchestrator socket for tests: send JSON, wait for frames by type, observe closes.

use std::time::Duration;

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct TestSocket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames read while looking for another type, kept for later `expect`s.
    backlog: Vec<Value>,
}

/// How a socket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

impl TestSocket {
    /// # Errors
    /// When the upgrade fails.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with(url, None).await
    }

    /// Connects, with `Authorization: Bearer <token>` on the upgrade when given.
    ///
    /// # Errors
    /// When the upgrade fails.
    pub async fn connect_with(url: &str, bearer: Option<&str>) -> anyhow::Result<Self> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut request = url
            .into_client_request()
            .with_context(|| format!("bad url {url}"))?;
        if let Some(token) = bearer {
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {token}")
                    .parse()
                    .context("token is not a header value")?,
            );
        }
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        Ok(Self {
            ws,
            backlog: Vec::new(),
        })
    }

    /// # Errors
    /// When the socket is closed.
    pub async fn send(&mut self, frame: &Value) -> anyhow::Result<()> {
        self.ws.send(Message::text(frame.to_string())).await?;
        Ok(())
    }

    /// # Errors
    /// When the socket is closed.
    pub async fn send_raw(&mut self, message: Message) -> anyhow::Result<()> {
        self.ws.send(message).await?;
        Ok(())
    }

    /// The next JSON frame of any type (controller heartbeats included).
    ///
    /// # Errors
    /// On timeout or close.
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<Value> {
        if !self.backlog.is_empty() {
            return Ok(self.backlog.remove(0));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .context("timed out waiting for a frame")?;
            match msg {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str())?),
                Some(Ok(Message::Close(c))) => bail!("socket closed: {c:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("socket error: {e}"),
                None => bail!("socket ended"),
            }
        }
    }

    /// Waits for a frame of type `kind`, keeping other frames (except controller heartbeats)
    /// for later calls.
    ///
    /// # Errors
    /// On timeout or close.
    pub async fn expect(&mut self, kind: &str, timeout: Duration) -> anyhow::Result<Value> {
        if let Some(i) = self.backlog.iter().position(|f| f["type"] == kind) {
            return Ok(self.backlog.remove(i));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .with_context(|| {
                    format!("timed out waiting for {kind}; seen {:?}", self.backlog)
                })?;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str())?;
                    if v["type"] == kind {
                        return Ok(v);
                    }
                    if v["type"] != "controller_heartbeat" {
                        self.backlog.push(v);
                    }
                }
                Some(Ok(Message::Close(c))) => {
                    bail!("socket closed while waiting for {kind}: {c:?}")
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("socket error while waiting for {kind}: {e}"),
                None => bail!("socket ended while waiting for {kind}"),
            }
        }
    }

    /// Reads until the server closes the socket and returns its close frame.
    ///
    /// # Errors
    /// On timeout.
    pub async fn expect_close(&mut self, timeout: Duration) -> anyhow::Result<Closed> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .context("timed out waiting for the server to close")?;
            match msg {
                Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                    return Ok(Closed {
                        code: code.into(),
                        reason: reason.to_string(),
                    });
                }
                Some(Ok(Message::Close(None))) | None => {
                    return Ok(Closed {
                        code: 1005,
                        reason: String::new(),
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    return Ok(Closed {
                        code: 1006,
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

    /// Closes the socket from the client side.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        // Drain until the server's close arrives so the close handshake completes.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// `hello` with `auth_token` set (at the top level: both dialects read it there).
#[must_use]
pub fn with_token(mut hello: Value, token: &str) -> Value {
    hello["auth_token"] = Value::from(token);
    hello
}

/// HLD-dialect hello.
#[must_use]
pub fn register(id: &str, org: &str) -> Value {
    json!({"type": "register", "orchestrator_id": id, "organization_id": org,
           "metadata": {"name": format!("{id} name"), "location": "eu-west", "version": "2.0.0"}})
}

/// Deployed-client-dialect hello.
#[must_use]
pub fn handshake(id: &str) -> Value {
    json!({"type": "handshake", "service": "orchestrator", "timestamp": "2026-11-27T10:00:00Z",
           "data": {"orchestrator_id": id, "metadata": {"version": "1.4.2", "hostname": "gw", "ip": "10.0.0.1",
                    "ssl_enabled": false, "name": format!("{id} gateway"), "location": "us-east", "features": {"cache": true}}}})
}

/// Connects, says hello, and checks that `handshake_ack` is the very first frame and
/// `provisioning` follows. Retries while the controller answers "try again later" (services
/// still starting).
///
/// # Errors
/// When the hello is not acknowledged within `timeout`.
pub async fn connect_and_hello(
    url: &str,
    hello: &Value,
    timeout: Duration,
) -> anyhow::Result<(TestSocket, Value)> {
    connect_and_hello_with(url, hello, None, timeout).await
}

/// [`connect_and_hello`] with `Authorization: Bearer <token>` on the upgrade.
///
/// # Errors
/// When the hello is not acknowledged within `timeout`.
pub async fn connect_and_hello_with(
    url: &str,
    hello: &Value,
    bearer: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<(TestSocket, Value)> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut s = TestSocket::connect_with(url, bearer).await?;
        s.send(hello).await?;
        let first = s.next(Duration::from_secs(15)).await;
        match first {
            Ok(f) if f["type"] == "handshake_ack" => {
                anyhow::ensure!(f["success"] == true, "ack not successful: {f}");
                let provisioning = s.next(Duration::from_secs(5)).await?;
                anyhow::ensure!(
                    provisioning["type"] == "provisioning",
                    "second frame is not provisioning: {provisioning}"
                );
                return Ok((s, provisioning));
            }
            Ok(f) if f["type"] == "error" && f["code"] == "unavailable" => {}
            Ok(f) => bail!("first frame is not handshake_ack: {f}"),
            Err(_) => {}
        }
        if tokio::time::Instant::now() > deadline {
            bail!("hello not acknowledged within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
