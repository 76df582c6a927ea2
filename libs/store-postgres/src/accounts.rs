//! Operator users and their login sessions (only token hashes are stored).

use chrono::{DateTime, Utc};
use moolai_store::{NewSession, SessionRecord, StoreError};

use crate::PgStore;
use crate::error::db_error;

impl PgStore {
    pub(crate) async fn upsert_user(&self, username: &str, role: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (username, role) VALUES ($1, $2) \
             ON CONFLICT (username) DO UPDATE SET role = EXCLUDED.role, updated_at = now() \
             WHERE users.role IS DISTINCT FROM EXCLUDED.role",
        )
        .bind(username)
        .bind(role)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    pub(crate) async fn insert_session(&self, session: &NewSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO login_sessions (token_hash, username, role, expires_at, client_addr) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.token_hash)
        .bind(&session.username)
        .bind(&session.role)
        .bind(session.expires_at)
        .bind(session.client_addr.as_deref())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    pub(crate) async fn session(
        &self,
        token_hash: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row: Option<(String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT username, role, expires_at FROM login_sessions \
             WHERE token_hash = $1 AND expires_at > now()",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.map(|(username, role, expires_at)| SessionRecord {
            username,
            role,
            expires_at,
        }))
    }

    pub(crate) async fn remove_session(&self, token_hash: &str) -> Result<(), StoreError> {
        // Expired sessions of anyone are swept out at the same time: logins are rare, so this
        // keeps the table small without a background job.
        sqlx::query("DELETE FROM login_sessions WHERE token_hash = $1 OR expires_at <= now()")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
