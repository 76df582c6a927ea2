use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use moolai::{Services, SingleSettings};

/// The Moolai Controller in one process: the dashboard, the REST API and the orchestrator
/// WebSocket (/ws and /) on one port, on embedded defaults.
///
/// With no NATS_URL an in-process bus is used; with no DATABASE_URL (or a sqlite: one) an
/// embedded SQLite file under MOOLAI_DATA_DIR (default ./data). Other variables:
/// CONTROLLER_HOST (0.0.0.0), CONTROLLER_PORT (8765), MOOLAI_DASHBOARD_DIR (frontend/dist),
/// MOOLAI_ADMIN_USERNAME (admin), MOOLAI_ADMIN_PASSWORD (on a first start without it and
/// without users, a superadmin is created with a generated password printed once),
/// ORCHESTRATOR_AUTH (token), HEARTBEAT_TTL_SEC, NATS_SUBJECT_PREFIX, API_METRICS_PORT,
/// RUST_LOG, LOG_FORMAT, and every WS_* / HEARTBEAT_* / LOGIN_* variable of the services (see
/// the README's configuration table).
#[derive(Parser)]
#[command(name = "moolai", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run everything until SIGINT/SIGTERM (the default).
    Serve,
    /// Apply the database migrations, then exit (serve also does this at start).
    Migrate,
    /// Exit 0 when the controller at --url answers its health check (for container probes).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8765/health")]
        url: String,
    },
    /// Connect N simulated orchestrators to a controller (this one by default) so the
    /// dashboard shows a live fleet: `moolai simulate --count 50`.
    Simulate(moolai_simulator::cli::SimulateArgs),
    /// Operator accounts and API tokens, in the store this binary uses.
    Admin {
        #[command(subcommand)]
        command: moolai_api::admin::AdminCommand,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _telemetry = match moolai_telemetry::init("moolai") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("moolai: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::Serve => serve().await,
        Cmd::Migrate => migrate().await,
        Cmd::Healthcheck { url } => healthcheck(&url).await,
        Cmd::Simulate(args) => moolai_simulator::cli::run(args).await.map(drop),
        Cmd::Admin { command } => admin(command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moolai: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = SingleSettings::from_env()?;
    let mut services = Services::from_env()?;
    let store = moolai::open_store(
        &settings.store_choice()?,
        services.liveness.ttl(),
        settings.database_max_connections,
    )
    .await?;
    let first_login = moolai::first_login(&mut services.api, store.as_ref()).await?;
    let bus = moolai::connect_bus(&settings).await?;
    let shutdown = moolai_config::shutdown_token();
    let addr = format!("{}:{}", settings.controller_host, settings.controller_port);
    // Orchestrators reconnect here too: a deep accept queue for their storms (see ws-edge).
    let listener = moolai_telemetry::http::bind(&addr, moolai_telemetry::http::DEFAULT_BACKLOG)
        .await
        .with_context(|| format!("cannot listen on {addr} (CONTROLLER_HOST / CONTROLLER_PORT)"))?;
    let shown = if settings.controller_host == "0.0.0.0" {
        format!("127.0.0.1:{}", settings.controller_port)
    } else {
        addr.clone()
    };
    // The generated password goes to stdout only, this once: never to the log.
    let login = match &first_login {
        moolai::FirstLogin::Generated { username, password } => format!(
            "{username} / {password}   (superadmin created on this first start; shown once: \
             change it after logging in)"
        ),
        moolai::FirstLogin::Configured { username } => {
            format!("{username} / the password in MOOLAI_ADMIN_PASSWORD")
        }
        moolai::FirstLogin::Existing => {
            "the existing operator accounts (`moolai admin create-user` adds one)".to_owned()
        }
    };
    println!(
        "\nMoolai Controller\n  dashboard      http://{shown}/\n  API            http://{shown}/api/v1/  (OpenAPI: /api/v1/openapi.json)\n  orchestrators  ws://{shown}/ws\n  login          {login}\n  bus            {}\n  store          {}\n",
        bus.kind(),
        match settings.store_choice()? {
            moolai::StoreChoice::Sqlite(p) => format!("SQLite {}", p.display()),
            moolai::StoreChoice::Postgres(u) => moolai_config::mask_password(&u),
        }
    );
    if settings.dashboard_dir().is_none() {
        println!(
            "  (dashboard not built: npm --prefix frontend ci && npm --prefix frontend run build)\n"
        );
    }
    let metrics_addr = format!(
        "{}:{}",
        settings.controller_host, services.api.api_metrics_port
    );
    match tokio::net::TcpListener::bind(&metrics_addr).await {
        Ok(l) => {
            tokio::spawn(moolai_telemetry::serve_metrics(l, shutdown.clone()));
        }
        Err(e) => {
            tracing::warn!(addr = %metrics_addr, error = %e, "metrics listener not started (API_METRICS_PORT)")
        }
    }
    moolai::serve_with_listener(&settings, services, store, bus, listener, shutdown).await
}

async fn admin(command: moolai_api::admin::AdminCommand) -> anyhow::Result<()> {
    let settings = SingleSettings::from_env()?;
    let store = moolai::open_store(
        &settings.store_choice()?,
        std::time::Duration::from_secs(120),
        1,
    )
    .await?;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout();
    moolai_api::admin::run(command, store.as_ref(), &mut input, &mut out).await
}

async fn migrate() -> anyhow::Result<()> {
    let settings = SingleSettings::from_env()?;
    let choice = settings.store_choice()?;
    moolai::open_store(&choice, std::time::Duration::from_secs(120), 1).await?;
    println!("migrations applied");
    Ok(())
}

async fn healthcheck(url: &str) -> anyhow::Result<()> {
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?
        .get(url)
        .send()
        .await
        .with_context(|| format!("{url} did not answer"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{url} answered {status}: {body}");
    Ok(())
}
