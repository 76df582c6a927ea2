//! Heartbeat coalescing: the newest beat per orchestrator is kept in memory and written in
//! one statement per flush. Usage reported with heartbeats is summed per
//! (orchestrator, model) and written alongside.
//!
//! While the database is unreachable the pending map keeps growing only up to one entry per
//! orchestrator (bounded by `HEARTBEAT_PENDING_MAX`); nothing is lost when it returns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use moolai_bus::Deliveries;
use moolai_bus::events::HeartbeatEvent;
use moolai_store::{HeartbeatWrite, UsageWrite};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{StateContext, StateSettings};

#[derive(Default)]
struct Pending {
    /// Newest heartbeat per orchestrator.
    beats: HashMap<String, DateTime<Utc>>,
    /// Usage summed per (orchestrator, organization, model).
    usage: HashMap<(String, String, Option<String>), UsageSum>,
}

#[derive(Default, Clone, Copy)]
struct UsageSum {
    requests: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost: f64,
    at: Option<DateTime<Utc>>,
}

/// Shared between the consumer (fills) and the flusher (drains).
#[derive(Clone)]
pub struct HeartbeatBatcher {
    pending: Arc<Mutex<Pending>>,
    /// Wakes the flusher early when a batch is full.
    full: Arc<Notify>,
    batch_max: usize,
    pending_max: usize,
    flush_interval: Duration,
}

impl HeartbeatBatcher {
    #[must_use]
    pub fn new(settings: &StateSettings) -> Self {
        Self {
            pending: Arc::default(),
            full: Arc::default(),
            batch_max: settings.heartbeat_batch_max,
            pending_max: settings.heartbeat_pending_max,
            flush_interval: Duration::from_millis(settings.heartbeat_flush_interval_ms),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one heartbeat.
    pub fn add(&self, event: HeartbeatEvent) {
        let len = {
            let mut p = self.lock();
            let len = p.beats.len();
            match p.beats.get_mut(&event.orchestrator_id) {
                Some(t) => {
                    if event.received_at > *t {
                        *t = event.received_at;
                    }
                }
                None if len >= self.pending_max => {
                    metrics::counter!("moolai_state_heartbeats_dropped_total").increment(1);
                }
                None => {
                    p.beats
                        .insert(event.orchestrator_id.clone(), event.received_at);
                }
            }
            if let Some(entries) = event.usage {
                for e in entries {
                    let key = (
                        event.orchestrator_id.clone(),
                        event.organization_id.clone(),
                        e.model,
                    );
                    let sum = p.usage.entry(key).or_default();
                    sum.requests = sum.requests.saturating_add(clamp_i64(e.requests));
                    sum.input_tokens = sum.input_tokens.saturating_add(clamp_i64(e.input_tokens));
                    sum.output_tokens =
                        sum.output_tokens.saturating_add(clamp_i64(e.output_tokens));
                    sum.cost += e.cost;
                    sum.at = Some(
                        sum.at
                            .map_or(event.received_at, |t| t.max(event.received_at)),
                    );
                }
            }
            p.beats.len()
        };
        if len >= self.batch_max {
            self.full.notify_one();
        }
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut *self.lock())
    }

    /// Puts back what could not be written, keeping the newest beat when one arrived meanwhile.
    fn restore(&self, failed: Pending) {
        let mut p = self.lock();
        for (id, t) in failed.beats {
            if p.beats.len() >= self.pending_max && !p.beats.contains_key(&id) {
                metrics::counter!("moolai_state_heartbeats_dropped_total").increment(1);
                continue;
            }
            let entry = p.beats.entry(id).or_insert(t);
            if t > *entry {
                *entry = t;
            }
        }
        for (k, v) in failed.usage {
            let sum = p.usage.entry(k).or_default();
            sum.requests = sum.requests.saturating_add(v.requests);
            sum.input_tokens = sum.input_tokens.saturating_add(v.input_tokens);
            sum.output_tokens = sum.output_tokens.saturating_add(v.output_tokens);
            sum.cost += v.cost;
            sum.at = sum.at.max(v.at);
        }
    }

    /// Orchestrators with a heartbeat waiting to be written.
    #[must_use]
    pub fn pending_len(&self) -> usize {
        self.lock().beats.len()
    }
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Feeds heartbeat events from the bus into the batcher.
pub async fn consume(batcher: HeartbeatBatcher, mut beats: Deliveries, stop: CancellationToken) {
    loop {
        let delivery = tokio::select! {
            d = beats.next() => d,
            () = stop.cancelled() => return,
        };
        let Some(delivery) = delivery else { return };
        match delivery.json::<HeartbeatEvent>() {
            Ok(event) => {
                metrics::counter!("moolai_state_heartbeats_received_total").increment(1);
                tracing::trace!(orchestrator_id = %event.orchestrator_id, "heartbeat");
                batcher.add(event);
            }
            Err(e) => {
                metrics::counter!("moolai_state_invalid_events_total").increment(1);
                tracing::debug!(error = %e, subject = %delivery.subject, "undecodable heartbeat event");
            }
        }
    }
}

/// Writes pending heartbeats every flush interval (or sooner when a batch is full), and a
/// last time on shutdown.
pub async fn flush_loop(ctx: StateContext, batcher: HeartbeatBatcher, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(batcher.flush_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = batcher.full.notified() => {}
            () = stop.cancelled() => {
                flush_once(&ctx, &batcher).await;
                return;
            }
        }
        flush_once(&ctx, &batcher).await;
    }
}

/// One flush: one heartbeat statement (and one usage statement when usage was reported).
pub async fn flush_once(ctx: &StateContext, batcher: &HeartbeatBatcher) {
    let pending = batcher.take();
    metrics::gauge!("moolai_state_heartbeats_pending").set(0.0);
    if pending.beats.is_empty() && pending.usage.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let beats: Vec<HeartbeatWrite> = pending
        .beats
        .iter()
        .map(|(id, t)| HeartbeatWrite {
            orchestrator_id: id.clone(),
            received_at: *t,
        })
        .collect();
    let usage: Vec<UsageWrite> = pending
        .usage
        .iter()
        .map(|((orch, org, model), s)| UsageWrite {
            orchestrator_id: orch.clone(),
            organization_id: org.clone(),
            model: model.clone(),
            requests: s.requests,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            cost: s.cost,
            reported_at: s.at.unwrap_or_else(Utc::now),
        })
        .collect();

    let beats_result = if beats.is_empty() {
        Ok(Vec::new())
    } else {
        ctx.store.flush_heartbeats(&beats).await
    };
    let usage_result = if usage.is_empty() {
        Ok(())
    } else {
        ctx.store.record_usage(&usage).await
    };

    let mut failed = Pending::default();
    match beats_result {
        Ok(changes) => {
            metrics::histogram!("moolai_state_flush_size").record(beats.len() as f64);
            metrics::histogram!("moolai_state_flush_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("moolai_state_heartbeats_written_total")
                .increment(beats.len() as u64);
            // Receive-at-the-edge to committed, per written heartbeat: the liveness lag an
            // operator sees.
            let committed = Utc::now();
            let lag = metrics::histogram!("moolai_state_heartbeat_lag_seconds");
            for beat in &beats {
                lag.record((committed - beat.received_at).as_seconds_f64().max(0.0));
            }
            for change in &changes {
                ctx.publish_status(change, "heartbeat").await;
            }
        }
        Err(e) => {
            metrics::counter!("moolai_state_flush_errors_total").increment(1);
            tracing::warn!(error = %e, pending = beats.len(), "heartbeat flush failed; keeping them for the next flush");
            failed.beats = pending.beats;
        }
    }
    if let Err(e) = usage_result {
        metrics::counter!("moolai_state_flush_errors_total").increment(1);
        tracing::warn!(error = %e, "usage write failed; keeping it for the next flush");
        failed.usage = pending.usage;
    }
    if !failed.beats.is_empty() || !failed.usage.is_empty() {
        batcher.restore(failed);
        metrics::gauge!("moolai_state_heartbeats_pending").set(batcher.pending_len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pending_max: usize) -> StateSettings {
        StateSettings {
            controller_host: "127.0.0.1".into(),
            state_metrics_port: 0,
            heartbeat_flush_interval_ms: 100,
            heartbeat_batch_max: 2,
            heartbeat_pending_max: pending_max,
            sweep_interval_sec: 1,
            default_organization_id: "default".into(),
            state_request_concurrency: 1,
            hello_batch_max: 1,
            hello_batch_concurrency: 1,
            orchestrator_auth: moolai_config::OrchestratorAuth::Token,
        }
    }

    fn beat(id: &str, secs: i64, usage: Option<f64>) -> HeartbeatEvent {
        HeartbeatEvent {
            orchestrator_id: id.into(),
            organization_id: "org".into(),
            session_id: "s".into(),
            received_at: DateTime::from_timestamp(secs, 0).expect("ts"),
            edge_id: "e".into(),
            usage: usage.map(|cost| {
                vec![moolai_protocol::UsageEntry {
                    model: Some("m".into()),
                    requests: 1,
                    input_tokens: 10,
                    output_tokens: 5,
                    cost,
                }]
            }),
        }
    }

    #[test]
    fn keeps_the_newest_beat_and_sums_usage() {
        let b = HeartbeatBatcher::new(&settings(10));
        b.add(beat("a", 100, Some(0.5)));
        b.add(beat("a", 90, Some(0.25)));
        b.add(beat("b", 50, None));
        let p = b.take();
        assert_eq!(p.beats.len(), 2);
        assert_eq!(p.beats["a"].timestamp(), 100);
        let sum = p.usage[&("a".into(), "org".into(), Some("m".into()))];
        assert_eq!(sum.requests, 2);
        assert_eq!(sum.input_tokens, 20);
        assert!((sum.cost - 0.75).abs() < 1e-9);
        assert_eq!(b.pending_len(), 0);
    }

    #[test]
    fn restore_keeps_newer_beats_and_respects_the_bound() {
        let b = HeartbeatBatcher::new(&settings(2));
        b.add(beat("a", 100, None));
        let failed = b.take();
        b.add(beat("a", 200, None));
        b.add(beat("c", 10, None));
        b.restore(failed);
        let p = b.take();
        assert_eq!(p.beats["a"].timestamp(), 200);
        // bound of 2 reached: a third orchestrator is dropped, not queued
        b.add(beat("x", 1, None));
        b.add(beat("y", 1, None));
        b.add(beat("z", 1, None));
        assert_eq!(b.pending_len(), 2);
    }
}
