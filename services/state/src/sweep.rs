//! The liveness sweep: writes `inactive` for orchestrators whose heartbeat expired or who
//! disconnected, and publishes each transition. Safe with several replicas: the store lets
//! one sweep run at a time and each transition is returned to exactly one caller.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::StateContext;

pub async fn run(ctx: StateContext, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(ctx.settings.sweep_interval_sec));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_skip: Option<String> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => return,
        }
        match ctx.store.sweep_expired().await {
            Ok(outcome) => {
                if let Some(reason) = &outcome.skipped {
                    // Log a refusal once per change of reason, not every tick.
                    if last_skip.as_ref() != Some(reason) && !reason.contains("another replica") {
                        tracing::warn!(%reason, "liveness sweep skipped");
                    }
                    metrics::counter!("moolai_state_sweeps_skipped_total").increment(1);
                } else {
                    metrics::counter!("moolai_state_sweeps_total").increment(1);
                }
                last_skip.clone_from(&outcome.skipped);
                for change in &outcome.changes {
                    ctx.publish_status(change, "ttl_expired").await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "liveness sweep failed");
            }
        }
    }
}
