//! The simulator's command line, shared by `moolai-simulator` and `moolai simulate`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::ValueEnum;
use tokio_util::sync::CancellationToken;

use crate::{HeartbeatPlan, SimDialect, SimOptions, SimReport, simulate};

/// Simulates a fleet of orchestrators (real moolai-client connections) and reports
/// connections, handshake latency, heartbeats, reconnects and errors.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Controller WebSocket URL: the single binary's port (8765) or a ws-edge (8766).
    #[arg(long, env = "MOOLAI_SIM_URL", default_value = "ws://127.0.0.1:8765/ws")]
    pub url: String,
    /// Number of orchestrators.
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    #[arg(long, value_enum, default_value_t = DialectArg::Mixed)]
    pub dialect: DialectArg,
    /// Orchestrator ids are <prefix><index>.
    #[arg(long, default_value = "sim-")]
    pub id_prefix: String,
    /// Organization sent in every hello (default: the controller's default organization).
    #[arg(long)]
    pub organization_id: Option<String>,
    /// Heartbeat interval of every orchestrator (default: what the controller asks for).
    #[arg(long, conflicts_with = "rate")]
    pub heartbeat_interval_sec: Option<f64>,
    /// Total heartbeats per second, spread over the fleet.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Spread connection starts evenly over this many seconds.
    #[arg(long, default_value_t = 0.0)]
    pub ramp_up_sec: f64,
    /// Handshakes in flight at once (0: unlimited).
    #[arg(long, default_value_t = 1000)]
    pub max_handshakes: usize,
    /// Run this long (0: until Ctrl-C).
    #[arg(long, default_value_t = 0.0)]
    pub duration_sec: f64,
    /// Source addresses, round-robin (each reaches one server port through ~28k ports).
    #[arg(long, value_delimiter = ',', conflicts_with = "source_addr_count")]
    pub source_addrs: Vec<IpAddr>,
    /// Use 127.0.0.1 … 127.0.0.K as source addresses.
    #[arg(long)]
    pub source_addr_count: Option<u8>,
    /// Bearer token for every orchestrator.
    #[arg(long, env = "MOOLAI_SIM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seconds between progress reports (on stderr).
    #[arg(long, default_value_t = 5.0)]
    pub report_every_sec: f64,
    /// Print the final report as JSON (progress reports become JSON lines on stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DialectArg {
    Hld,
    Deployed,
    Mixed,
}

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    if !(0.0..=86_400.0 * 365.0).contains(&value) {
        bail!("--{name} must be between 0 and a year of seconds, got {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

fn options(args: SimulateArgs) -> anyhow::Result<SimOptions> {
    let heartbeat = match (args.heartbeat_interval_sec, args.rate) {
        (Some(s), _) => {
            let interval = seconds("heartbeat-interval-sec", s)?;
            if interval < Duration::from_millis(10) {
                bail!("--heartbeat-interval-sec must be at least 0.01");
            }
            HeartbeatPlan::Interval(interval)
        }
        (None, Some(rate)) => {
            if !(rate.is_finite() && rate > 0.0) {
                bail!("--rate must be a positive number of heartbeats per second");
            }
            HeartbeatPlan::Rate(rate)
        }
        (None, None) => HeartbeatPlan::ControllerDefault,
    };
    let source_addrs = match args.source_addr_count {
        Some(0) => bail!("--source-addr-count must be at least 1"),
        Some(k) => (1..=k)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
            .collect(),
        None => args.source_addrs,
    };
    let duration = seconds("duration-sec", args.duration_sec)?;
    let report_interval = seconds("report-every-sec", args.report_every_sec)?;
    Ok(SimOptions {
        url: args.url,
        count: args.count,
        dialect: match args.dialect {
            DialectArg::Hld => SimDialect::Hld,
            DialectArg::Deployed => SimDialect::Deployed,
            DialectArg::Mixed => SimDialect::Mixed,
        },
        id_prefix: args.id_prefix,
        organization_id: args.organization_id,
        heartbeat,
        ramp_up: seconds("ramp-up-sec", args.ramp_up_sec)?,
        max_concurrent_handshakes: args.max_handshakes,
        duration: (!duration.is_zero()).then_some(duration),
        source_addrs,
        token: args.token,
        report_interval: report_interval.max(Duration::from_millis(100)),
        ..SimOptions::default()
    })
}

/// Warns when the open-file limit cannot hold the fleet (one descriptor per socket).
fn check_open_files(count: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(soft) = soft
        && soft < count + 64
    {
        eprintln!(
            "warning: the open-file limit is {soft}, too low for {count} sockets; raise it (ulimit -n {})",
            count + 1024
        );
    }
}

fn print_progress(report: &SimReport, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(report) {
            eprintln!("{line}");
        }
    } else {
        eprintln!("{report}");
    }
}

/// Runs a simulation from parsed arguments until its duration or Ctrl-C, printing progress on
/// stderr and the final report on stdout.
///
/// # Errors
/// Invalid arguments, or the report cannot be encoded.
pub async fn run(args: SimulateArgs) -> anyhow::Result<SimReport> {
    let json = args.json;
    let mut opts = options(args)?;
    check_open_files(opts.count);

    let cancel = CancellationToken::new();
    opts.cancel = cancel.clone();
    opts.on_report = Some(Arc::new(move |r: &SimReport| print_progress(r, json)));
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping: closing every connection");
            cancel.cancel();
        }
    });

    let report = simulate(opts).await;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("encoding the report")?
        );
    } else {
        println!("{report}");
    }
    Ok(report)
}
