//! Benchmark 1: concurrent authenticated (hello committed) idle orchestrators held by one
//! ws-edge, and the edge's RSS per socket.
//!
//! Every socket is a file descriptor on both ends. When the open-file limit of a process is
//! below the fleet (a container without CAP_SYS_RESOURCE cannot raise its hard limit), the
//! fleet is split over several simulator processes and, where a benchmark allows it, several
//! edges; `sockets` then measures the largest fleet one edge can hold under that limit.

use std::fmt::Write as _;
use std::time::Duration;

use tokio::time::Instant;

use crate::procs::{open_file_limit, sockstat};
use crate::prom::{fmt_secs, scrape};
use crate::report::{thousands, usage_table};
use crate::stack::{Bench, SimHandle, SimProgress, free_port};

#[derive(Debug, Clone, clap::Args)]
pub struct SocketsArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Seconds to hold the idle fleet after the last connection, before measuring.
    #[arg(long, default_value_t = 30)]
    pub hold_sec: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Orchestrators (sockets).
    #[arg(long, default_value_t = 100_000)]
    pub count: usize,
    /// Client source addresses 127.0.0.1 … 127.0.0.K (each reaches an edge through ~28k ports).
    #[arg(long, default_value_t = 8)]
    pub source_addrs: u8,
    /// Connection starts per second (the simulators' ramp, all together).
    #[arg(long, default_value_t = 1500.0)]
    pub connect_rate: f64,
    /// Give up connecting after this long.
    #[arg(long, default_value_t = 900)]
    pub connect_timeout_sec: u64,
    /// `WS_MAX_HANDSHAKES_PER_SEC` of the edges together (split evenly between them).
    #[arg(long, default_value_t = 2000)]
    pub handshakes_per_sec: u32,
    /// `DATABASE_MAX_CONNECTIONS` of the state service (its default is 10).
    #[arg(long, default_value_t = 10)]
    pub state_pool: u32,
}

/// Sockets one process can hold: its open-file limit minus room for everything else.
#[must_use]
pub fn sockets_per_process() -> usize {
    let limit = open_file_limit(false).unwrap_or(1024);
    usize::try_from(limit.saturating_sub(500))
        .unwrap_or(usize::MAX)
        .max(100)
}

/// A connected idle fleet and the edges holding it.
pub struct Fleet {
    pub sims: Vec<SimHandle>,
    /// (process name, port, metrics port)
    pub edges: Vec<(String, u16, u16)>,
    pub api_port: Option<u16>,
    pub count: usize,
    pub edge_baseline_kib: u64,
    pub sockstat_before: String,
    pub connected_at: Option<Duration>,
    pub last: SimProgress,
    /// (seconds since start, connected, RSS KiB of the first edge) every 5 s.
    pub curve: Vec<(f64, usize, u64)>,
    pub ramp_started: Instant,
    pub ramp_ended: Instant,
    /// Why connecting stopped short, if it did.
    pub stopped_short: Option<String>,
}

/// The simulators' reports added up.
#[must_use]
pub fn combined(sims: &[SimHandle]) -> SimProgress {
    let mut all = SimProgress::default();
    for p in sims.iter().filter_map(SimHandle::latest) {
        all.connected += p.connected;
        all.handshakes += p.handshakes;
        all.heartbeats_sent += p.heartbeats_sent;
        all.reconnects += p.reconnects;
        // Percentiles cannot be added: keep the worst simulator's.
        all.handshake_p50_ms = worst(all.handshake_p50_ms, p.handshake_p50_ms);
        all.handshake_p99_ms = worst(all.handshake_p99_ms, p.handshake_p99_ms);
        all.handshake_max_ms = worst(all.handshake_max_ms, p.handshake_max_ms);
        for (k, v) in p.errors {
            *all.errors.entry(k).or_default() += v;
        }
    }
    all
}

fn worst(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Starts state (and the api), `edges` edges and enough simulator processes for `count`
/// orchestrators at their default heartbeat interval (30 s), recording progress every 5 s.
///
/// # Errors
/// When a service does not start.
#[allow(clippy::too_many_lines)]
pub async fn bring_up(
    b: &mut Bench,
    args: &FleetArgs,
    count: usize,
    edges: usize,
    with_api: bool,
) -> anyhow::Result<Fleet> {
    b.create_database().await?;
    b.start_state(
        "state",
        &[("DATABASE_MAX_CONNECTIONS", args.state_pool.to_string())],
    )
    .await?;
    let mut edge_list = Vec::new();
    let per_edge_rate = (args.handshakes_per_sec / u32::try_from(edges)?).max(1);
    for i in 0..edges {
        let port = free_port()?;
        let name = format!("ws-edge-{i}");
        let metrics = b
            .start_edge(
                &name,
                port,
                &[("WS_MAX_HANDSHAKES_PER_SEC", per_edge_rate.to_string())],
            )
            .await?;
        edge_list.push((name, port, metrics));
    }
    let api_port = if with_api {
        Some(b.start_api("api", &[]).await?.0)
    } else {
        None
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.sampler.sample_now().await;
    let edge_baseline_kib = b.sampler.rss_now("ws-edge-0").unwrap_or(0);
    let sockstat_before = sockstat();

    // Simulators: one per edge at least, each within the per-process socket budget.
    let budget = sockets_per_process();
    let sims_per_edge = count.div_ceil(edges).div_ceil(budget).max(1);
    let n_sims = sims_per_edge * edges;
    let mut sims = Vec::new();
    let mut assigned = 0;
    for k in 0..n_sims {
        let n = (count - assigned) / (n_sims - k);
        assigned += n;
        let (_, port, _) = &edge_list[k / sims_per_edge];
        let ramp = count as f64 / args.connect_rate;
        sims.push(b.start_simulator(
            &format!("sim-{k}"),
            &[
                "--url".into(),
                format!("ws://127.0.0.1:{port}/ws"),
                "--count".into(),
                n.to_string(),
                "--id-prefix".into(),
                format!("s{k}-"),
                "--ramp-up-sec".into(),
                format!("{ramp:.1}"),
                "--max-handshakes".into(),
                (1000 / n_sims).max(10).to_string(),
                "--source-addr-count".into(),
                args.source_addrs.to_string(),
            ],
        )?);
    }
    let ramp = count as f64 / args.connect_rate;
    let started = Instant::now();
    let mut curve = Vec::new();
    let mut connected_at = None;
    let mut stopped_short = None;
    let mut best = (0usize, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let p = combined(&sims);
        let rss = b.sampler.rss_now("ws-edge-0").unwrap_or(0);
        curve.push((started.elapsed().as_secs_f64(), p.connected, rss));
        eprintln!(
            "[{:>5.0}s] connected {}/{count} (handshakes {}, errors {:?}), ws-edge-0 RSS {:.0} MiB",
            started.elapsed().as_secs_f64(),
            p.connected,
            p.handshakes,
            p.errors,
            rss as f64 / 1024.0
        );
        if p.connected >= count {
            connected_at = Some(started.elapsed());
            break;
        }
        if p.connected > best.0 {
            best = (p.connected, Instant::now());
        }
        let dead: Vec<String> = b
            .procs
            .iter_mut()
            .filter(|p| p.name.starts_with("sim-") || p.name.starts_with("ws-edge-"))
            .filter_map(|p| (!p.running()).then(|| p.name.clone()))
            .collect();
        if !dead.is_empty() {
            stopped_short = Some(format!("{} exited", dead.join(", ")));
            break;
        }
        if started.elapsed() > Duration::from_secs(args.connect_timeout_sec) {
            stopped_short = Some(format!(
                "not all connected after {} s",
                args.connect_timeout_sec
            ));
            break;
        }
        if started.elapsed().as_secs_f64() > ramp + 60.0
            && best.1.elapsed() > Duration::from_secs(120)
        {
            stopped_short = Some("no progress for 120 s".into());
            break;
        }
    }
    let last = combined(&sims);
    Ok(Fleet {
        sims,
        edges: edge_list,
        api_port,
        count,
        edge_baseline_kib,
        sockstat_before,
        connected_at,
        last,
        curve,
        ramp_started: started,
        ramp_ended: Instant::now(),
        stopped_short,
    })
}

pub fn fleet_summary(s: &mut String, b: &Bench, args: &FleetArgs, f: &Fleet) {
    let _ = writeln!(
        s,
        "Fleet: {} simulated orchestrators (mixed dialects, heartbeat every 30 s as the edge asks) in {} \
         simulator process(es), started at {}/s over {} source addresses, against {} ws-edge(s) \
         (`WS_MAX_HANDSHAKES_PER_SEC` {} in total), state with a pool of {} connections; open-file limit per process {}.\n",
        thousands(f.count as f64),
        f.sims.len(),
        thousands(args.connect_rate),
        args.source_addrs,
        f.edges.len(),
        args.handshakes_per_sec,
        args.state_pool,
        open_file_limit(false).unwrap_or(0)
    );
    let _ = writeln!(
        s,
        "- connected: **{} / {}**{}",
        thousands(f.last.connected as f64),
        thousands(f.count as f64),
        f.connected_at.map_or_else(
            || format!(
                " — stopped: {}",
                f.stopped_short.clone().unwrap_or_default()
            ),
            |d| format!(" in {:.0} s", d.as_secs_f64())
        )
    );
    let _ = writeln!(
        s,
        "- handshake (TCP connect → `handshake_ack`, worst simulator): p50 {} p99 {} max {} over {} handshakes; reconnects {}; errors {:?}",
        f.last
            .handshake_p50_ms
            .map_or("-".into(), |v| fmt_secs(v / 1000.0)),
        f.last
            .handshake_p99_ms
            .map_or("-".into(), |v| fmt_secs(v / 1000.0)),
        f.last
            .handshake_max_ms
            .map_or("-".into(), |v| fmt_secs(v / 1000.0)),
        thousands(f.last.handshakes as f64),
        f.last.reconnects,
        f.last.errors
    );
    let ramp = b.sampler.window(f.ramp_started, f.ramp_ended);
    s.push_str(&usage_table("CPU and memory while connecting", &ramp));
}

pub async fn run(b: &mut Bench, args: &SocketsArgs) -> anyhow::Result<String> {
    let budget = sockets_per_process();
    let count = args.fleet.count.min(budget);
    let mut s = String::new();
    if count < args.fleet.count {
        let _ = writeln!(
            s,
            "**Asked for {} sockets on one edge; this machine's open-file limit ({} per process, \
             hard limit, not raisable without CAP_SYS_RESOURCE) caps one edge at {} sockets, so \
             that is what was measured.**\n",
            thousands(args.fleet.count as f64),
            open_file_limit(true).unwrap_or(0),
            thousands(count as f64)
        );
    }
    let fleet = bring_up(b, &args.fleet, count, 1, false).await?;
    tokio::time::sleep(Duration::from_secs(args.hold_sec)).await;
    b.sampler.sample_now().await;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    b.sampler.sample_now().await;
    let t1 = Instant::now();
    let idle = b.sampler.window(t0, t1);
    let edge = scrape(&b.http, fleet.edges[0].2).await?;
    let held = edge.sum("moolai_edge_sockets", "");
    let connected = combined(&fleet.sims).connected;
    let rss = |prefix: &str| -> u64 {
        idle.groups
            .iter()
            .filter(|g| g.name.starts_with(prefix))
            .map(|g| g.rss_last_kib)
            .sum()
    };
    let edge_rss = rss("ws-edge-0");
    let sim_rss = rss("sim-");

    fleet_summary(&mut s, b, &args.fleet, &fleet);
    let per_socket =
        (edge_rss.saturating_sub(fleet.edge_baseline_kib)) as f64 * 1024.0 / held.max(1.0);
    let _ = writeln!(
        s,
        "\nHeld after {} s idle: the edge reports **{} open sockets** (`moolai_edge_sockets`); the simulators {} connected.\n",
        args.hold_sec,
        thousands(held),
        thousands(connected as f64)
    );
    let _ = writeln!(s, "| measured | value |");
    let _ = writeln!(s, "| --- | ---: |");
    let _ = writeln!(
        s,
        "| ws-edge RSS before the fleet | {:.1} MiB |",
        fleet.edge_baseline_kib as f64 / 1024.0
    );
    let _ = writeln!(
        s,
        "| ws-edge RSS holding the fleet | {:.1} MiB |",
        edge_rss as f64 / 1024.0
    );
    let _ = writeln!(
        s,
        "| **ws-edge RSS per idle socket** ((held − before) ÷ sockets) | **{:.2} KiB** (target ≤ 8 KiB: {}) |",
        per_socket / 1024.0,
        if per_socket <= 8.0 * 1024.0 {
            "met"
        } else {
            "missed"
        }
    );
    let _ = writeln!(
        s,
        "| simulator RSS per client | {:.2} KiB |",
        sim_rss as f64 / connected.max(1) as f64
    );
    let _ = writeln!(
        s,
        "| kernel TCP before (`/proc/net/sockstat`, mem in pages) | `{}` |",
        fleet.sockstat_before
    );
    let _ = writeln!(s, "| kernel TCP holding the fleet | `{}` |", sockstat());
    s.push_str(&usage_table("CPU and memory holding the idle fleet", &idle));
    let _ = writeln!(
        s,
        "\nConnection progress (every 5 s: seconds, connected, edge RSS):\n"
    );
    let points: Vec<String> = fleet
        .curve
        .iter()
        .step_by((fleet.curve.len() / 20).max(1))
        .map(|(t, c, r)| {
            format!(
                "{t:.0}s {} {:.0}MiB",
                thousands(*c as f64),
                *r as f64 / 1024.0
            )
        })
        .collect();
    let _ = writeln!(s, "{}", points.join(" · "));
    Ok(s)
}
