use anyhow::Context;
use clap::Parser;
use moolai_bus::{Bus, Subjects};
use moolai_config::NatsSettings;
use moolai_ws_edge::EdgeSettings;

/// Terminates orchestrator WebSockets (at /ws and /) and relays them over NATS. Holds no
/// database connection.
///
/// Environment: CONTROLLER_HOST, WS_EDGE_PORT, WS_EDGE_METRICS_PORT, EDGE_ID, NATS_URL,
/// NATS_SUBJECT_PREFIX, WS_MAX_FRAME_BYTES, WS_HELLO_TIMEOUT_SEC, WS_IDLE_TIMEOUT_SEC,
/// WS_RATE_LIMIT_PER_SEC, WS_RATE_LIMIT_BURST, WS_MAX_INVALID_FRAMES, WS_OUTBOUND_QUEUE,
/// WS_MAX_CONNECTIONS, WS_MAX_HANDSHAKES_PER_SEC, CONTROLLER_HEARTBEAT_SEC, HEARTBEAT_INTERVAL_SEC,
/// HELLO_COMMIT_TIMEOUT_SEC, SHUTDOWN_GRACE_SEC, ORCHESTRATOR_AUTH, RUST_LOG, LOG_FORMAT,
/// OTEL_EXPORTER_OTLP_ENDPOINT. See the README's configuration table.
#[derive(Parser)]
#[command(name = "moolai-ws-edge", version)]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Cli::parse();
    let _telemetry = moolai_telemetry::init("moolai-ws-edge")?;
    let settings: EdgeSettings = moolai_config::load()?;
    settings.validate()?;
    let nats: NatsSettings = moolai_config::load()?;
    let subjects = Subjects::new(&nats.nats_subject_prefix).context("NATS_SUBJECT_PREFIX")?;
    let bus = Bus::connect(&nats.nats_url, subjects, "moolai-ws-edge").await?;

    let shutdown = moolai_config::shutdown_token();
    let metrics_addr = format!(
        "{}:{}",
        settings.controller_host, settings.ws_edge_metrics_port
    );
    let metrics_listener = tokio::net::TcpListener::bind(&metrics_addr)
        .await
        .with_context(|| format!("cannot bind WS_EDGE_METRICS_PORT at {metrics_addr}"))?;
    tokio::spawn(moolai_telemetry::serve_metrics(
        metrics_listener,
        shutdown.clone(),
    ));
    let addr = format!("{}:{}", settings.controller_host, settings.ws_edge_port);
    // A deep accept queue: a reconnect storm's SYNs wait for the accept loop instead of
    // being dropped and retried seconds later by the clients' kernels.
    let listener = moolai_telemetry::http::bind(&addr, moolai_telemetry::http::DEFAULT_BACKLOG)
        .await
        .with_context(|| format!("cannot bind WS_EDGE_PORT at {addr}"))?;
    moolai_ws_edge::launch_with_listener(settings, bus, listener, shutdown).await
}
