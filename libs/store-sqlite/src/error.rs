//! How sqlx errors become [`StoreError`]s.

use moolai_store::StoreError;

// SQLite's primary result codes (the low byte of an extended code).
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_NOMEM: i64 = 7;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_PROTOCOL: i64 = 15;
const SQLITE_TOOBIG: i64 = 18;
const SQLITE_CONSTRAINT: i64 = 19;
const SQLITE_MISMATCH: i64 = 20;

/// Maps a sqlx error to the store's error classes (which the API turns into status codes),
/// with the same meaning as the PostgreSQL backend's mapping.
pub(crate) fn db_error(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => StoreError::Unavailable(err.to_string()),
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => StoreError::Conflict(message),
                sqlx::error::ErrorKind::ForeignKeyViolation
                | sqlx::error::ErrorKind::CheckViolation
                | sqlx::error::ErrorKind::NotNullViolation => StoreError::Invalid(message),
                _ => {
                    let code = db.code().and_then(|c| c.parse::<i64>().ok());
                    match code.map(|c| c & 0xff) {
                        // A value too big, of the wrong type (STRICT tables), or another
                        // constraint: the caller sent something the API let by.
                        Some(SQLITE_TOOBIG | SQLITE_MISMATCH | SQLITE_CONSTRAINT) => {
                            StoreError::Invalid(message)
                        }
                        // Locked past the busy timeout, out of memory or disk, read-only
                        // or unopenable file, I/O failure: the database is there but cannot
                        // serve us.
                        Some(
                            SQLITE_BUSY | SQLITE_LOCKED | SQLITE_NOMEM | SQLITE_READONLY
                            | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN | SQLITE_PROTOCOL,
                        ) => StoreError::Unavailable(message),
                        _ => StoreError::Other(format!(
                            "{message} (SQLite code {})",
                            code.map_or_else(|| "?".to_owned(), |c| c.to_string())
                        )),
                    }
                }
            }
        }
        other => StoreError::Other(other.to_string()),
    }
}
