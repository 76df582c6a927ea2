//! `moolai-api`: see the library documentation.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A listing page is hundreds of small allocations (decoded rows, then their JSON); mimalloc
/// serves them with less CPU than the system allocator (BENCHMARKS.md, api).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "Moolai Controller: the operators' REST API", after_help = moolai_api::ENVIRONMENT_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API until SIGINT/SIGTERM (the default).
    Serve,
    /// Apply the database migrations, then exit.
    Migrate,
    /// Print the OpenAPI document (for client generation), then exit.
    Openapi,
    /// Operator accounts and API tokens, against the database (DATABASE_URL).
    Admin {
        #[command(subcommand)]
        command: moolai_api::admin::AdminCommand,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => moolai_api::serve_from_env().await,
        Command::Migrate => moolai_api::migrate_from_env().await,
        Command::Openapi => moolai_api::print_openapi(),
        Command::Admin { command } => moolai_api::admin_from_env(command).await,
    };
    if let Err(e) = result {
        eprintln!("moolai-api: {}", moolai_api::startup::error_report(&e));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
