//! `moolai-bench`: the controller's performance benchmarks, one subcommand each.
//!
//! Every benchmark starts what it needs itself — a fresh database `moolai_bench_<time>_<hex>`
//! on the machine's PostgreSQL, a unique NATS subject prefix, the release binaries of the
//! services and the load generator (`moolai-simulator`, a separate process so its CPU and
//! memory are its own) — samples CPU time and RSS of every process involved from `/proc`,
//! and prints a markdown section. Everything it started is stopped and the database dropped
//! at the end, also on failure or Ctrl-C.
//!
//! Modules: [`stack`] (the run's world and its cleanup), [`procs`] (child processes and the
//! `/proc` sampler), [`db`], [`prom`] (Prometheus text and histogram quantiles), [`probe`] (a
//! timestamping orchestrator socket), [`report`] (markdown), and one module per benchmark.
//!
//! It must not: touch databases other than its own, or leave processes behind.

mod api;
mod db;
mod independence;
mod probe;
mod procs;
mod prom;
mod report;
mod sockets;
mod stack;
mod storm;
mod throughput;

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

use crate::stack::{Bench, Common};

#[derive(Parser)]
#[command(
    name = "moolai-bench",
    version,
    about = "Performance benchmarks of the Moolai Controller"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// 1. Concurrent idle orchestrators held by one ws-edge, and RSS per socket.
    Sockets(sockets::SocketsArgs),
    /// 2. Heartbeats per second end to end, with lag from send to committed last_seen.
    Throughput(throughput::ThroughputArgs),
    /// 3. API call → stop_monitoring latency, and no heartbeat moves last_seen afterwards.
    Independence(independence::IndependenceArgs),
    /// 4. Kill the edge holding the fleet, restart it, measure re-registration.
    Storm(storm::StormArgs),
    /// 5. API latency with a large fleet in the database.
    Api(api::ApiArgs),
}

impl Cmd {
    fn name(&self) -> &'static str {
        match self {
            Self::Sockets(_) => "sockets",
            Self::Throughput(_) => "throughput",
            Self::Independence(_) => "independence",
            Self::Storm(_) => "storm",
            Self::Api(_) => "api",
        }
    }
}

/// Open files for 100k+ sockets in this process and every child (they inherit it). The
/// workspace forbids `unsafe`, so `setrlimit` is done by `prlimit` on our own pid: first to
/// the system maximum (needs CAP_SYS_RESOURCE), else the soft limit up to the hard one.
fn raise_open_files() {
    let max = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1_048_576);
    let set = |limit: &str| {
        std::process::Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                &format!("--nofile={limit}"),
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !set(&format!("{max}:{max}")) {
        let hard = procs::open_file_limit(true).unwrap_or(0);
        set(&format!("{hard}:{hard}"));
        eprintln!(
            "warning: the open-file limit cannot be raised past its hard limit {hard} (no CAP_SYS_RESOURCE): \
             every process is capped at that many sockets"
        );
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    raise_open_files();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let name = cli.command.name();
    let mut bench = Bench::new(cli.common.clone(), name).await?;
    eprintln!("logs in {}", bench.log_dir.display());
    let pg_version = db::server_version(&bench.admin).await.unwrap_or_default();
    let started = std::time::Instant::now();
    let result = {
        let work = async {
            match &cli.command {
                Cmd::Sockets(a) => sockets::run(&mut bench, a).await,
                Cmd::Throughput(a) => throughput::run(&mut bench, a).await,
                Cmd::Independence(a) => independence::run(&mut bench, a).await,
                Cmd::Storm(a) => storm::run(&mut bench, a).await,
                Cmd::Api(a) => api::run(&mut bench, a).await,
            }
        };
        // Whatever ends the bench, the cleanup below runs: stop signals are turned into an
        // error instead of ending the process.
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted (SIGINT)")),
            _ = term.recv() => Err(anyhow::anyhow!("terminated (SIGTERM)")),
            _ = hangup.recv() => Err(anyhow::anyhow!("hung up (SIGHUP)")),
        }
    };
    eprintln!("cleaning up");
    bench.cleanup().await;
    let body = result?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let section = format!(
        "## {name}\n\n{}- command: `{command}`\n- run time: {:.0} s\n\n{body}\n",
        report::machine(&pg_version),
        started.elapsed().as_secs_f64()
    );
    println!("{section}");
    if let Some(path) = &cli.common.out {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        f.write_all(section.as_bytes())?;
    }
    // Give the sampler's last blocking read a moment before the runtime goes away.
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
