//! Benchmark 4: reconnect storm. The edge holding the whole fleet is killed (SIGKILL, a
//! crash: no clean closes, no disconnect events) and started again on the same port; every
//! orchestrator reconnects with its backoff. Measured: time until all re-registered, peak
//! database load, and that nobody was shown inactive meanwhile.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::procs::open_file_limit;
use crate::prom::scrape;
use crate::report::{thousands, usage_table};
use crate::sockets::{FleetArgs, bring_up, combined, fleet_summary, sockets_per_process};
use crate::stack::Bench;

#[derive(Debug, Clone, clap::Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Seconds between the kill and the restart.
    #[arg(long, default_value_t = 1.0)]
    pub down_sec: f64,
    /// Give up waiting for re-registration after this long.
    #[arg(long, default_value_t = 900)]
    pub storm_timeout_sec: u64,
}

#[derive(Default)]
struct DbLoad {
    /// (seconds since kill, active backends of our database, all backends, xact_commit)
    points: Vec<(f64, i64, i64, i64)>,
}

/// Every 100 ms: backends of the bench database (active and all) and its commit counter.
fn sample_db_load(
    admin: PgPool,
    db: String,
    from: Instant,
    stop: CancellationToken,
) -> Arc<Mutex<DbLoad>> {
    let load = Arc::new(Mutex::new(DbLoad::default()));
    let out = load.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        while !stop.is_cancelled() {
            ticker.tick().await;
            let row: Result<(i64, i64, i64), _> = sqlx::query_as(
                "SELECT (SELECT count(*) FILTER (WHERE state = 'active' AND pid <> pg_backend_pid()) \
                         FROM pg_stat_activity WHERE datname = $1), \
                        (SELECT count(*) FROM pg_stat_activity WHERE datname = $1), \
                        (SELECT xact_commit FROM pg_stat_database WHERE datname = $1)",
            )
            .bind(&db)
            .fetch_one(&admin)
            .await;
            if let Ok((active, all, commits)) = row {
                out.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .points
                    .push((from.elapsed().as_secs_f64(), active, all, commits));
            }
        }
    });
    load
}

#[allow(clippy::too_many_lines)]
pub async fn run(b: &mut Bench, args: &StormArgs) -> anyhow::Result<String> {
    let count = args.fleet.count;
    let edges = count.div_ceil(sockets_per_process()).max(1);
    let fleet = bring_up(b, &args.fleet, count, edges, true).await?;
    let n = fleet.last.connected;
    let mut s = String::new();
    if edges > 1 {
        let _ = writeln!(
            s,
            "**One process here can hold at most {} sockets (open-file hard limit {}, not raisable \
             without CAP_SYS_RESOURCE), so the {} orchestrators are held by {edges} edges with \
             `WS_MAX_HANDSHAKES_PER_SEC` {} each ({} in total, what one edge allows), and all {edges} \
             are killed and restarted together: the same storm for state and PostgreSQL as one \
             edge holding them all.**\n",
            thousands(sockets_per_process() as f64),
            open_file_limit(true).unwrap_or(0),
            thousands(count as f64),
            args.fleet.handshakes_per_sec / u32::try_from(edges).unwrap_or(1),
            args.fleet.handshakes_per_sec
        );
    }
    fleet_summary(&mut s, b, &args.fleet, &fleet);
    if fleet.connected_at.is_none() {
        let _ = writeln!(
            s,
            "\nThe storm is run with the {} orchestrators that did connect.",
            thousands(n as f64)
        );
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    let pool = b.db()?.pool(2).await?;
    let db_name = b.db()?.name.clone();

    // Outside observer of the public status subjects.
    let nats = async_nats::connect(&b.common.nats_url)
        .await
        .context("connecting to NATS")?;
    let mut status = nats
        .subscribe(format!("{}.v1.*.*.status", b.prefix))
        .await?;
    nats.flush().await?;
    let counts: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    {
        let counts = counts.clone();
        tokio::spawn(async move {
            while let Some(m) = status.next().await {
                let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap_or_default();
                let key = format!(
                    "{} ({})",
                    v["status"].as_str().unwrap_or("?"),
                    v["reason"].as_str().unwrap_or("?")
                );
                *counts
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(key)
                    .or_default() += 1;
            }
        });
    }

    let kill_db_time: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&pool).await?;
    let stop = CancellationToken::new();
    let kill_at = Instant::now();
    let load = sample_db_load(b.admin.clone(), db_name.clone(), kill_at, stop.clone());
    b.sampler.sample_now().await;
    for (name, _, _) in &fleet.edges {
        if let Some(edge) = b.proc(name) {
            edge.signal("KILL");
        }
    }
    for (name, _, _) in &fleet.edges {
        b.stop_proc(name, "KILL", Duration::from_secs(10)).await;
    }
    tokio::time::sleep(Duration::from_secs_f64(args.down_sec)).await;
    let per_edge_rate = (args.fleet.handshakes_per_sec / u32::try_from(edges)?).max(1);
    let mut edge_metrics = Vec::new();
    for (name, port, _) in &fleet.edges {
        edge_metrics.push(
            b.start_edge(
                name,
                *port,
                &[("WS_MAX_HANDSHAKES_PER_SEC", per_edge_rate.to_string())],
            )
            .await?,
        );
    }
    let restarted = kill_at.elapsed();

    // Re-registration and "shown inactive" every second.
    let mut curve: Vec<(f64, i64, i64)> = Vec::new();
    let mut all_at = None;
    let mut max_inactive = 0i64;
    let until = kill_at + Duration::from_secs(args.storm_timeout_sec);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (registered, inactive): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE last_activity >= $1), \
                 count(*) FILTER (WHERE disconnected_at IS NOT NULL OR last_seen IS NULL \
                     OR last_seen <= now() - interval '120 seconds') \
             FROM orchestrator_instances WHERE orchestrator_id LIKE 's%'",
        )
        .bind(kill_db_time)
        .fetch_one(&pool)
        .await?;
        max_inactive = max_inactive.max(inactive);
        curve.push((kill_at.elapsed().as_secs_f64(), registered, inactive));
        if curve.len().is_multiple_of(5) {
            eprintln!(
                "[{:>5.0}s after kill] re-registered {registered}/{n}, shown inactive {inactive}",
                kill_at.elapsed().as_secs_f64()
            );
        }
        if registered >= i64::try_from(n).unwrap_or(i64::MAX) {
            all_at = Some(kill_at.elapsed());
            break;
        }
        if Instant::now() > until {
            break;
        }
    }
    let mut connected_at = None;
    let wait_until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < wait_until {
        if combined(&fleet.sims).connected >= n {
            connected_at = Some(kill_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.sampler.sample_now().await;
    let storm_end = Instant::now();
    // Two sweeps later: still nobody inactive?
    tokio::time::sleep(Duration::from_secs(12)).await;
    stop.cancel();
    let storm_usage = b.sampler.window(kill_at, storm_end);

    let api_port = fleet.api_port.context("no api")?;
    let token = b.login(api_port).await?;
    let overview: serde_json::Value = b
        .http
        .get(format!(
            "http://127.0.0.1:{api_port}/api/v1/controller/overview"
        ))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let active_api = overview["data"]["active_orchestrators"]
        .as_i64()
        .unwrap_or(-1);
    let inactive_api = overview["data"]["inactive_orchestrators"]
        .as_i64()
        .unwrap_or(-1);
    let distinct: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT orchestrator_id) FROM orchestrator_connections \
         WHERE created_at >= $1 AND orchestrator_id LIKE 's%'",
    )
    .bind(kill_db_time)
    .fetch_one(&pool)
    .await?;
    let mut refused = 0.0;
    for port in edge_metrics {
        refused += scrape(&b.http, port)
            .await?
            .sum("moolai_edge_upgrades_refused_total", "");
    }
    let last = combined(&fleet.sims);

    let points = load
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .points
        .clone();
    let peak_active = points.iter().map(|p| p.1).max().unwrap_or(0);
    let peak_all = points.iter().map(|p| p.2).max().unwrap_or(0);
    // Commit rate over sliding 1 s windows (the statistics collector publishes in steps).
    let mut peak_commits = 0.0f64;
    for (i, a) in points.iter().enumerate() {
        if let Some(bp) = points[i..].iter().find(|p| p.0 >= a.0 + 1.0) {
            peak_commits = peak_commits.max((bp.3 - a.3) as f64 / (bp.0 - a.0));
        }
    }
    let storm_secs = all_at.map_or(f64::INFINITY, |d| d.as_secs_f64());
    let during: Vec<_> = points.iter().filter(|p| p.0 <= storm_secs).collect();
    let mean_commits = match (during.first(), during.last()) {
        (Some(a), Some(z)) if z.0 > a.0 => (z.3 - a.3) as f64 / (z.0 - a.0),
        _ => 0.0,
    };
    let status_counts = counts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let inactive_events: u64 = status_counts
        .iter()
        .filter(|(k, _)| k.starts_with("inactive"))
        .map(|(_, v)| v)
        .sum();

    let _ = writeln!(
        s,
        "\nStorm: the edge(s) holding {} sockets were killed with SIGKILL and started again on the same port(s) {:.1} s later (listening {:.1} s after the kill). Clients reconnect with the library's backoff (1 s doubling to 60 s, full jitter; 503 `Retry-After` honoured).\n",
        thousands(n as f64),
        args.down_sec,
        restarted.as_secs_f64()
    );
    let _ = writeln!(s, "| measured | value |");
    let _ = writeln!(s, "| --- | ---: |");
    let _ = writeln!(
        s,
        "| kill → every orchestrator re-registered (hello committed; `last_activity` ≥ kill) | **{}** |",
        all_at.map_or_else(
            || format!(
                "not reached in {} s ({} of {})",
                args.storm_timeout_sec,
                curve.last().map_or(0, |c| c.1),
                n
            ),
            |d| format!("{:.1} s", d.as_secs_f64())
        )
    );
    let _ = writeln!(
        s,
        "| kill → simulator sees every client connected | {} |",
        connected_at.map_or("not reached".into(), |d| format!(
            "{:.1} s",
            d.as_secs_f64()
        ))
    );
    let _ = writeln!(
        s,
        "| distinct orchestrators with a new connection row since the kill | {} |",
        thousands(distinct as f64)
    );
    let _ = writeln!(
        s,
        "| upgrades refused with 503 by the restarted edge | {} |",
        thousands(refused)
    );
    let _ = writeln!(
        s,
        "| peak active backends of the bench database (100 ms samples) | {peak_active} (of {peak_all} connected) |"
    );
    let _ = writeln!(
        s,
        "| peak commits/s (1 s sliding window) / mean over the storm | {} / {} |",
        thousands(peak_commits),
        thousands(mean_commits)
    );
    let _ = writeln!(
        s,
        "| `inactive` status events on `{}.v1.*.*.status` during the storm | **{inactive_events}** |",
        b.prefix
    );
    let _ = writeln!(
        s,
        "| most fleet rows whose derived status was inactive at any 1 s sample | **{max_inactive}** |"
    );
    let _ = writeln!(
        s,
        "| API overview after the storm: active / inactive | {} / {} (fleet {}) |",
        thousands(active_api as f64),
        thousands(inactive_api as f64),
        thousands(n as f64)
    );
    let _ = writeln!(s, "| simulator errors (whole run) | {:?} |", last.errors);
    let _ = writeln!(s, "| all status events seen | {status_counts:?} |");
    s.push_str(&usage_table(
        "CPU and RSS during the storm (kill → all re-registered)",
        &storm_usage,
    ));
    let _ = writeln!(
        s,
        "\nRe-registered over time (seconds after the kill: count):\n"
    );
    let pts: Vec<String> = curve
        .iter()
        .step_by((curve.len() / 20).max(1))
        .map(|(t, r, _)| format!("{t:.0}s {}", thousands(*r as f64)))
        .collect();
    let _ = writeln!(s, "{}", pts.join(" · "));
    Ok(s)
}
