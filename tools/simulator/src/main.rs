//! `moolai-simulator`: a fleet of orchestrators against a controller, from the command line.

use clap::Parser;
use moolai_simulator::cli::{SimulateArgs, run};

#[derive(Debug, Parser)]
#[command(name = "moolai-simulator", version)]
struct Args {
    #[command(flatten)]
    simulate: SimulateArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    run(Args::parse().simulate).await.map(drop)
}
