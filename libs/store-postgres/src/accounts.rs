//! Operators: users (argon2id hashes computed by the api), their login sessions and API
//! tokens. Only token hashes are stored.

use chrono::{DateTime, Utc};
use moolai_store::{
    Actor, ApiTokenRecord, NewApiToken, NewSession, NewUser, Page, Role, SessionRecord, StoreError,
    UserLogin, UserRecord, UserUpdate,
};
use serde_json::json;
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::error::db_error;
use crate::{PgStore, audit};

macro_rules! user_columns {
    () => {
        "username, role, organization_ids, disabled, created_at, updated_at"
    };
}
macro_rules! api_token_columns {
    () => {
        "token_id, name, role, organization_ids, created_by, created_at, \
     expires_at, revoked_at"
    };
}

pub(crate) fn parse_role(s: &str) -> Result<Role, StoreError> {
    Role::parse(s).ok_or_else(|| StoreError::Other(format!("unknown role {s:?}")))
}

#[derive(sqlx::FromRow)]
struct UserRow {
    username: String,
    role: String,
    organization_ids: Json<Vec<String>>,
    disabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;

    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(Self {
            role: parse_role(&r.role)?,
            username: r.username,
            organization_ids: r.organization_ids.0,
            disabled: r.disabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A session joined with its user: name, current role, organizations, expiry.
type SessionRow = (String, String, Json<Vec<String>>, DateTime<Utc>);

#[derive(sqlx::FromRow)]
struct UserLoginRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ApiTokenRow {
    token_id: String,
    name: String,
    role: String,
    organization_ids: Json<Vec<String>>,
    created_by: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<ApiTokenRow> for ApiTokenRecord {
    type Error = StoreError;

    fn try_from(r: ApiTokenRow) -> Result<Self, StoreError> {
        Ok(Self {
            role: parse_role(&r.role)?,
            token_id: r.token_id,
            name: r.name,
            organization_ids: r.organization_ids.0,
            created_by: r.created_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        })
    }
}

/// Fails with [`StoreError::NotFound`] naming the first organization that does not exist.
/// `FOR SHARE` keeps them from disappearing until the caller commits.
pub(crate) async fn require_organizations(
    conn: &mut PgConnection,
    organization_ids: &[String],
) -> Result<(), StoreError> {
    if organization_ids.is_empty() {
        return Ok(());
    }
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT organization_id FROM organizations WHERE organization_id = ANY($1) FOR SHARE",
    )
    .bind(organization_ids)
    .fetch_all(conn)
    .await
    .map_err(db_error)?;
    match organization_ids.iter().find(|o| !found.contains(o)) {
        Some(missing) => Err(StoreError::NotFound(format!("organization {missing}"))),
        None => Ok(()),
    }
}

/// A list of organization ids as given, without duplicates, in first-seen order.
fn dedup(ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

impl PgStore {
    pub(crate) async fn create_user_tx(
        &self,
        new: &NewUser,
        actor: &Actor,
    ) -> Result<UserRecord, StoreError> {
        let organization_ids = dedup(&new.organization_ids);
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        require_organizations(&mut tx, &organization_ids).await?;
        let row: Option<UserRow> = sqlx::query_as(concat!(
            "INSERT INTO users (username, role, password_hash, organization_ids) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING RETURNING ",
            user_columns!(),
            ""
        ))
        .bind(&new.username)
        .bind(new.role.as_str())
        .bind(&new.password_hash)
        .bind(Json(&organization_ids))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Err(StoreError::Conflict(format!(
                "user {} already exists",
                new.username
            )));
        };
        let record = UserRecord::try_from(row)?;
        audit::insert(
            &mut tx,
            &audit::entry(
                actor,
                "user.create",
                format!("user:{}", record.username),
                None,
                json!({ "role": record.role, "organization_ids": record.organization_ids }),
            ),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(record)
    }

    pub(crate) async fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(TryInto::try_into).transpose()
    }

    pub(crate) async fn user_login_row(
        &self,
        username: &str,
    ) -> Result<Option<UserLogin>, StoreError> {
        let row: Option<UserLoginRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            ", password_hash FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|r| {
            Ok(UserLogin {
                user: r.user.try_into()?,
                password_hash: r.password_hash,
            })
        })
        .transpose()
    }

    pub(crate) async fn users_page(
        &self,
        page: u32,
        page_size: u32,
    ) -> Result<Page<UserRecord>, StoreError> {
        let (page, page_size) = crate::page_bounds(page, page_size);
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        let rows: Vec<UserRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY username LIMIT $1 OFFSET $2"
        ))
        .bind(i64::from(page_size))
        .bind(crate::page_offset(page, page_size))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(Page {
            items: rows
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            total,
            page,
            page_size,
        })
    }

    pub(crate) async fn update_user_tx(
        &self,
        username: &str,
        update: &UserUpdate,
        actor: &Actor,
    ) -> Result<Option<UserRecord>, StoreError> {
        let organization_ids = update.organization_ids.as_deref().map(dedup);
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        if let Some(ids) = &organization_ids {
            require_organizations(&mut tx, ids).await?;
        }
        let mut qb = QueryBuilder::<Postgres>::new("UPDATE users SET updated_at = now()");
        if let Some(role) = update.role {
            qb.push(", role = ").push_bind(role.as_str());
        }
        if let Some(hash) = &update.password_hash {
            qb.push(", password_hash = ").push_bind(hash.clone());
        }
        if let Some(ids) = &organization_ids {
            qb.push(", organization_ids = ")
                .push_bind(Json(ids.clone()));
        }
        if let Some(disabled) = update.disabled {
            qb.push(", disabled = ").push_bind(disabled);
        }
        qb.push(" WHERE username = ")
            .push_bind(username.to_owned())
            .push(" RETURNING ")
            .push(user_columns!());
        let row: Option<UserRow> = qb
            .build_query_as()
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let record = UserRecord::try_from(row)?;
        // Sessions carry no copy of the role (it is joined on every request), but a changed
        // password or a disabled account must end the sessions that exist.
        sqlx::query("DELETE FROM login_sessions WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        audit::insert(
            &mut tx,
            &audit::entry(
                actor,
                "user.update",
                format!("user:{username}"),
                None,
                json!({
                    "role": update.role,
                    "organization_ids": organization_ids,
                    "disabled": update.disabled,
                    "password_changed": update.password_hash.is_some(),
                }),
            ),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(record))
    }

    pub(crate) async fn delete_user_tx(
        &self,
        username: &str,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let deleted = sqlx::query("DELETE FROM users WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if deleted.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM login_sessions WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        audit::insert(
            &mut tx,
            &audit::entry(
                actor,
                "user.delete",
                format!("user:{username}"),
                None,
                json!({}),
            ),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
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
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT s.username, u.role, u.organization_ids, s.expires_at \
             FROM login_sessions s JOIN users u ON u.username = s.username \
             WHERE s.token_hash = $1 AND s.expires_at > now() AND NOT u.disabled",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|(username, role, organization_ids, expires_at)| {
            Ok(SessionRecord {
                username,
                role: parse_role(&role)?,
                organization_ids: organization_ids.0,
                expires_at,
            })
        })
        .transpose()
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

    pub(crate) async fn create_api_token_tx(
        &self,
        new: &NewApiToken,
        actor: &Actor,
    ) -> Result<ApiTokenRecord, StoreError> {
        let organization_ids = dedup(&new.organization_ids);
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        require_organizations(&mut tx, &organization_ids).await?;
        let row: ApiTokenRow = sqlx::query_as(concat!(
            "INSERT INTO api_tokens (token_id, name, token_hash, role, organization_ids, \
                 created_by, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
            api_token_columns!(),
            ""
        ))
        .bind(format!("apt_{}", uuid::Uuid::now_v7().simple()))
        .bind(&new.name)
        .bind(&new.token_hash)
        .bind(new.role.as_str())
        .bind(Json(&organization_ids))
        .bind(&actor.name)
        .bind(new.expires_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        let record = ApiTokenRecord::try_from(row)?;
        audit::insert(
            &mut tx,
            &audit::entry(
                actor,
                "api_token.create",
                format!("api_token:{}", record.token_id),
                None,
                json!({
                    "name": record.name,
                    "role": record.role,
                    "organization_ids": record.organization_ids,
                }),
            ),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(record)
    }

    pub(crate) async fn api_tokens_page(
        &self,
        page: u32,
        page_size: u32,
    ) -> Result<Page<ApiTokenRecord>, StoreError> {
        let (page, page_size) = crate::page_bounds(page, page_size);
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM api_tokens")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        let rows: Vec<ApiTokenRow> = sqlx::query_as(concat!(
            "SELECT ",
            api_token_columns!(),
            " FROM api_tokens \
             ORDER BY created_at DESC, token_id DESC LIMIT $1 OFFSET $2"
        ))
        .bind(i64::from(page_size))
        .bind(crate::page_offset(page, page_size))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(Page {
            items: rows
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            total,
            page,
            page_size,
        })
    }

    pub(crate) async fn active_api_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApiTokenRecord>, StoreError> {
        let row: Option<ApiTokenRow> = sqlx::query_as(concat!(
            "SELECT ",
            api_token_columns!(),
            " FROM api_tokens \
             WHERE token_hash = $1 AND revoked_at IS NULL \
               AND (expires_at IS NULL OR expires_at > now())"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(TryInto::try_into).transpose()
    }

    pub(crate) async fn revoke_api_token_tx(
        &self,
        token_id: &str,
        actor: &Actor,
    ) -> Result<Option<ApiTokenRecord>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let row: Option<ApiTokenRow> = sqlx::query_as(concat!(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()) \
             WHERE token_id = $1 RETURNING ",
            api_token_columns!(),
            ""
        ))
        .bind(token_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let record = ApiTokenRecord::try_from(row)?;
        audit::insert(
            &mut tx,
            &audit::entry(
                actor,
                "api_token.revoke",
                format!("api_token:{token_id}"),
                None,
                json!({ "name": record.name }),
            ),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(record))
    }
}
