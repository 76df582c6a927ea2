use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use moolai_bus::{Bus, Subjects};
use moolai_config::{DatabaseSettings, LivenessSettings, NatsSettings};
use moolai_state::StateSettings;
use moolai_store_postgres::PgStore;

/// Consumes orchestrator frames from NATS and owns their writes to PostgreSQL.
///
/// Environment: DATABASE_URL (or DATABASE_HOST/PORT/USER/PASSWORD/NAME), DATABASE_MAX_CONNECTIONS,
/// NATS_URL, NATS_SUBJECT_PREFIX, HEARTBEAT_TTL_SEC, HEARTBEAT_INTERVAL_SEC,
/// HEARTBEAT_FLUSH_INTERVAL_MS, HEARTBEAT_BATCH_MAX, HEARTBEAT_PENDING_MAX, SWEEP_INTERVAL_SEC,
/// DEFAULT_ORGANIZATION_ID, STATE_REQUEST_CONCURRENCY, HELLO_BATCH_MAX, HELLO_BATCH_CONCURRENCY,
/// ORCHESTRATOR_AUTH (token | open), CONTROLLER_HOST, STATE_METRICS_PORT, RUST_LOG, LOG_FORMAT,
/// OTEL_EXPORTER_OTLP_ENDPOINT. See the README's configuration table.
#[derive(Parser)]
#[command(name = "moolai-state", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Consume the bus until SIGINT/SIGTERM (the default).
    Serve,
    /// Apply the database migrations, then exit. Run once per deploy, before the services.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = moolai_telemetry::init("moolai-state")?;
    let db: DatabaseSettings = moolai_config::load()?;
    db.validate()?;
    if matches!(cli.command, Some(Cmd::Migrate)) {
        return migrate(&db).await;
    }
    let settings: StateSettings = moolai_config::load()?;
    settings.validate()?;
    let liveness: LivenessSettings = moolai_config::load()?;
    liveness.validate()?;
    let nats: NatsSettings = moolai_config::load()?;

    let store = PgStore::connect(&db.url(), liveness.ttl(), db.database_max_connections).await?;
    store.check_migrations().await?;
    let subjects = Subjects::new(&nats.nats_subject_prefix).context("NATS_SUBJECT_PREFIX")?;
    let bus = Bus::connect(&nats.nats_url, subjects, "moolai-state").await?;

    let shutdown = moolai_config::shutdown_token();
    let metrics_addr = format!(
        "{}:{}",
        settings.controller_host, settings.state_metrics_port
    );
    let listener = tokio::net::TcpListener::bind(&metrics_addr)
        .await
        .with_context(|| format!("cannot bind STATE_METRICS_PORT at {metrics_addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    tokio::spawn(moolai_telemetry::serve_metrics(listener, shutdown.clone()));

    moolai_state::launch(settings, liveness, Arc::new(store), bus, shutdown).await
}

async fn migrate(db: &DatabaseSettings) -> anyhow::Result<()> {
    let store = PgStore::connect(&db.url(), std::time::Duration::from_secs(120), 1).await?;
    store.migrate().await?;
    tracing::info!(database = %db.display_url(), "migrations applied");
    Ok(())
}
