//! Benchmark 3: independence. Beside a background fleet, a probe orchestrator is switched into
//! independence mode and back, many times: the time from the API call to `stop_monitoring`
//! on its socket, and proof that heartbeats sent after the switch never move `last_seen`
//! (while heartbeats before it, and after switching back, do).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::time::Instant;

use crate::probe::Probe;
use crate::prom::fmt_secs;
use crate::report::{percentile, thousands, usage_table};
use crate::stack::{BENCH_ORGANIZATION, Bench, free_port};

#[derive(Debug, Clone, clap::Args)]
pub struct IndependenceArgs {
    /// Switches on (each followed by a switch off).
    #[arg(long, default_value_t = 200)]
    pub toggles: usize,
    /// Background orchestrators.
    #[arg(long, default_value_t = 10_000)]
    pub background_fleet: usize,
    /// Background heartbeats per second.
    #[arg(long, default_value_t = 10_000.0)]
    pub background_rate: f64,
    /// Heartbeats the probe sends after each switch on.
    #[arg(long, default_value_t = 5)]
    pub beats_after_toggle: usize,
}

/// State's flush interval (its default); the no-move check waits a few of them.
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

async fn last_seen(pool: &PgPool, id: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "SELECT last_seen FROM orchestrator_instances WHERE orchestrator_id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await?)
}

/// Heartbeats until `last_seen` moves past `before`; returns the new value.
async fn beat_until_moved(
    probe: &mut Probe,
    pool: &PgPool,
    before: Option<DateTime<Utc>>,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    let until = Instant::now() + Duration::from_secs(10);
    probe.heartbeat().await?;
    let mut last_beat = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = last_seen(pool, &probe.orchestrator_id).await?;
        if now > before {
            return Ok(now);
        }
        if Instant::now() > until {
            bail!("a monitored heartbeat did not move last_seen within 10 s");
        }
        if last_beat.elapsed() > Duration::from_secs(1) {
            probe.heartbeat().await?;
            last_beat = Instant::now();
        }
    }
}

#[allow(clippy::too_many_lines)]
pub async fn run(b: &mut Bench, args: &IndependenceArgs) -> anyhow::Result<String> {
    b.create_database().await?;
    b.start_state("state", &[]).await?;
    let edge_port = free_port()?;
    b.start_edge("ws-edge", edge_port, &[]).await?;
    let (api_port, _) = b.start_api("api", &[]).await?;
    let url = format!("ws://127.0.0.1:{edge_port}/ws");
    let pool = b.db()?.pool(2).await?;
    let token = b.login(api_port).await?;

    let sim = b.start_simulator(
        "sim",
        &[
            "--url".into(),
            url.clone(),
            "--count".into(),
            args.background_fleet.to_string(),
            "--rate".into(),
            args.background_rate.to_string(),
            "--id-prefix".into(),
            "bg-".into(),
            "--ramp-up-sec".into(),
            format!("{:.1}", (args.background_fleet as f64 / 1500.0).max(1.0)),
            "--source-addr-count".into(),
            "8".into(),
        ],
    )?;
    sim.wait_for(Duration::from_secs(600), "the background fleet", |p| {
        p.connected >= args.background_fleet
    })
    .await?;

    let id = "bench-independence-probe";
    let mut probe = Probe::connect(&url, id, BENCH_ORGANIZATION, &b.enrollment_token).await?;
    let mut seen = beat_until_moved(&mut probe, &pool, None).await?;
    let put_url =
        format!("http://127.0.0.1:{api_port}/api/v1/internal/orchestrators/{id}/independence");
    let http = reqwest::Client::new();

    b.sampler.sample_now().await;
    let t0 = Instant::now();
    let p0 = sim.latest().unwrap_or_default();
    let mut stop_ms = Vec::new();
    let mut put_ms = Vec::new();
    let mut resume_ms = Vec::new();
    let mut violations = Vec::new();
    let mut beats_after = 0usize;
    for i in 0..args.toggles {
        // Monitored: a heartbeat moves last_seen.
        seen = beat_until_moved(&mut probe, &pool, seen).await?;

        probe.drain();
        let sent = Instant::now();
        let put = http
            .put(&put_url)
            .bearer_auth(&token)
            .json(&serde_json::json!({"is_independent": true}))
            .send();
        let (response, frame) = tokio::join!(
            async {
                let r = put.await;
                (r, sent.elapsed())
            },
            probe.expect("stop_monitoring", Duration::from_secs(5))
        );
        let (response, put_elapsed) = response;
        let response = response.context("independence PUT")?;
        if !response.status().is_success() {
            bail!("independence PUT answered {}", response.status());
        }
        let (arrived, _) = frame.with_context(|| format!("toggle {i}: stop_monitoring"))?;
        stop_ms.push((arrived - sent).as_secs_f64());
        put_ms.push(put_elapsed.as_secs_f64());

        // Independent: keep heartbeating; none of these may move last_seen.
        for _ in 0..args.beats_after_toggle {
            probe.heartbeat().await?;
            beats_after += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(FLUSH_INTERVAL * 3).await;
        let after = last_seen(&pool, id).await?;
        if after != seen {
            violations.push(format!(
                "toggle {i}: last_seen moved from {seen:?} to {after:?}"
            ));
            seen = after;
        }

        probe.drain();
        let sent = Instant::now();
        let put = http
            .put(&put_url)
            .bearer_auth(&token)
            .json(&serde_json::json!({"is_independent": false}))
            .send();
        let (response, frame) = tokio::join!(
            put,
            probe.expect("resume_monitoring", Duration::from_secs(5))
        );
        response
            .context("independence PUT (off)")?
            .error_for_status()?;
        let (arrived, _) = frame.with_context(|| format!("toggle {i}: resume_monitoring"))?;
        resume_ms.push((arrived - sent).as_secs_f64());
    }
    b.sampler.sample_now().await;
    let t1 = Instant::now();
    let p1 = sim.latest().unwrap_or_default();
    probe.close().await;
    let usage = b.sampler.window(t0, t1);

    for v in [&mut stop_ms, &mut put_ms, &mut resume_ms] {
        v.sort_by(f64::total_cmp);
    }
    let row = |name: &str, v: &[f64]| {
        let q = |x| percentile(v, x).map_or("-".into(), fmt_secs);
        format!(
            "| {name} | {} | {} | {} | {} | {} |\n",
            v.len(),
            q(0.5),
            q(0.9),
            q(0.99),
            v.last().map_or("-".into(), |m| fmt_secs(*m))
        )
    };
    let bg_rate =
        (p1.heartbeats_sent.saturating_sub(p0.heartbeats_sent)) as f64 / (t1 - t0).as_secs_f64();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Background: {} orchestrators sending {} heartbeats/s in total (measured {}/s over the run). \
         A probe orchestrator (its own WebSocket, HLD dialect) is switched on and off {} times through \
         `PUT /api/v1/internal/orchestrators/{{id}}/independence` with a login session token.\n",
        thousands(args.background_fleet as f64),
        thousands(args.background_rate),
        thousands(bg_rate),
        args.toggles
    );
    let _ = writeln!(s, "| measured | n | p50 | p90 | p99 | max |");
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: |");
    s.push_str(&row(
        "PUT sent → `stop_monitoring` received on the socket",
        &stop_ms,
    ));
    s.push_str(&row("PUT sent → HTTP response", &put_ms));
    s.push_str(&row(
        "PUT (off) sent → `resume_monitoring` received",
        &resume_ms,
    ));
    let p99 = percentile(&stop_ms, 0.99).unwrap_or(f64::INFINITY);
    let _ = writeln!(
        s,
        "\nTarget p99 ≤ 50 ms: **{}** (p99 {}).",
        if p99 <= 0.05 { "met" } else { "missed" },
        fmt_secs(p99)
    );
    let _ = writeln!(
        s,
        "\nNo heartbeat after the toggle moved `last_seen`: {} heartbeats sent while independent \
         ({} after each of {} switches, the first right after `stop_monitoring`; `last_seen` read \
         {} ms later, 3 flush intervals) → **{} moved it**. Before every switch a heartbeat was \
         shown to move `last_seen` (so the check is not vacuous).",
        beats_after,
        args.beats_after_toggle,
        args.toggles,
        (FLUSH_INTERVAL * 3).as_millis(),
        violations.len()
    );
    for v in violations.iter().take(10) {
        let _ = writeln!(s, "- {v}");
    }
    s.push_str(&usage_table("CPU and RSS during the toggles", &usage));
    Ok(s)
}
