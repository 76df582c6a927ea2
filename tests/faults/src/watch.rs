//! Invariant checks: orchestrators shown inactive while they were connected or reconnecting
//! within the TTL ("false inactive"), acknowledged hellos missing from the database, and
//! `last_seen` moving after an independence toggle.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use moolai_bus::events::{Status, StatusEvent};
use moolai_bus::{Bus, Kind, Subjects};

/// (orchestrator, stored status, last_seen).
type ShownRow = (String, String, Option<DateTime<Utc>>);

/// (state, wait event type, wait event, transaction age in seconds, query).
type ActivityRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<f64>,
    String,
);

/// Watches for orchestrators of the fleet shown as inactive, two ways at once:
/// - every status event on the public NATS subject (state publishes each transition);
/// - the database every 100 ms, as the api derives the status (the `status` column written
///   by the sweep, or `last_seen` older than the TTL) — this also covers an outage of NATS,
///   when events cannot be published.
pub struct InactiveWatch {
    seen: Arc<Mutex<BTreeMap<String, String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub db_errors: Arc<Mutex<u32>>,
}

impl InactiveWatch {
    /// Starts watching `ids` (orchestrators that must never be shown inactive from now on).
    ///
    /// # Errors
    /// When NATS or the database cannot be reached at the start.
    pub async fn start(
        nats_url: &str,
        prefix: &str,
        database_url: &str,
        ids: Vec<String>,
        ttl: Duration,
    ) -> anyhow::Result<Self> {
        let seen: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        let db_errors = Arc::new(Mutex::new(0));
        let watched: Arc<BTreeSet<String>> = Arc::new(ids.iter().cloned().collect());

        let bus = Bus::connect(nats_url, Subjects::new(prefix)?, "faults-watch").await?;
        let mut events = bus.subscribe(bus.subjects().all(Kind::Status)).await?;
        bus.flush().await?;
        let (s, w) = (seen.clone(), watched.clone());
        let nats_task = tokio::spawn(async move {
            let _bus = bus;
            while let Some(d) = events.next().await {
                let Ok(e) = d.json::<StatusEvent>() else {
                    continue;
                };
                if e.status == Status::Inactive && w.contains(&e.orchestrator_id) {
                    s.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry(e.orchestrator_id.clone())
                        .or_insert(format!("status event at {} ({})", e.at, e.reason));
                }
            }
        });

        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(1))
            .connect(database_url)
            .await?;
        let (s, errors) = (seen.clone(), db_errors.clone());
        let ttl_sec = i64::try_from(ttl.as_secs())?;
        let db_task = tokio::spawn(async move {
            loop {
                let rows: Result<Vec<ShownRow>, _> = sqlx::query_as(
                    "SELECT orchestrator_id, status, last_seen FROM orchestrator_instances \
                     WHERE orchestrator_id = ANY($1) AND NOT is_independent \
                       AND (status = 'inactive' OR last_seen IS NULL \
                            OR last_seen < now() - make_interval(secs => $2))",
                )
                .bind(&ids)
                .bind(ttl_sec as f64)
                .fetch_all(&pool)
                .await;
                match rows {
                    Ok(rows) => {
                        let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
                        for (id, status, last_seen) in rows {
                            s.entry(id).or_insert(format!(
                                "database at {}: status {status}, last_seen {last_seen:?}",
                                Utc::now()
                            ));
                        }
                    }
                    Err(_) => *errors.lock().unwrap_or_else(PoisonError::into_inner) += 1,
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok(Self {
            seen,
            tasks: vec![nats_task, db_task],
            db_errors,
        })
    }

    /// Orchestrators shown inactive so far, with the first evidence for each.
    #[must_use]
    pub fn false_inactive(&self) -> BTreeMap<String, String> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn stop(self) -> BTreeMap<String, String> {
        for t in &self.tasks {
            t.abort();
        }
        self.false_inactive()
    }
}

/// Acknowledged hellos (orchestrator, session) that are not in the database.
///
/// # Errors
/// When the database cannot be read.
pub async fn missing_acked_hellos(
    pool: &sqlx::PgPool,
    acked: &[(String, String)],
) -> anyhow::Result<Vec<(String, String)>> {
    let sessions: Vec<String> = acked.iter().map(|(_, s)| s.clone()).collect();
    let stored: Vec<(String, String)> = sqlx::query_as(
        "SELECT connection_id, orchestrator_id FROM orchestrator_connections \
         WHERE connection_id = ANY($1)",
    )
    .bind(&sessions)
    .fetch_all(pool)
    .await?;
    let stored: HashMap<String, String> = stored.into_iter().collect();
    Ok(acked
        .iter()
        .filter(|(id, session)| stored.get(session) != Some(id))
        .cloned()
        .collect())
}

/// `last_seen` of each orchestrator.
///
/// # Errors
/// When the database cannot be read.
pub async fn last_seen(
    pool: &sqlx::PgPool,
    ids: &[String],
) -> anyhow::Result<HashMap<String, Option<DateTime<Utc>>>> {
    let rows: Vec<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT orchestrator_id, last_seen FROM orchestrator_instances \
         WHERE orchestrator_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Orchestrators among `ids` whose `last_seen` is not after `after` (heartbeats not landing).
///
/// # Errors
/// When the database cannot be read.
pub async fn stale(
    pool: &sqlx::PgPool,
    ids: &[String],
    after: DateTime<Utc>,
) -> anyhow::Result<Vec<String>> {
    let seen = last_seen(pool, ids).await?;
    Ok(ids
        .iter()
        .filter(|id| seen.get(*id).copied().flatten().is_none_or(|t| t <= after))
        .cloned()
        .collect())
}

/// The database's clock (the one `last_seen` is written with).
///
/// # Errors
/// When the database cannot be read.
pub async fn db_now(pool: &sqlx::PgPool) -> anyhow::Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar("SELECT now()").fetch_one(pool).await?)
}

/// What every session of the database is doing (for failure messages: lock waits, stuck
/// transactions).
pub async fn activity(pool: &sqlx::PgPool) -> String {
    let rows: Result<Vec<ActivityRow>, _> = sqlx::query_as(
        "SELECT state, wait_event_type, wait_event, \
                    extract(epoch FROM now() - xact_start)::float8, \
                    'pid ' || pid || ' blocked by ' || pg_blocking_pids(pid)::text || ': ' \
                        || left(query, 100) \
             FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(pool)
    .await;
    match rows {
        Ok(rows) => rows
            .iter()
            .map(|(state, wait_type, wait, age, query)| {
                format!(
                    "{} wait={}/{} xact_age={:.1}s {query}",
                    state.as_deref().unwrap_or("-"),
                    wait_type.as_deref().unwrap_or("-"),
                    wait.as_deref().unwrap_or("-"),
                    age.unwrap_or(0.0)
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("pg_stat_activity not readable: {e}"),
    }
}
