//! Benchmark 2: heartbeat throughput end to end (socket → edge → NATS → state → PostgreSQL)
//! and the lag from send to committed `last_seen`, at a list of offered rates and upward (or
//! downward) from the last one to find the highest sustained rate.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::probe::Probe;
use crate::prom::{Scrape, delta_buckets, fmt_secs, quantile, scrape};
use crate::report::{percentile, thousands, usage_table};
use crate::stack::{BENCH_ORGANIZATION, Bench, free_port};

#[derive(Debug, Clone, clap::Args)]
pub struct ThroughputArgs {
    /// Offered rates in heartbeats per second, in order; `max` searches from the last one.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000,max")]
    pub rates: Vec<String>,
    /// Heartbeats per second of each orchestrator while the fleet is below `--max-fleet`.
    #[arg(long, default_value_t = 1.0)]
    pub per_orchestrator_rate: f64,
    /// Largest fleet; past it each orchestrator beats faster.
    #[arg(long, default_value_t = 50_000)]
    pub max_fleet: usize,
    /// Seconds of load before the measured window.
    #[arg(long, default_value_t = 10)]
    pub warmup_sec: u64,
    /// Length of the measured window.
    #[arg(long, default_value_t = 30)]
    pub window_sec: u64,
    /// Factor between steps of the `max` search.
    #[arg(long, default_value_t = 1.25)]
    pub max_factor: f64,
    /// Steps of the `max` search at most.
    #[arg(long, default_value_t = 5)]
    pub max_steps: usize,
    /// Probe sockets measuring send → committed `last_seen` directly.
    #[arg(long, default_value_t = 2)]
    pub probes: usize,
}

/// The fleet cap: `--max-fleet`, or what one process can hold (every socket is a file
/// descriptor in the edge and in the simulator).
fn max_fleet(args: &ThroughputArgs) -> usize {
    args.max_fleet.min(crate::sockets::sockets_per_process())
}

/// What one offered rate did.
struct Step {
    rate: f64,
    fleet: usize,
    sent_per_sec: f64,
    edge_per_sec: f64,
    state_received_per_sec: f64,
    rows_per_sec: f64,
    flushes_per_sec: f64,
    mean_flush_size: f64,
    mean_flush_ms: f64,
    lag_p50: String,
    lag_p99: String,
    lag_p99_secs: f64,
    e2e: Vec<f64>,
    landed: i64,
    oldest_age: f64,
    commits_per_sec: f64,
    usage: String,
    compiling: bool,
    cpu: Vec<(String, f64)>,
    machine_pct: f64,
    /// The controller kept up with what was sent: state received it all, every
    /// orchestrator's `last_seen` landed, and the lag stayed bounded.
    sustained: bool,
    /// The load generator sent (nearly) the offered rate.
    generator_ok: bool,
    why_not: Vec<String>,
    sim_errors: String,
}

pub async fn run(b: &mut Bench, args: &ThroughputArgs) -> anyhow::Result<String> {
    b.create_database().await?;
    let state_metrics = b.start_state("state", &[]).await?;
    let edge_port = free_port()?;
    let edge_metrics = b.start_edge("ws-edge", edge_port, &[]).await?;
    let url = format!("ws://127.0.0.1:{edge_port}/ws");
    let pool = b.db()?.pool(4).await?;

    let mut probes = Vec::new();
    for i in 0..args.probes {
        probes.push(Arc::new(Mutex::new(
            Probe::connect(
                &url,
                &format!("bench-probe-{i}"),
                BENCH_ORGANIZATION,
                &b.enrollment_token,
            )
            .await?,
        )));
    }

    let mut steps: Vec<Step> = Vec::new();
    let mut queue: Vec<f64> = Vec::new();
    let mut search = false;
    for r in &args.rates {
        if r == "max" {
            search = true;
        } else {
            queue.push(r.parse().with_context(|| format!("bad rate {r:?}"))?);
        }
    }
    for (i, rate) in queue.iter().enumerate() {
        let step = run_step(
            b,
            args,
            &url,
            state_metrics,
            edge_metrics,
            &pool,
            &probes,
            *rate,
            i,
        )
        .await?;
        eprintln!("{}", step_line(&step));
        steps.push(step);
    }
    if search && let Some(last) = steps.last() {
        let mut rate = last.rate;
        // Up while the controller keeps up and the generator delivers; down when the
        // controller did not keep up. A generator that cannot send more ends the search.
        let up = last.sustained;
        for k in 0..args.max_steps {
            if up && !steps.last().is_some_and(|st| st.generator_ok) {
                break;
            }
            rate = if up {
                rate * args.max_factor
            } else {
                rate / args.max_factor
            };
            let rate = (rate / 1000.0).round() * 1000.0;
            let step = run_step(
                b,
                args,
                &url,
                state_metrics,
                edge_metrics,
                &pool,
                &probes,
                rate,
                queue.len() + k,
            )
            .await;
            let step = failed_step(b, rate, step).await;
            eprintln!("{}", step_line(&step));
            let sustained = step.sustained;
            steps.push(step);
            if sustained != up {
                break;
            }
        }
    }
    for p in probes {
        if let Ok(p) = Arc::try_unwrap(p) {
            p.into_inner().close().await;
        }
    }
    Ok(render(args, &steps))
}

/// A step that could not run to the end is recorded as not sustained, with the reason.
async fn failed_step(b: &mut Bench, rate: f64, step: anyhow::Result<Step>) -> Step {
    match step {
        Ok(s) => s,
        Err(e) => {
            eprintln!("step at {rate}/s failed: {e:#}");
            b.stop_proc("sim", "INT", Duration::from_secs(60)).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            Step {
                rate,
                fleet: 0,
                sent_per_sec: 0.0,
                edge_per_sec: 0.0,
                state_received_per_sec: 0.0,
                rows_per_sec: 0.0,
                flushes_per_sec: 0.0,
                mean_flush_size: 0.0,
                mean_flush_ms: 0.0,
                lag_p50: "-".into(),
                lag_p99: "-".into(),
                lag_p99_secs: f64::INFINITY,
                e2e: Vec::new(),
                landed: 0,
                oldest_age: 0.0,
                commits_per_sec: 0.0,
                usage: String::new(),
                compiling: false,
                cpu: Vec::new(),
                machine_pct: 0.0,
                sustained: false,
                generator_ok: false,
                why_not: vec![format!("the step failed: {e:#}")],
                sim_errors: String::new(),
            }
        }
    }
}

fn step_line(s: &Step) -> String {
    format!(
        "rate {} fleet {}: sent {:.0}/s, state {:.0}/s, rows {:.0}/s, lag p50 {} p99 {}, landed {}/{}, sustained {}",
        s.rate,
        s.fleet,
        s.sent_per_sec,
        s.state_received_per_sec,
        s.rows_per_sec,
        s.lag_p50,
        s.lag_p99,
        s.landed,
        s.fleet,
        s.sustained
    )
}

async fn pg_counters(admin: &PgPool, db: &str) -> (i64, i64) {
    sqlx::query_as::<_, (i64, i64)>(
        "SELECT xact_commit, tup_updated FROM pg_stat_database WHERE datname = $1",
    )
    .bind(db)
    .fetch_one(admin)
    .await
    .unwrap_or((0, 0))
}

#[allow(clippy::too_many_arguments, clippy::too_many_lines)]
async fn run_step(
    b: &mut Bench,
    args: &ThroughputArgs,
    url: &str,
    state_metrics: u16,
    edge_metrics: u16,
    pool: &PgPool,
    probes: &[Arc<Mutex<Probe>>],
    rate: f64,
    index: usize,
) -> anyhow::Result<Step> {
    let fleet = ((rate / args.per_orchestrator_rate).ceil() as usize).clamp(1, max_fleet(args));
    let interval = fleet as f64 / rate;
    let name = "sim".to_owned();
    eprintln!(
        "step {index}: {rate} heartbeats/s from {fleet} orchestrators (one every {interval:.2} s each)"
    );
    let ramp = (fleet as f64 / 1500.0).max(1.0);
    let sim = b.start_simulator(
        &name,
        &[
            "--url".into(),
            url.into(),
            "--count".into(),
            fleet.to_string(),
            "--rate".into(),
            rate.to_string(),
            "--id-prefix".into(),
            "t-".into(),
            "--ramp-up-sec".into(),
            format!("{ramp:.1}"),
            "--source-addr-count".into(),
            "8".into(),
        ],
    )?;
    sim.wait_for(Duration::from_secs(600), "the fleet to connect", |p| {
        p.connected >= fleet
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(args.warmup_sec)).await;

    // Window start.
    let db_name = b.db()?.name.clone();
    b.sampler.sample_now().await;
    let t0 = Instant::now();
    let s0 = scrape(&b.http, state_metrics).await?;
    let e0 = scrape(&b.http, edge_metrics).await?;
    let p0 = sim.latest().unwrap_or_default();
    let pg0 = pg_counters(&b.admin, &db_name).await;

    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for p in probes {
        tasks.push(tokio::spawn(probe_lag(
            p.clone(),
            pool.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(args.window_sec)).await;
    stop.cancel();
    let mut e2e = Vec::new();
    for t in tasks {
        if let Ok(v) = t.await {
            e2e.extend(v);
        }
    }

    // Window end.
    let s1 = scrape(&b.http, state_metrics).await?;
    let e1 = scrape(&b.http, edge_metrics).await?;
    let p1 = sim.latest().unwrap_or_default();
    let pg1 = pg_counters(&b.admin, &db_name).await;
    b.sampler.sample_now().await;
    let t1 = Instant::now();
    let secs = (t1 - t0).as_secs_f64();

    // Landing: every orchestrator of the fleet heartbeats once per interval, so its
    // last_seen must be younger than the interval plus the lag.
    let (landed, oldest_age): (i64, f64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE last_seen > now() - make_interval(secs => $2)), \
             COALESCE(EXTRACT(EPOCH FROM now() - min(last_seen))::float8, -1) \
         FROM orchestrator_instances \
         WHERE orchestrator_id LIKE 't-%' AND substr(orchestrator_id, 3)::int < $1",
    )
    .bind(i32::try_from(fleet).unwrap_or(i32::MAX))
    .bind(interval + 2.0)
    .fetch_one(pool)
    .await?;

    let usage = b.sampler.window(t0, t1);
    let lag = delta_buckets(&s0, &s1, "moolai_state_heartbeat_lag_seconds");
    let q50 = quantile(&lag, 0.5);
    let q99 = quantile(&lag, 0.99);
    let d = |a: &Scrape, b: &Scrape, n: &str, f: &str| (b.sum(n, f) - a.sum(n, f)) / secs;
    let flushes = d(&s0, &s1, "moolai_state_flush_seconds_count", "");
    let flush_sum = d(&s0, &s1, "moolai_state_flush_seconds_sum", "");
    let rows = d(&s0, &s1, "moolai_state_heartbeats_written_total", "");
    let sent = (p1.heartbeats_sent.saturating_sub(p0.heartbeats_sent)) as f64 / secs;
    let received = d(&s0, &s1, "moolai_state_heartbeats_received_total", "");
    let edge = d(&e0, &e1, "moolai_edge_frames_total", "i_am_alive");

    let mut why_not = Vec::new();
    let generator_ok = sent >= 0.95 * rate;
    if received < 0.97 * sent {
        why_not.push(format!(
            "state received only {received:.0}/s of {sent:.0}/s sent"
        ));
    }
    if landed < i64::try_from(fleet).unwrap_or(i64::MAX) {
        why_not.push(format!(
            "{} orchestrators' last_seen older than {:.1} s",
            i64::try_from(fleet).unwrap_or(0) - landed,
            interval + 2.0
        ));
    }
    let lag_p99_secs = q99.map_or(f64::INFINITY, |q| q.interpolated);
    if q99.is_none_or(|q| q.upper.is_infinite()) {
        why_not.push("p99 lag beyond the last bucket (5 s)".into());
    }
    let sim_errors = p1
        .errors
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let step = Step {
        rate,
        fleet,
        sent_per_sec: sent,
        edge_per_sec: edge,
        state_received_per_sec: received,
        rows_per_sec: rows,
        flushes_per_sec: flushes,
        mean_flush_size: if flushes > 0.0 { rows / flushes } else { 0.0 },
        mean_flush_ms: if flushes > 0.0 {
            flush_sum / flushes * 1000.0
        } else {
            0.0
        },
        lag_p50: q50.map_or("-".into(), |q| q.to_string()),
        lag_p99: q99.map_or("-".into(), |q| q.to_string()),
        lag_p99_secs,
        e2e,
        landed,
        oldest_age,
        commits_per_sec: (pg1.0 - pg0.0) as f64 / secs,
        usage: usage_table(
            &format!("CPU and RSS at {} heartbeats/s", thousands(rate)),
            &usage,
        ),
        compiling: usage.compiling,
        cpu: usage
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.cpu_pct))
            .collect(),
        machine_pct: usage.machine_pct,
        sustained: why_not.is_empty(),
        generator_ok,
        why_not,
        sim_errors,
    };
    let _ = pg1.1 - pg0.1;
    b.stop_proc(&name, "INT", Duration::from_secs(60)).await;
    // Let the disconnects of the closed fleet drain before the next step.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(step)
}

/// Sends a heartbeat and polls `last_seen` every 10 ms until it moves: the time from the
/// write on the socket to the committed value being visible, repeated until `stop`.
async fn probe_lag(probe: Arc<Mutex<Probe>>, pool: PgPool, stop: CancellationToken) -> Vec<f64> {
    let mut probe = probe.lock().await;
    let id = probe.orchestrator_id.clone();
    let mut out = Vec::new();
    let read = |pool: PgPool, id: String| async move {
        sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
            "SELECT last_seen FROM orchestrator_instances WHERE orchestrator_id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .ok()
        .flatten()
    };
    while !stop.is_cancelled() {
        probe.drain();
        let before = read(pool.clone(), id.clone()).await;
        let Ok(sent) = probe.heartbeat().await else {
            break;
        };
        let until = sent + Duration::from_secs(10);
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = read(pool.clone(), id.clone()).await;
            if now > before {
                out.push(sent.elapsed().as_secs_f64());
                break;
            }
            if Instant::now() > until {
                out.push(f64::INFINITY);
                break;
            }
        }
        // Space the probe's beats like a fast orchestrator's.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out
}

fn render(args: &ThroughputArgs, steps: &[Step]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Fleet = offered rate ÷ {} beats/s per orchestrator, at most {}; {} s warm-up, {} s window per step; \
         state at its defaults (flush every 200 ms or at 20,000 pending, pool of 10).\n",
        args.per_orchestrator_rate,
        thousands(max_fleet(args) as f64),
        args.warmup_sec,
        args.window_sec
    );
    if max_fleet(args) < args.max_fleet {
        let _ = writeln!(
            s,
            "The fleet is capped at {} (not {}): every socket is a file descriptor in the one edge and in the \
             simulator, and a process here cannot hold more (open-file hard limit {}, not raisable without \
             CAP_SYS_RESOURCE). Past that many heartbeats/s each orchestrator beats faster than once a second; \
             its interval stays above the 200 ms flush interval up to ~{}/s, so until then every heartbeat \
             is still its own row update (no coalescing helps).\n",
            thousands(max_fleet(args) as f64),
            thousands(args.max_fleet as f64),
            crate::procs::open_file_limit(true).unwrap_or(0),
            thousands(max_fleet(args) as f64 * 5.0)
        );
    }
    let _ = writeln!(
        s,
        "| offered/s | fleet | sent/s | edge in/s | state in/s | rows written/s | flushes/s × mean rows (mean ms) | lag p50 (histogram) | lag p99 (histogram) | send→visible p50 / p99 (probe, n) | landed | oldest last_seen | PG commits/s | sustained |"
    );
    let _ = writeln!(
        s,
        "| ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- | ---: | ---: | --- |"
    );
    for st in steps {
        let mut e2e = st.e2e.clone();
        e2e.sort_by(f64::total_cmp);
        let e = |q| percentile(&e2e, q).map_or("-".into(), fmt_secs);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.1} × {} ({:.0} ms) | {} | {} | {} / {} ({}) | {}/{} | {:.1} s | {} | {}{} |",
            thousands(st.rate),
            thousands(st.fleet as f64),
            thousands(st.sent_per_sec),
            thousands(st.edge_per_sec),
            thousands(st.state_received_per_sec),
            thousands(st.rows_per_sec),
            st.flushes_per_sec,
            thousands(st.mean_flush_size),
            st.mean_flush_ms,
            st.lag_p50,
            st.lag_p99,
            e(0.5),
            e(0.99),
            e2e.len(),
            thousands(st.landed as f64),
            thousands(st.fleet as f64),
            st.oldest_age,
            thousands(st.commits_per_sec),
            if st.sustained { "yes" } else { "**no**" },
            {
                let mut notes = st.why_not.clone();
                if !st.generator_ok && st.fleet > 0 {
                    notes.push(format!(
                        "the load generator sent {:.0} % of the offered rate",
                        st.sent_per_sec / st.rate * 100.0
                    ));
                }
                if notes.is_empty() {
                    String::new()
                } else {
                    format!(": {}", notes.join("; "))
                }
            },
        );
    }
    // Rates actually carried end to end, by steps where the controller kept up.
    let best = steps
        .iter()
        .filter(|st| st.sustained)
        .map(|st| st.state_received_per_sec)
        .fold(0.0, f64::max);
    let best_lag = steps
        .iter()
        .filter(|st| st.sustained && st.lag_p99_secs <= 1.0)
        .map(|st| st.state_received_per_sec)
        .fold(0.0, f64::max);
    let _ = writeln!(
        s,
        "\n\"Sustained\": state received ≥ 97 % of what the simulator sent, every orchestrator's `last_seen` \
         younger than its interval + 2 s at the end, p99 lag within the histogram (< 5 s). Highest rate carried \
         end to end while sustained: **{}/s**; with p99 lag ≤ 1 s: **{}/s** (target ≥ 50,000/s with p99 ≤ 1 s).",
        thousands(best),
        thousands(best_lag)
    );
    let _ = writeln!(s, "\nCPU by process (% of one core) per step:\n");
    if let Some(first) = steps.iter().find(|st| !st.cpu.is_empty()) {
        let names: Vec<&str> = first.cpu.iter().map(|(n, _)| n.as_str()).collect();
        let _ = writeln!(s, "| offered/s | {} | whole machine |", names.join(" | "));
        let _ = writeln!(s, "| ---: |{} ---: |", " ---: |".repeat(names.len()));
        for st in steps {
            let cells: Vec<String> = names
                .iter()
                .map(|n| {
                    st.cpu
                        .iter()
                        .find(|(m, _)| m == n)
                        .map_or("-".into(), |(_, v)| format!("{v:.0}"))
                })
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {:.0}{} |",
                thousands(st.rate),
                cells.join(" | "),
                st.machine_pct,
                if st.compiling {
                    " (compile running)"
                } else {
                    ""
                }
            );
        }
    }
    for st in steps {
        s.push_str(&st.usage);
        if !st.sim_errors.is_empty() {
            let _ = writeln!(
                s,
                "\nSimulator errors at {}/s: {}",
                thousands(st.rate),
                st.sim_errors
            );
        }
    }
    s
}
