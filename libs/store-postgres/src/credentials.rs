//! Orchestrator credentials: enrollment tokens (any orchestrator of one organization) and
//! per-orchestrator tokens. Only the SHA-256 of a token is stored.

use chrono::{DateTime, Utc};
use moolai_store::{
    Actor, CredentialKind, CredentialQuery, CredentialRevocation, CredentialSession,
    NewOrchestratorCredential, OrchestratorCredentialRecord, Page, StoreError,
};
use serde_json::json;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::error::db_error;
use crate::{PgStore, audit};

macro_rules! credential_columns {
    () => {
        "credential_id, kind, organization_id, orchestrator_id, name, created_by, \
     created_at, expires_at, revoked_at"
    };
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    credential_id: String,
    kind: String,
    organization_id: String,
    orchestrator_id: Option<String>,
    name: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<CredentialRow> for OrchestratorCredentialRecord {
    type Error = StoreError;

    fn try_from(r: CredentialRow) -> Result<Self, StoreError> {
        Ok(Self {
            kind: CredentialKind::parse(&r.kind).ok_or_else(|| {
                StoreError::Other(format!("unknown credential kind {:?}", r.kind))
            })?,
            credential_id: r.credential_id,
            organization_id: r.organization_id,
            orchestrator_id: r.orchestrator_id,
            name: r.name,
            created_by: r.created_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        })
    }
}

/// Inside a hello's transaction: the credential must still be active (a revocation that
/// committed first wins; one still running waits for this hello to commit, then sees its
/// session), and an enrollment credential may not claim an orchestrator that has its own.
/// `FOR SHARE` is what orders this hello against a concurrent revocation's `UPDATE`.
pub(crate) async fn check_for_hello(
    conn: &mut PgConnection,
    credential_id: &str,
    orchestrator_id: &str,
) -> Result<(), StoreError> {
    let row: Option<(String, bool)> = sqlx::query_as(
        "SELECT c.kind, EXISTS ( \
             SELECT 1 FROM orchestrator_credentials own \
             WHERE own.kind = 'orchestrator' AND own.orchestrator_id = $2 \
               AND own.revoked_at IS NULL \
               AND (own.expires_at IS NULL OR own.expires_at > now())) \
         FROM orchestrator_credentials c \
         WHERE c.credential_id = $1 AND c.revoked_at IS NULL \
           AND (c.expires_at IS NULL OR c.expires_at > now()) \
         FOR SHARE OF c",
    )
    .bind(credential_id)
    .bind(orchestrator_id)
    .fetch_optional(conn)
    .await
    .map_err(db_error)?;
    match row {
        None => Err(credential_gone()),
        Some((kind, true)) if kind == "enrollment" => Err(enrollment_cannot_claim(orchestrator_id)),
        Some(_) => Ok(()),
    }
}

/// A hello's credential was revoked or expired before its registration committed.
pub(crate) fn credential_gone() -> StoreError {
    StoreError::Unauthorized("the credential was revoked or has expired".into())
}

/// An enrollment token named an orchestrator that has an active credential of its own.
pub(crate) fn enrollment_cannot_claim(orchestrator_id: &str) -> StoreError {
    StoreError::Unauthorized(format!(
        "orchestrator {orchestrator_id} has its own credential: an enrollment token cannot claim it"
    ))
}

fn push_filters(qb: &mut QueryBuilder<Postgres>, q: &CredentialQuery) {
    qb.push(" WHERE TRUE");
    if let Some(kind) = q.kind {
        qb.push(" AND kind = ").push_bind(kind.as_str());
    }
    if let Some(org) = &q.organization_id {
        qb.push(" AND organization_id = ").push_bind(org.clone());
    }
    if let Some(orch) = &q.orchestrator_id {
        qb.push(" AND orchestrator_id = ").push_bind(orch.clone());
    }
    if !q.include_revoked {
        qb.push(" AND revoked_at IS NULL");
    }
    crate::sql::push_scope(qb, "organization_id", q.scope.as_deref());
}

impl PgStore {
    pub(crate) async fn create_credential_tx(
        &self,
        new: &NewOrchestratorCredential,
        actor: &Actor,
    ) -> Result<OrchestratorCredentialRecord, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        crate::accounts::require_organizations(&mut tx, std::slice::from_ref(&new.organization_id))
            .await?;
        match (new.kind, &new.orchestrator_id) {
            (CredentialKind::Orchestrator, Some(orchestrator_id)) => {
                let found: Option<String> = sqlx::query_scalar(
                    "SELECT orchestrator_id FROM orchestrator_instances \
                     WHERE orchestrator_id = $1 AND organization_id = $2 FOR SHARE",
                )
                .bind(orchestrator_id)
                .bind(&new.organization_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
                if found.is_none() {
                    return Err(StoreError::NotFound(format!(
                        "orchestrator {orchestrator_id}"
                    )));
                }
            }
            (CredentialKind::Enrollment, None) => {}
            _ => {
                return Err(StoreError::Invalid(
                    "an orchestrator credential names one orchestrator; an enrollment credential none"
                        .into(),
                ));
            }
        }
        let row: CredentialRow = sqlx::query_as(concat!(
            "INSERT INTO orchestrator_credentials (credential_id, kind, token_hash, \
                 organization_id, orchestrator_id, name, created_by, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
            credential_columns!(),
            ""
        ))
        .bind(format!("crd_{}", uuid::Uuid::now_v7().simple()))
        .bind(new.kind.as_str())
        .bind(&new.token_hash)
        .bind(&new.organization_id)
        .bind(new.orchestrator_id.as_deref())
        .bind(new.name.as_deref())
        .bind(&actor.name)
        .bind(new.expires_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        let record = OrchestratorCredentialRecord::try_from(row)?;
        audit::insert(
            &mut tx,
            &audit::entry(
                actor,
                "credential.create",
                format!("credential:{}", record.credential_id),
                Some(record.organization_id.clone()),
                json!({
                    "kind": record.kind,
                    "orchestrator_id": record.orchestrator_id,
                    "name": record.name,
                }),
            ),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(record)
    }

    pub(crate) async fn credentials_page(
        &self,
        q: &CredentialQuery,
    ) -> Result<Page<OrchestratorCredentialRecord>, StoreError> {
        let (page, page_size) = crate::page_bounds(q.page, q.page_size);
        let mut count =
            QueryBuilder::<Postgres>::new("SELECT count(*) FROM orchestrator_credentials");
        push_filters(&mut count, q);
        let total: i64 = count
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        let mut select = QueryBuilder::<Postgres>::new("SELECT ");
        select
            .push(credential_columns!())
            .push(" FROM orchestrator_credentials");
        push_filters(&mut select, q);
        select
            .push(" ORDER BY created_at DESC, credential_id DESC LIMIT ")
            .push_bind(i64::from(page_size))
            .push(" OFFSET ")
            .push_bind(crate::page_offset(page, page_size));
        let rows: Vec<CredentialRow> = select
            .build_query_as()
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

    pub(crate) async fn credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<OrchestratorCredentialRecord>, StoreError> {
        let row: Option<CredentialRow> = sqlx::query_as(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM orchestrator_credentials WHERE credential_id = $1"
        ))
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(TryInto::try_into).transpose()
    }

    pub(crate) async fn active_credential(
        &self,
        token_hash: &str,
    ) -> Result<Option<OrchestratorCredentialRecord>, StoreError> {
        let row: Option<CredentialRow> = sqlx::query_as(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM orchestrator_credentials \
             WHERE token_hash = $1 AND revoked_at IS NULL \
               AND (expires_at IS NULL OR expires_at > now())"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(TryInto::try_into).transpose()
    }

    pub(crate) async fn revoke_credential_tx(
        &self,
        credential_id: &str,
        actor: &Actor,
    ) -> Result<Option<CredentialRevocation>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // The row lock taken here makes a hello checking this credential wait until we
        // commit; the sessions are read after it, so a hello that committed first is listed.
        let row: Option<CredentialRow> = sqlx::query_as(concat!(
            "UPDATE orchestrator_credentials SET revoked_at = COALESCE(revoked_at, now()) \
             WHERE credential_id = $1 RETURNING ",
            credential_columns!(),
            ""
        ))
        .bind(credential_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let record = OrchestratorCredentialRecord::try_from(row)?;
        let sessions: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT orchestrator_id, organization_id, session_id FROM orchestrator_instances \
             WHERE credential_id = $1 AND session_id IS NOT NULL",
        )
        .bind(credential_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        audit::insert(
            &mut tx,
            &audit::entry(
                actor,
                "credential.revoke",
                format!("credential:{credential_id}"),
                Some(record.organization_id.clone()),
                json!({
                    "kind": record.kind,
                    "orchestrator_id": record.orchestrator_id,
                    "sessions_closed": sessions.len(),
                }),
            ),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(CredentialRevocation {
            record,
            sessions: sessions
                .into_iter()
                .map(
                    |(orchestrator_id, organization_id, session_id)| CredentialSession {
                        orchestrator_id,
                        organization_id,
                        session_id,
                    },
                )
                .collect(),
        }))
    }
}
