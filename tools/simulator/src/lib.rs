//! Fleet simulator: runs many orchestrators against a controller and reports what it saw.
//!
//! Every simulated orchestrator is a real [`moolai_client::Client`], so a simulation
//! exercises the same hello, heartbeat, backoff and retry-hint code that production
//! orchestrators embed. [`simulate`] is the library entry point (the `moolai-simulator`
//! binary and `moolai simulate` wrap it); it spreads connection starts over a ramp-up,
//! caps concurrent handshakes, spreads sockets over several source addresses (one source
//! address reaches one server port through ~28k ephemeral ports), and reports connections,
//! handshake latency percentiles, heartbeats, reconnects and errors by kind, every few
//! seconds and at the end.
//!
//! Per-client memory is kept low for fleets of 100k: clients run with events off
//! (`event_capacity: 0`) and report to one shared [`Observer`]; latencies go into a
//! fixed-size log histogram, not a growing list.
//!
//! It must not: keep per-client channels or samples, or leave sockets open after it returns
//! (every client is shut down with a clean close).

pub mod cli;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use moolai_client::{Backoff, Client, ClientConfig, ClientEvent, ClientHandle, Dialect, Observer};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Which hello dialect the simulated orchestrators speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimDialect {
    Hld,
    Deployed,
    /// Alternating, so both code paths of the edge are loaded at once.
    Mixed,
}

impl SimDialect {
    fn for_index(self, i: usize) -> Dialect {
        match self {
            Self::Hld => Dialect::Hld,
            Self::Deployed => Dialect::Deployed,
            Self::Mixed if i.is_multiple_of(2) => Dialect::Hld,
            Self::Mixed => Dialect::Deployed,
        }
    }
}

/// How often the fleet heartbeats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeartbeatPlan {
    /// Whatever the controller asks for in `handshake_ack`.
    ControllerDefault,
    /// Every orchestrator at this interval, whatever the controller asks.
    Interval(Duration),
    /// This many heartbeats per second in total, spread over the fleet.
    Rate(f64),
}

/// Called with each periodic report.
pub type ReportSink = Arc<dyn Fn(&SimReport) + Send + Sync>;

/// What to simulate. [`SimOptions::default`] is 100 mixed-dialect orchestrators against a
/// local controller, until cancelled.
#[derive(Clone)]
pub struct SimOptions {
    /// ws-edge URL, e.g. `ws://127.0.0.1:8766/ws`.
    pub url: String,
    pub count: usize,
    pub dialect: SimDialect,
    /// Orchestrator ids are `<prefix><index>`.
    pub id_prefix: String,
    pub organization_id: Option<String>,
    pub heartbeat: HeartbeatPlan,
    /// Connection starts are spread evenly over this long.
    pub ramp_up: Duration,
    /// Handshakes in flight at once across the fleet (0: unlimited).
    pub max_concurrent_handshakes: usize,
    /// How long to run after the first start; `None` until `cancel` fires.
    pub duration: Option<Duration>,
    /// Source addresses, assigned round-robin (empty: the OS chooses).
    pub source_addrs: Vec<IpAddr>,
    pub token: Option<String>,
    pub report_interval: Duration,
    /// Stops the simulation early (Ctrl-C).
    pub cancel: CancellationToken,
    /// Receives a report every `report_interval`.
    pub on_report: Option<ReportSink>,
    /// Reconnect backoff of every client.
    pub backoff: Backoff,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            url: "ws://127.0.0.1:8766/ws".into(),
            count: 100,
            dialect: SimDialect::Mixed,
            id_prefix: "sim-".into(),
            organization_id: None,
            heartbeat: HeartbeatPlan::ControllerDefault,
            ramp_up: Duration::ZERO,
            max_concurrent_handshakes: 1000,
            duration: None,
            source_addrs: Vec::new(),
            token: None,
            report_interval: Duration::from_secs(5),
            cancel: CancellationToken::new(),
            on_report: None,
            backoff: Backoff::default(),
        }
    }
}

impl fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimOptions")
            .field("url", &self.url)
            .field("count", &self.count)
            .field("dialect", &self.dialect)
            .field("id_prefix", &self.id_prefix)
            .field("organization_id", &self.organization_id)
            .field("heartbeat", &self.heartbeat)
            .field("ramp_up", &self.ramp_up)
            .field("max_concurrent_handshakes", &self.max_concurrent_handshakes)
            .field("duration", &self.duration)
            .field("source_addrs", &self.source_addrs)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("report_interval", &self.report_interval)
            .finish_non_exhaustive()
    }
}

/// What the fleet looked like at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SimReport {
    pub elapsed_sec: f64,
    /// Orchestrators asked for.
    pub target: usize,
    /// Clients started so far (the ramp-up may still be running).
    pub started: usize,
    /// Clients with a session up right now.
    pub connected: usize,
    /// Connected clients the controller put in independence mode.
    pub independent: usize,
    /// Clients that stopped for good (replaced, deregistered, rejected).
    pub stopped: usize,
    /// Handshakes completed (first connections and reconnections).
    pub handshakes: u64,
    /// TCP connect → `handshake_ack`, in milliseconds (±2 %).
    pub handshake_p50_ms: Option<f64>,
    pub handshake_p99_ms: Option<f64>,
    pub handshake_max_ms: Option<f64>,
    pub heartbeats_sent: u64,
    /// Heartbeats per second over the whole run.
    pub heartbeats_per_sec: f64,
    pub reconnects: u64,
    /// Failed attempts and ended sessions by kind (`close_1001`, `http_503`,
    /// `connect_failed`…), and stops (`stopped_replaced`…).
    pub errors: BTreeMap<String, u64>,
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}ms"));
        write!(
            f,
            "[{:>6.1}s] connected {}/{} (started {}, independent {}, stopped {}) | handshake p50 {} p99 {} max {} ({}) | heartbeats {} ({:.1}/s) | reconnects {}",
            self.elapsed_sec,
            self.connected,
            self.target,
            self.started,
            self.independent,
            self.stopped,
            ms(self.handshake_p50_ms),
            ms(self.handshake_p99_ms),
            ms(self.handshake_max_ms),
            self.handshakes,
            self.heartbeats_sent,
            self.heartbeats_per_sec,
            self.reconnects,
        )?;
        if !self.errors.is_empty() {
            let errors: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            write!(f, " | errors {}", errors.join(" "))?;
        }
        Ok(())
    }
}

/// Runs the simulation until `duration` elapses or `cancel` fires, then closes every client
/// cleanly and returns the report taken just before closing.
pub async fn simulate(opts: SimOptions) -> SimReport {
    let started_at = Instant::now();
    let fleet = Arc::new(FleetObserver::default());
    let permits = (opts.max_concurrent_handshakes > 0)
        .then(|| Arc::new(Semaphore::new(opts.max_concurrent_handshakes)));
    let end_at = opts.duration.map(|d| started_at + d);
    let mut handles: Vec<ClientHandle> = Vec::with_capacity(opts.count);
    let mut ticker = tokio::time::interval_at(
        started_at + opts.report_interval,
        opts.report_interval.max(Duration::from_millis(100)),
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let next_start = (handles.len() < opts.count)
            .then(|| started_at + start_offset(handles.len(), opts.count, opts.ramp_up));
        tokio::select! {
            () = opts.cancel.cancelled() => break,
            () = sleep_until_opt(end_at), if end_at.is_some() => break,
            () = sleep_until_opt(next_start), if next_start.is_some() => {
                // Start everyone who is due (a ramp of 0 starts the whole fleet here).
                let now = Instant::now();
                while handles.len() < opts.count
                    && started_at + start_offset(handles.len(), opts.count, opts.ramp_up) <= now
                {
                    let i = handles.len();
                    match Client::spawn(client_config(&opts, i, &fleet, permits.as_ref())) {
                        Ok(handle) => handles.push(handle),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot start a simulated orchestrator");
                            return report(&opts, started_at, &handles, &fleet);
                        }
                    }
                }
            }
            _ = ticker.tick() => {
                if let Some(sink) = &opts.on_report {
                    sink(&report(&opts, started_at, &handles, &fleet));
                }
            }
        }
    }
    let last = report(&opts, started_at, &handles, &fleet);
    // Close every socket cleanly, all at once; each close is bounded by the client.
    futures::future::join_all(handles.into_iter().map(ClientHandle::shutdown)).await;
    last
}

/// When client `i` of `count` starts, relative to the beginning.
fn start_offset(i: usize, count: usize, ramp_up: Duration) -> Duration {
    if count == 0 {
        return Duration::ZERO;
    }
    ramp_up.mul_f64(i as f64 / count as f64)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn client_config(
    opts: &SimOptions,
    i: usize,
    fleet: &Arc<FleetObserver>,
    permits: Option<&Arc<Semaphore>>,
) -> ClientConfig {
    let id = format!("{}{i}", opts.id_prefix);
    let mut config = ClientConfig::new(opts.url.clone(), id.clone(), opts.dialect.for_index(i));
    config.organization_id.clone_from(&opts.organization_id);
    config.auth_token = opts.token.clone().map(Into::into);
    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::String(id));
    metadata.insert("location".into(), Value::String("simulator".into()));
    metadata.insert(
        "version".into(),
        Value::String(env!("CARGO_PKG_VERSION").into()),
    );
    config.metadata = metadata;
    match opts.heartbeat {
        HeartbeatPlan::ControllerDefault => {}
        HeartbeatPlan::Interval(interval) => {
            config.heartbeat_interval = interval;
            config.pin_heartbeat_interval = true;
        }
        HeartbeatPlan::Rate(rate) => {
            config.heartbeat_interval = interval_for_rate(opts.count, rate);
            config.pin_heartbeat_interval = true;
        }
    }
    config.spread_heartbeats = true;
    config.backoff = opts.backoff;
    config.local_address =
        (!opts.source_addrs.is_empty()).then(|| opts.source_addrs[i % opts.source_addrs.len()]);
    config.event_capacity = 0;
    config.observer = Some(fleet.clone());
    config.connect_permits = permits.cloned();
    config
}

/// Per-client interval giving `rate` heartbeats per second across `count` clients, between
/// 10 ms (so a typo cannot turn the fleet into a flood) and a day (a rate of 0).
#[must_use]
pub fn interval_for_rate(count: usize, rate: f64) -> Duration {
    let seconds = count.max(1) as f64 / rate;
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::from_secs(86_400);
    }
    Duration::from_secs_f64(seconds.clamp(0.01, 86_400.0))
}

fn report(
    opts: &SimOptions,
    started_at: Instant,
    handles: &[ClientHandle],
    fleet: &FleetObserver,
) -> SimReport {
    let elapsed = started_at.elapsed().as_secs_f64();
    let mut r = SimReport {
        elapsed_sec: elapsed,
        target: opts.count,
        started: handles.len(),
        ..SimReport::default()
    };
    for handle in handles {
        let state = handle.state();
        r.connected += usize::from(state.connected);
        r.independent += usize::from(state.connected && state.independent);
        r.stopped += usize::from(state.stopped.is_some());
        r.heartbeats_sent += state.heartbeats_sent;
        r.reconnects += state.reconnects;
    }
    let beats = r.heartbeats_sent as f64;
    r.heartbeats_per_sec = if elapsed > 0.0 { beats / elapsed } else { 0.0 };
    let latencies = fleet
        .latencies
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    r.handshakes = latencies.count;
    r.handshake_p50_ms = latencies.quantile(0.50);
    r.handshake_p99_ms = latencies.quantile(0.99);
    r.handshake_max_ms = latencies.max_ms();
    drop(latencies);
    r.errors = fleet
        .errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    r
}

/// Aggregates events of the whole fleet: one instance shared by every client.
#[derive(Default)]
struct FleetObserver {
    latencies: Mutex<LatencyHistogram>,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Observer for FleetObserver {
    fn on_event(&self, _orchestrator_id: &str, event: &ClientEvent) {
        match event {
            ClientEvent::Connected {
                handshake_latency, ..
            } => self
                .latencies
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(*handshake_latency),
            ClientEvent::Disconnected { kind, .. } => self.count(kind.to_string()),
            ClientEvent::ServerError(error) => self.count(format!("error_frame_{}", error.code)),
            ClientEvent::Stopped { why } if why.kind() != "shutdown" => {
                self.count(format!("stopped_{}", why.kind()));
            }
            _ => {}
        }
    }
}

impl FleetObserver {
    fn count(&self, kind: String) {
        *self
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(kind)
            .or_default() += 1;
    }
}

/// Log-bucketed histogram of durations: bucket `b` holds values in `[G^b, G^(b+1))` µs with
/// `G = 1.02`, so a quantile is within 2 % and memory is fixed (~10 KiB) however long the run.
struct LatencyHistogram {
    buckets: Vec<u64>,
    count: u64,
    max_micros: u64,
}

const GROWTH: f64 = 1.02;
/// 1.02^1100 µs is about 80 days: every realistic handshake fits.
const BUCKETS: usize = 1100;

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; BUCKETS],
            count: 0,
            max_micros: 0,
        }
    }
}

impl LatencyHistogram {
    fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let bucket = ((micros as f64).ln() / GROWTH.ln()) as usize;
        self.buckets[bucket.min(BUCKETS - 1)] += 1;
        self.count += 1;
        self.max_micros = self.max_micros.max(micros);
    }

    /// The `q` quantile in milliseconds (the geometric middle of its bucket), capped at the
    /// largest value seen.
    fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (b, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let micros = GROWTH.powf(b as f64 + 0.5);
                let max = self.max_micros as f64;
                return Some(micros.min(max) / 1000.0);
            }
        }
        self.max_ms()
    }

    fn max_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.max_micros as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut h = LatencyHistogram::default();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).expect("p50");
        let p99 = h.quantile(0.99).expect("p99");
        assert!((p50 - 500.0).abs() / 500.0 < 0.02, "{p50}");
        assert!((p99 - 990.0).abs() / 990.0 < 0.02, "{p99}");
        assert_eq!(h.max_ms(), Some(1000.0));
        assert_eq!(LatencyHistogram::default().quantile(0.5), None);
    }

    #[test]
    fn starts_are_spread_over_the_ramp() {
        let ramp = Duration::from_secs(10);
        assert_eq!(start_offset(0, 100, ramp), Duration::ZERO);
        assert_eq!(start_offset(50, 100, ramp), Duration::from_secs(5));
        assert!(start_offset(99, 100, ramp) < ramp);
        assert_eq!(start_offset(7, 100, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_total_rate_becomes_a_per_client_interval() {
        assert_eq!(interval_for_rate(1000, 100.0), Duration::from_secs(10));
        assert_eq!(interval_for_rate(10, 1e9), Duration::from_millis(10));
        assert_eq!(interval_for_rate(10, 0.0), Duration::from_secs(86_400));
        assert_eq!(interval_for_rate(10, -1.0), Duration::from_secs(86_400));
    }

    #[test]
    fn mixed_alternates_dialects() {
        assert_eq!(SimDialect::Mixed.for_index(0), Dialect::Hld);
        assert_eq!(SimDialect::Mixed.for_index(1), Dialect::Deployed);
        assert_eq!(SimDialect::Hld.for_index(1), Dialect::Hld);
    }
}
