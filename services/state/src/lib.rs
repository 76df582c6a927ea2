//! The state service: the only writer of what orchestrators report.
//!
//! It consumes the bus as one queue group across replicas:
//! - [`hello`]: the hello request from an edge: the orchestrator's token checked against the
//!   database (`ORCHESTRATOR_AUTH`), then answered only after the registration is committed
//!   (so an acknowledged hello is never lost, and a refused one was never acknowledged),
//!   registered in batches of what is waiting (one transaction for a batch);
//! - [`heartbeats`]: `i_am_alive` events, coalesced per orchestrator and written in one
//!   statement per flush, the independence check inside that statement;
//! - [`frames`]: every other orchestrator frame (metadata, config snapshot, messages, usage,
//!   status and provisioning requests), answered after commit;
//! - disconnects and deliveries reported by edges;
//! - [`sweep`]: the liveness sweep that writes and publishes `inactive` transitions.
//!
//! Status transitions are published on the public status subjects. This service holds no
//! sockets and serves no API; its only listener is the metrics one.

pub mod frames;
pub mod heartbeats;
pub mod hello;
pub mod resync;
pub mod sweep;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use moolai_bus::events::{DeliveryEvent, DisconnectEvent, StatusEvent};
use moolai_bus::{Bus, Kind, STATE_QUEUE_GROUP};
use moolai_config::{LivenessSettings, OrchestratorAuth};
use moolai_store::{StatusChange, Store};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Settings of the state service (environment variables of the same name, upper-case).
#[derive(Debug, Clone, Deserialize)]
pub struct StateSettings {
    #[serde(default = "default_host")]
    pub controller_host: String,
    /// Port of the `/metrics` + `/healthz` listener.
    #[serde(default = "default_metrics_port")]
    pub state_metrics_port: u16,
    /// How often coalesced heartbeats are written.
    #[serde(default = "default_flush_ms")]
    pub heartbeat_flush_interval_ms: u64,
    /// A flush starts early once this many orchestrators are pending.
    #[serde(default = "default_batch_max")]
    pub heartbeat_batch_max: usize,
    /// Bound of the pending map while the database is unreachable (newest beat per
    /// orchestrator is kept; beyond this many orchestrators new ones are dropped and counted).
    #[serde(default = "default_pending_max")]
    pub heartbeat_pending_max: usize,
    #[serde(default = "default_sweep_sec")]
    pub sweep_interval_sec: u64,
    /// Organization for orchestrators whose hello names none.
    #[serde(default = "default_org")]
    pub default_organization_id: String,
    /// Frame requests (other than heartbeats and hellos) processed at once by this replica;
    /// also disconnect and delivery events.
    #[serde(default = "default_concurrency")]
    pub state_request_concurrency: usize,
    /// Most hellos registered in one transaction. A batch is what is waiting when a
    /// registration slot frees up: one hello under light load, hundreds in a reconnect storm.
    #[serde(default = "default_hello_batch_max")]
    pub hello_batch_max: usize,
    /// Hello batches registered at once by this replica (each holds one database connection).
    #[serde(default = "default_hello_batches")]
    pub hello_batch_concurrency: usize,
    /// `ORCHESTRATOR_AUTH`: `token` (default) requires an enrollment or orchestrator token in
    /// every hello; `open` also accepts legacy clients without one. State is where this is
    /// decided: it has the database.
    #[serde(default)]
    pub orchestrator_auth: OrchestratorAuth,
}

fn default_host() -> String {
    "0.0.0.0".into()
}
fn default_metrics_port() -> u16 {
    9102
}
fn default_flush_ms() -> u64 {
    200
}
fn default_batch_max() -> usize {
    20_000
}
fn default_pending_max() -> usize {
    1_000_000
}
fn default_sweep_sec() -> u64 {
    5
}
fn default_org() -> String {
    "default".into()
}
fn default_concurrency() -> usize {
    64
}
fn default_hello_batch_max() -> usize {
    500
}
fn default_hello_batches() -> usize {
    4
}

impl StateSettings {
    /// # Errors
    /// When a value is out of range.
    pub fn validate(&self) -> anyhow::Result<()> {
        moolai_protocol::validate_id("DEFAULT_ORGANIZATION_ID", &self.default_organization_id)
            .map_err(|e| anyhow::anyhow!("invalid DEFAULT_ORGANIZATION_ID: {e}"))?;
        anyhow::ensure!(
            (10..=10_000).contains(&self.heartbeat_flush_interval_ms),
            "HEARTBEAT_FLUSH_INTERVAL_MS must be between 10 and 10000"
        );
        anyhow::ensure!(
            self.heartbeat_batch_max >= 1,
            "HEARTBEAT_BATCH_MAX must be at least 1"
        );
        anyhow::ensure!(
            self.heartbeat_pending_max >= self.heartbeat_batch_max,
            "HEARTBEAT_PENDING_MAX must be at least HEARTBEAT_BATCH_MAX"
        );
        anyhow::ensure!(
            self.sweep_interval_sec >= 1,
            "SWEEP_INTERVAL_SEC must be at least 1"
        );
        anyhow::ensure!(
            self.state_request_concurrency >= 1,
            "STATE_REQUEST_CONCURRENCY must be at least 1"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&self.hello_batch_max),
            "HELLO_BATCH_MAX must be between 1 and 10000"
        );
        anyhow::ensure!(
            self.hello_batch_concurrency >= 1,
            "HELLO_BATCH_CONCURRENCY must be at least 1"
        );
        Ok(())
    }
}

/// What every handler needs.
#[derive(Clone)]
pub struct StateContext {
    pub settings: Arc<StateSettings>,
    pub liveness: LivenessSettings,
    pub store: Arc<dyn Store>,
    pub bus: Bus,
}

impl StateContext {
    /// Publishes a status transition on the public status subject. Failures are logged: the
    /// transition is in the database and the sweep/readers derive it anyway.
    pub async fn publish_status(&self, change: &StatusChange, reason: &str) {
        let event = StatusEvent {
            orchestrator_id: change.orchestrator_id.clone(),
            organization_id: change.organization_id.clone(),
            status: change.current,
            previous_status: change.previous,
            is_independent: change.is_independent,
            last_seen: change.last_seen,
            reason: reason.to_owned(),
            at: chrono::Utc::now(),
        };
        let subject = self.bus.subjects().orchestrator(
            Kind::Status,
            &change.organization_id,
            &change.orchestrator_id,
        );
        if let Err(e) = self.bus.publish(subject, &event).await {
            tracing::warn!(error = %e, orchestrator_id = %change.orchestrator_id, "status event not published");
        }
        metrics::counter!("moolai_state_status_events_total", "reason" => reason.to_owned())
            .increment(1);
    }
}

/// Subscribes to everything and runs until `shutdown` fires; then stops taking new work,
/// flushes pending heartbeats and returns.
///
/// # Errors
/// When a subscription cannot be made.
pub async fn launch(
    settings: StateSettings,
    liveness: LivenessSettings,
    store: Arc<dyn Store>,
    bus: Bus,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    match settings.orchestrator_auth {
        OrchestratorAuth::Open => tracing::warn!(
            "ORCHESTRATOR_AUTH=open: hellos WITHOUT a token are accepted and may claim any \
             orchestrator id; use it only to migrate legacy clients, then set ORCHESTRATOR_AUTH=token"
        ),
        OrchestratorAuth::Token => {
            tracing::info!("ORCHESTRATOR_AUTH=token: every hello needs an orchestrator token");
        }
    }
    let ctx = StateContext {
        settings: Arc::new(settings),
        liveness,
        store,
        bus: bus.clone(),
    };
    let subjects = bus.subjects().clone();
    let tracker = TaskTracker::new();

    let hellos = bus
        .queue_subscribe(subjects.hello(), STATE_QUEUE_GROUP)
        .await
        .context("subscribing to hello requests")?;
    let frames = bus
        .queue_subscribe(subjects.all(Kind::Frame), STATE_QUEUE_GROUP)
        .await
        .context("subscribing to frames")?;
    let beats = bus
        .queue_subscribe(subjects.all(Kind::Heartbeat), STATE_QUEUE_GROUP)
        .await
        .context("subscribing to heartbeats")?;
    let disconnects = bus
        .queue_subscribe(subjects.all(Kind::Disconnect), STATE_QUEUE_GROUP)
        .await
        .context("subscribing to disconnects")?;
    let deliveries = bus
        .queue_subscribe(subjects.all(Kind::Delivery), STATE_QUEUE_GROUP)
        .await
        .context("subscribing to deliveries")?;
    let resyncs = bus
        .queue_subscribe(subjects.resync(), STATE_QUEUE_GROUP)
        .await
        .context("subscribing to resync requests")?;
    // Subscriptions are registered with the server before we report ready.
    bus.flush().await.context("flushing subscriptions")?;

    let concurrency = ctx.settings.state_request_concurrency;
    {
        let ctx = ctx.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let (batch_max, batches) = (
                ctx.settings.hello_batch_max,
                ctx.settings.hello_batch_concurrency,
            );
            let work = hellos
                .ready_chunks(batch_max)
                .for_each_concurrent(batches, |batch| hello::handle_batch(&ctx, batch));
            tokio::select! { () = work => {}, () = stop.cancelled() => {} }
        });
    }
    {
        let ctx = ctx.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let work = frames.for_each_concurrent(concurrency, |d| frames::handle(&ctx, d));
            tokio::select! { () = work => {}, () = stop.cancelled() => {} }
        });
    }
    {
        let ctx = ctx.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let work = disconnects.for_each_concurrent(concurrency, |d| {
                let ctx = ctx.clone();
                async move { handle_disconnect(&ctx, d).await }
            });
            tokio::select! { () = work => {}, () = stop.cancelled() => {} }
        });
    }
    {
        let ctx = ctx.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let work = deliveries.for_each_concurrent(concurrency, |d| {
                let ctx = ctx.clone();
                async move { handle_delivery(&ctx, d).await }
            });
            tokio::select! { () = work => {}, () = stop.cancelled() => {} }
        });
    }

    {
        let ctx = ctx.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            // Rare (an edge reconnected to NATS) and one query each: two at a time is plenty.
            let work = resyncs.for_each_concurrent(2, |d| resync::handle(&ctx, d));
            tokio::select! { () = work => {}, () = stop.cancelled() => {} }
        });
    }

    let batcher = heartbeats::HeartbeatBatcher::new(&ctx.settings);
    tracker.spawn(heartbeats::consume(
        batcher.clone(),
        beats,
        shutdown.clone(),
    ));
    tracker.spawn(heartbeats::flush_loop(
        ctx.clone(),
        batcher,
        shutdown.clone(),
    ));
    tracker.spawn(sweep::run(ctx.clone(), shutdown.clone()));

    tracing::info!(prefix = %subjects.prefix(), "state service consuming");
    tracker.close();
    shutdown.cancelled().await;
    // Bounded drain: the heartbeat flusher writes what it holds, then everything stops.
    if tokio::time::timeout(Duration::from_secs(15), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("state tasks did not finish within 15 s of shutdown");
    }
    Ok(())
}

async fn handle_disconnect(ctx: &StateContext, delivery: moolai_bus::Delivery) {
    let event: DisconnectEvent = match delivery.json() {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, subject = %delivery.subject, "undecodable disconnect event");
            return;
        }
    };
    match ctx
        .store
        .record_disconnect(&event.orchestrator_id, &event.session_id, &event.reason)
        .await
    {
        Ok(Some(change)) => ctx.publish_status(&change, "disconnected").await,
        Ok(None) => {
            tracing::debug!(orchestrator_id = %event.orchestrator_id, session_id = %event.session_id, "disconnect of a session that is no longer current");
        }
        Err(e) => {
            tracing::warn!(error = %e, orchestrator_id = %event.orchestrator_id, "disconnect not recorded; the TTL will expire it");
        }
    }
}

async fn handle_delivery(ctx: &StateContext, delivery: moolai_bus::Delivery) {
    let event: DeliveryEvent = match delivery.json() {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "undecodable delivery event");
            return;
        }
    };
    if let Err(e) = ctx
        .store
        .mark_delivered(&event.message_id, &event.session_id)
        .await
    {
        // Not recorded: the message is sent again on the next hello (at-least-once).
        tracing::warn!(error = %e, message_id = %event.message_id, "delivery not recorded");
    }
}
