//! Operator users and their login sessions (only token hashes are stored).

use chrono::{DateTime, Utc};
use moolai_store::{NewSession, SessionRecord, StoreError};

use crate::error::db_error;
use crate::{SqliteStore, time};

impl SqliteStore {
    pub(crate) async fn upsert_user(&self, username: &str, role: &str) -> Result<(), StoreError> {
        let now = time::encode(time::now())?;
        let _gate = self.write_gate().await?;
        sqlx::query(
            "INSERT INTO users (username, role, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (username) DO UPDATE SET role = excluded.role, updated_at = $3 \
             WHERE users.role IS NOT excluded.role",
        )
        .bind(username)
        .bind(role)
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    pub(crate) async fn insert_session(&self, session: &NewSession) -> Result<(), StoreError> {
        let now = time::encode(time::now())?;
        let expires_at = time::encode(session.expires_at)?;
        let _gate = self.write_gate().await?;
        sqlx::query(
            "INSERT INTO login_sessions (token_hash, username, role, created_at, expires_at, \
                 client_addr) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&session.token_hash)
        .bind(&session.username)
        .bind(&session.role)
        .bind(&now)
        .bind(&expires_at)
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
             WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(time::encode(time::now())?)
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
        let now = time::encode(time::now())?;
        let _gate = self.write_gate().await?;
        // Expired sessions of anyone are swept out at the same time: logins are rare, so this
        // keeps the table small without a background job.
        sqlx::query("DELETE FROM login_sessions WHERE token_hash = $1 OR expires_at <= $2")
            .bind(token_hash)
            .bind(&now)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
