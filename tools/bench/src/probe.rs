//! A dedicated orchestrator socket that timestamps every frame it receives, for latency
//! measurements the simulator's aggregate reports cannot give.

use std::time::Duration;

use anyhow::{Context, bail};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Probe {
    pub orchestrator_id: String,
    sink: SplitSink<Ws, Message>,
    /// Frames with the instant they were read.
    frames: mpsc::UnboundedReceiver<(Instant, Value)>,
}

impl Probe {
    /// Connects, says hello (HLD dialect, with `token` in the hello) and waits for `handshake_ack` and `provisioning`.
    ///
    /// # Errors
    /// When the hello is not acknowledged in 30 s.
    pub async fn connect(
        url: &str,
        orchestrator_id: &str,
        org: &str,
        token: &str,
    ) -> anyhow::Result<Self> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            match Self::try_connect(url, orchestrator_id, org, token).await {
                Ok(p) => return Ok(p),
                Err(e) if Instant::now() > until => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }

    async fn try_connect(
        url: &str,
        orchestrator_id: &str,
        org: &str,
        token: &str,
    ) -> anyhow::Result<Self> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let (mut sink, stream) = ws.split();
        let (tx, frames) = mpsc::unbounded_channel();
        tokio::spawn(read_frames(stream, tx));
        let hello = json!({"type": "register", "orchestrator_id": orchestrator_id,
            "organization_id": org, "auth_token": token,
            "metadata": {"name": orchestrator_id, "location": "bench"}});
        sink.send(Message::text(hello.to_string())).await?;
        let mut probe = Self {
            orchestrator_id: orchestrator_id.to_owned(),
            sink,
            frames,
        };
        let (_, ack) = probe.next(Duration::from_secs(15)).await?;
        if ack["type"] != "handshake_ack" {
            bail!("first frame is not handshake_ack: {ack}");
        }
        probe.expect("provisioning", Duration::from_secs(5)).await?;
        Ok(probe)
    }

    /// Sends one heartbeat; returns when it was written.
    ///
    /// # Errors
    /// When the socket is closed.
    pub async fn heartbeat(&mut self) -> anyhow::Result<Instant> {
        let frame = json!({"type": "i_am_alive", "orchestrator_id": self.orchestrator_id});
        self.sink.send(Message::text(frame.to_string())).await?;
        Ok(Instant::now())
    }

    /// The next frame (controller heartbeats included) with its arrival instant.
    ///
    /// # Errors
    /// On timeout or close.
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<(Instant, Value)> {
        tokio::time::timeout(timeout, self.frames.recv())
            .await
            .context("timed out waiting for a frame")?
            .context("socket closed")
    }

    /// Waits for a frame of type `kind` (others are skipped); returns its arrival instant.
    ///
    /// # Errors
    /// On timeout or close.
    pub async fn expect(
        &mut self,
        kind: &str,
        timeout: Duration,
    ) -> anyhow::Result<(Instant, Value)> {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let (at, frame) = self
                .next(left)
                .await
                .with_context(|| format!("waiting for {kind}"))?;
            if frame["type"] == kind {
                return Ok((at, frame));
            }
        }
    }

    /// Drops frames already received.
    pub fn drain(&mut self) {
        while self.frames.try_recv().is_ok() {}
    }

    pub async fn close(mut self) {
        let _ = self.sink.send(Message::Close(None)).await;
        let _ = self.sink.close().await;
    }
}

async fn read_frames(mut stream: SplitStream<Ws>, tx: mpsc::UnboundedSender<(Instant, Value)>) {
    while let Some(Ok(message)) = stream.next().await {
        let at = Instant::now();
        if let Message::Text(text) = message
            && let Ok(v) = serde_json::from_str::<Value>(text.as_str())
            && tx.send((at, v)).is_err()
        {
            return;
        }
    }
}
