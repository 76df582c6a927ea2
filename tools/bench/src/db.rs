//! A throwaway database per benchmark run on the machine's PostgreSQL, and the server-side
//! numbers the benchmarks read (backends of that database, commits).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

const PREFIX: &str = "moolai_bench_";
/// Bench databases older than this were left by a killed run.
const ABANDONED_AFTER: Duration = Duration::from_secs(6 * 60 * 60);

/// `moolai_bench_<unix seconds>_<random>`: the creation time is in the name.
pub struct Database {
    pub name: String,
    pub admin_url: String,
    pub url: String,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn with_database(admin_url: &str, name: &str) -> String {
    // The admin URL ends in `/<database>` (optionally with `?params`).
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Database {
    /// Creates an empty database, dropping bench databases abandoned by earlier runs.
    ///
    /// # Errors
    /// When PostgreSQL cannot be reached.
    pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let mut admin = PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE datname LIKE 'moolai\\_bench\\_%'",
        )
        .fetch_all(&mut admin)
        .await?;
        for old in names {
            let created = old
                .strip_prefix(PREFIX)
                .and_then(|r| r.split('_').next())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            if now_secs().saturating_sub(created) > ABANDONED_AFTER.as_secs() {
                let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{old}\" WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await;
            }
        }
        let name = format!(
            "{PREFIX}{}_{}",
            now_secs(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        // The name is ours (prefix, digits, hex), never input.
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {name}"))?;
        Ok(Self {
            url: with_database(admin_url, &name),
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    /// # Errors
    /// When the database cannot be reached.
    pub async fn pool(&self, size: u32) -> anyhow::Result<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&self.url)
            .await?)
    }

    /// Drops the database (terminating its connections).
    pub async fn drop_database(&self) {
        match PgConnection::connect(&self.admin_url).await {
            Ok(mut admin) => {
                if let Err(e) = sqlx::raw_sql(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                )))
                .execute(&mut admin)
                .await
                {
                    eprintln!("warning: could not drop database {}: {e}", self.name);
                }
            }
            Err(e) => eprintln!("warning: could not drop database {}: {e}", self.name),
        }
    }
}

/// Pids of the backends connected to `db` (our services and our own pool).
///
/// # Errors
/// When the query fails.
pub async fn backend_pids(admin: &PgPool, db: &str) -> anyhow::Result<Vec<u32>> {
    let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
        .bind(db)
        .fetch_all(admin)
        .await?;
    Ok(pids
        .into_iter()
        .filter_map(|p| u32::try_from(p).ok())
        .collect())
}

/// Keeps `list` filled with the backend pids of `db`, every second, until `stop` fires.
pub fn track_backends(
    admin: PgPool,
    db: String,
    list: std::sync::Arc<std::sync::Mutex<Vec<u32>>>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = stop.cancelled() => return,
            }
            if let Ok(pids) = backend_pids(&admin, &db).await {
                *list
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = pids;
            }
        }
    });
}

/// Server versions for the report.
///
/// # Errors
/// When the query fails.
pub async fn server_version(admin: &PgPool) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar("SELECT version()")
        .fetch_one(admin)
        .await?)
}
