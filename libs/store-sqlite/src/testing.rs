//! A fresh database file per test, for this crate's tests and the services' (not behind
//! `cfg(test)` so other crates can use it from their own tests).
//!
//! ```no_run
//! # async fn example() {
//! use moolai_store_sqlite::testing::TestSqlite;
//! let db = TestSqlite::create();
//! let store = db.store(std::time::Duration::from_secs(60)).await;
//! // ... exercise `store`, or hand `db.path()` / `db.url()` to a service under test ...
//! # }
//! ```
//!
//! Each database lives in its own directory `moolai-test-<UUIDv7>` under the system's
//! temporary directory, removed when the [`TestSqlite`] is dropped (also when the test
//! panics). Directories left behind by a killed test run are removed by the next
//! [`TestSqlite::create`] once they are two hours old: the UUIDv7 in the name carries the
//! creation time.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moolai_store::StoreError;

use crate::{DEFAULT_FILE_NAME, SqliteStore};

const NAME_PREFIX: &str = "moolai-test-";
/// Test directories older than this are assumed abandoned.
const ABANDONED_AFTER: Duration = Duration::from_secs(2 * 60 * 60);

/// One throwaway database file, in a directory of its own.
#[derive(Debug)]
pub struct TestSqlite {
    dir: PathBuf,
    path: PathBuf,
}

impl TestSqlite {
    /// Picks a new directory (created, with the file, by the first [`Self::store`]). Panics
    /// when the temporary directory is unusable: this is test set-up.
    #[must_use]
    pub fn create() -> Self {
        let temp = std::env::temp_dir();
        remove_abandoned(&temp);
        let dir = temp.join(format!("{NAME_PREFIX}{}", uuid::Uuid::now_v7().simple()));
        let path = dir.join(DEFAULT_FILE_NAME);
        Self { dir, path }
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding it (what `MOOLAI_DATA_DIR` would be).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A `sqlite:` URL of the file, for `DATABASE_URL`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    /// A migrated store on this file with the given heartbeat TTL. Several stores (with
    /// different TTLs) may share one file, as separate processes would. Panics on failure:
    /// this is test set-up.
    pub async fn store(&self, heartbeat_ttl: Duration) -> SqliteStore {
        match self.try_store(heartbeat_ttl).await {
            Ok(store) => store,
            Err(e) => panic!("cannot open test database {}: {e}", self.path.display()),
        }
    }

    /// [`Self::store`] without the panic.
    pub async fn try_store(&self, heartbeat_ttl: Duration) -> Result<SqliteStore, StoreError> {
        let store = SqliteStore::open(&self.path, heartbeat_ttl).await?;
        store.migrate().await?;
        Ok(store)
    }
}

impl Drop for TestSqlite {
    fn drop(&mut self) {
        // Best effort; on Unix, files still open in a pool are removed all the same.
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove test database");
        }
    }
}

/// When the directory was created, read back from the UUIDv7 in its name.
fn created_at(name: &str) -> Option<SystemTime> {
    let id = uuid::Uuid::parse_str(name.strip_prefix(NAME_PREFIX)?).ok()?;
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Best effort: removes test directories abandoned by earlier runs.
fn remove_abandoned(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let abandoned = created_at(name)
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > ABANDONED_AFTER);
        if abandoned && let Err(e) = std::fs::remove_dir_all(entry.path()) {
            tracing::debug!(dir = %name, error = %e, "cannot remove abandoned test database");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_creation_time_from_the_name() {
        let db = TestSqlite::create();
        let name = db
            .dir()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a name")
            .to_owned();
        let age = SystemTime::now()
            .duration_since(created_at(&name).expect("a v7 name has a time"))
            .unwrap_or_default();
        assert!(age < Duration::from_secs(60), "age {age:?}");
        assert_eq!(created_at("moolai-test-nonsense"), None);
        assert_eq!(created_at("other"), None);
        assert!(db.url().starts_with("sqlite://"));
        assert!(db.path().starts_with(db.dir()));
    }
}
