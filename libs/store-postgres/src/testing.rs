//! A fresh, migrated database per test, for this crate's tests and the services' (not behind
//! `cfg(test)` so other crates can use it from their own tests).
//!
//! ```no_run
//! # async fn example() {
//! use moolai_store_postgres::testing::TestDatabase;
//! let db = TestDatabase::create().await;
//! let store = db.store(std::time::Duration::from_secs(60)).await;
//! // ... exercise `store`, or hand `db.url()` to a service under test ...
//! drop(store);
//! db.drop_database().await;
//! # }
//! ```
//!
//! The server comes from `MOOLAI_TEST_DATABASE_URL` (an administrative URL; default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Each database is named
//! `moolai_test_<UUIDv7>`; dropping a [`TestDatabase`] does nothing (a destructor cannot wait
//! for the server), so tests call [`TestDatabase::drop_database`] at the end. Databases left
//! behind by a failed or killed test are dropped by the next [`TestDatabase::create`] once
//! they are two hours old: the UUIDv7 in the name carries the creation time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moolai_store::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::PgStore;
use crate::error::{db_error, mask_database_url};

/// Environment variable naming the administrative URL of the test server.
pub const ADMIN_URL_ENV: &str = "MOOLAI_TEST_DATABASE_URL";
/// Used when [`ADMIN_URL_ENV`] is not set: the local server with trust authentication.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

const NAME_PREFIX: &str = "moolai_test_";
/// Test databases older than this are assumed abandoned.
const ABANDONED_AFTER: Duration = Duration::from_secs(2 * 60 * 60);

/// One throwaway database on the test server.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates an empty database (not yet migrated: [`Self::store`] migrates it). Panics with
    /// a hint when the server cannot be reached: this is test set-up.
    pub async fn create() -> Self {
        match Self::try_create().await {
            Ok(db) => db,
            Err(e) => panic!(
                "cannot create a test database: {e} (is PostgreSQL running? set {ADMIN_URL_ENV})"
            ),
        }
    }

    /// [`Self::create`] without the panic.
    pub async fn try_create() -> Result<Self, StoreError> {
        let admin_url =
            std::env::var(ADMIN_URL_ENV).unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let mut admin = admin_connection(&admin_url).await?;

        drop_abandoned(&mut admin).await;

        let name = format!("{NAME_PREFIX}{}", uuid::Uuid::now_v7().simple());
        let create = format!("CREATE DATABASE \"{name}\"");
        let mut attempt = 0;
        loop {
            // The name is ours (prefix + hex), never caller input, so formatting it is safe.
            match sqlx::raw_sql(AssertSqlSafe(create.clone()))
                .execute(&mut admin)
                .await
            {
                Ok(_) => break,
                // 55006: template1 briefly in use by another session creating a database.
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("55006") && attempt < 20 =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(db_error(e)),
            }
        }
        let _ = admin.close().await;

        let url = with_database(&admin_url, &name);
        Ok(Self {
            admin_url,
            name,
            url,
        })
    }

    /// URL of this database (same server and credentials as the administrative URL).
    #[must_use]
    pub fn url(&self) -> String {
        self.url.clone()
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A migrated store on this database with the given heartbeat TTL. Several stores (with
    /// different TTLs) may share one database. Panics on failure: this is test set-up.
    pub async fn store(&self, heartbeat_ttl: Duration) -> PgStore {
        match self.try_store(heartbeat_ttl).await {
            Ok(store) => store,
            Err(e) => panic!("cannot open test database {}: {e}", self.name),
        }
    }

    /// [`Self::store`] without the panic.
    pub async fn try_store(&self, heartbeat_ttl: Duration) -> Result<PgStore, StoreError> {
        let options: PgConnectOptions = self.url.parse().map_err(db_error)?;
        // A long acquire timeout: tests run many concurrent operations on two cores.
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options)
            .await
            .map_err(db_error)?;
        let store = PgStore::from_pool(pool, heartbeat_ttl);
        store.migrate().await?;
        Ok(store)
    }

    /// Terminates the database's connections and drops it. Errors are logged, not returned:
    /// a leftover database is removed later (see the module docs).
    pub async fn drop_database(self) {
        match admin_connection(&self.admin_url).await {
            Ok(mut admin) => {
                if let Err(e) = drop_named(&mut admin, &self.name).await {
                    tracing::warn!(database = %self.name, error = %e, "cannot drop test database");
                }
                let _ = admin.close().await;
            }
            Err(e) => {
                tracing::warn!(database = %self.name, error = %e, "cannot drop test database");
            }
        }
    }
}

async fn admin_connection(admin_url: &str) -> Result<PgConnection, StoreError> {
    PgConnection::connect(admin_url).await.map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot connect to {}: {e}",
            mask_database_url(admin_url)
        ))
    })
}

async fn drop_named(admin: &mut PgConnection, name: &str) -> Result<(), StoreError> {
    if !is_test_database_name(name) {
        return Err(StoreError::Invalid(format!(
            "refusing to drop {name:?}: not a test database"
        )));
    }
    // Checked above: the prefix plus letters, digits and underscores only.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(admin)
    .await
    .map_err(db_error)?;
    Ok(())
}

fn is_test_database_name(name: &str) -> bool {
    name.strip_prefix(NAME_PREFIX).is_some_and(|rest| {
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// When the database was created, read back from the UUIDv7 in its name.
fn created_at(name: &str) -> Option<SystemTime> {
    let id = uuid::Uuid::parse_str(name.strip_prefix(NAME_PREFIX)?).ok()?;
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Best effort: drops test databases abandoned by earlier runs.
async fn drop_abandoned(admin: &mut PgConnection) {
    let names: Vec<String> = match sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'moolai\\_test\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    {
        Ok(names) => names,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list test databases");
            return;
        }
    };
    let now = SystemTime::now();
    for name in names {
        let abandoned = created_at(&name)
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > ABANDONED_AFTER);
        if abandoned && let Err(e) = drop_named(admin, &name).await {
            tracing::debug!(database = %name, error = %e, "cannot drop abandoned test database");
        }
    }
}

/// The URL with its database replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_in_a_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "t3"),
            "postgres://h:5432/t3"
        );
    }

    #[test]
    fn reads_the_creation_time_from_the_name() {
        let name = format!("{NAME_PREFIX}{}", uuid::Uuid::now_v7().simple());
        assert!(is_test_database_name(&name));
        let age = SystemTime::now()
            .duration_since(created_at(&name).expect("a v7 name has a time"))
            .unwrap_or_default();
        assert!(age < Duration::from_secs(60), "age {age:?}");
        assert!(!is_test_database_name("postgres"));
        assert!(!is_test_database_name("moolai_test_x\"; DROP"));
    }
}
