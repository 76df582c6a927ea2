//! The orchestrator aggregate: hello registration, reads with the derived status, operator
//! writes (pre-registration, independence, session config, metadata) and connection history.

use moolai_protocol::{DeliveredMessage, Provisioning};
use moolai_store::{
    Actor, ConnectionRecord, HelloRegistration, IndependenceChange, NewOrchestrator,
    OrchestratorQuery, OrchestratorRecord, Page, Registered, StoreError, Supervision,
};
use serde_json::{Map, Value, json};
use sqlx::types::Json;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::error::db_error;
use crate::rows::{ConnectionRow, DeliveryRow, OrchestratorRow, ProvisioningRow, parse_status};
use crate::sql::{LISTING_SELECT, SELECT_ORCHESTRATOR, alive_sql, status_sql};
use crate::{SqliteStore, audit, time};

/// How many undelivered messages a hello carries back; the rest wait for the next hello.
const PENDING_DELIVERY_LIMIT: i64 = 100;

/// One orchestrator with its status derived against `cutoff`.
pub(crate) async fn fetch(
    conn: &mut SqliteConnection,
    orchestrator_id: &str,
    cutoff: &str,
) -> Result<Option<OrchestratorRecord>, StoreError> {
    let row: Option<OrchestratorRow> = sqlx::query_as(SELECT_ORCHESTRATOR)
        .bind(orchestrator_id)
        .bind(cutoff)
        .fetch_optional(conn)
        .await
        .map_err(db_error)?;
    row.map(TryInto::try_into).transpose()
}

pub(crate) async fn pending_deliveries(
    conn: &mut SqliteConnection,
    orchestrator_id: &str,
) -> Result<Vec<DeliveredMessage>, StoreError> {
    let rows: Vec<DeliveryRow> = sqlx::query_as(
        "SELECT id, orchestrator_id, message_type, content, message_metadata, status \
         FROM orchestrator_messages \
         WHERE orchestrator_id = $1 AND status = 'accepted' AND delivered_at IS NULL \
         ORDER BY created_at, id LIMIT $2",
    )
    .bind(orchestrator_id)
    .bind(PENDING_DELIVERY_LIMIT)
    .fetch_all(conn)
    .await
    .map_err(db_error)?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub(crate) async fn provisioning(
    conn: &mut SqliteConnection,
    orchestrator_id: &str,
) -> Result<Option<Provisioning>, StoreError> {
    let row: Option<ProvisioningRow> = sqlx::query_as(
        "SELECT orchestrator_id, organization_id, name, location, features, metadata, \
         session_config, is_independent, privacy_mode, monitoring_enabled, config_version \
         FROM orchestrator_instances WHERE orchestrator_id = $1",
    )
    .bind(orchestrator_id)
    .fetch_optional(conn)
    .await
    .map_err(db_error)?;
    Ok(row.map(Into::into))
}

/// Session, independence and configuration of these orchestrators, in one query (the ids
/// bound as one JSON array).
pub(crate) async fn supervision(
    pool: &sqlx::SqlitePool,
    orchestrator_ids: &[String],
) -> Result<Vec<Supervision>, StoreError> {
    let ids =
        serde_json::to_string(orchestrator_ids).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let rows: Vec<(String, Option<String>, bool, i64, Value)> = sqlx::query_as(
        "SELECT orchestrator_id, session_id, is_independent, config_version, session_config \
         FROM orchestrator_instances WHERE orchestrator_id IN (SELECT value FROM json_each($1))",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    Ok(rows.into_iter().map(Supervision::from).collect())
}

/// Provisioning fields plus what the hello reports back about liveness.
#[derive(sqlx::FromRow)]
struct HelloRow {
    #[sqlx(flatten)]
    provisioning: ProvisioningRow,
    status: String,
    last_seen: Option<chrono::DateTime<chrono::Utc>>,
}

fn another_organization(orchestrator_id: &str) -> StoreError {
    StoreError::Conflict(format!(
        "orchestrator {orchestrator_id} belongs to another organization"
    ))
}

impl SqliteStore {
    pub(crate) async fn register_hello_tx(
        &self,
        hello: &HelloRegistration,
    ) -> Result<Registered, StoreError> {
        let now = time::now();
        let now_text = time::encode(now)?;
        let cutoff = self.cutoff(now);
        // The write lock from the start: the organization check and the status captured
        // before this hello cannot race another hello of the same orchestrator.
        let mut w = self.begin_write().await?;

        let existing: Option<(String, String)> = sqlx::query_as(concat!(
            "SELECT o.organization_id, ",
            status_sql!("$2"),
            " FROM orchestrator_instances o WHERE o.orchestrator_id = $1"
        ))
        .bind(&hello.orchestrator_id)
        .bind(&cutoff)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(db_error)?;

        let (organization_id, previous_status) = match (&existing, &hello.organization_id) {
            (Some((existing_org, _)), Some(claimed)) if claimed != existing_org => {
                return Err(another_organization(&hello.orchestrator_id));
            }
            (Some((existing_org, status)), _) => {
                (existing_org.clone(), Some(parse_status(status)?))
            }
            (None, Some(claimed)) => (claimed.clone(), None),
            (None, None) => (hello.default_organization_id.clone(), None),
        };
        if let Some(credential_id) = &hello.credential_id {
            crate::credentials::check_for_hello(
                &mut w.tx,
                credential_id,
                &hello.orchestrator_id,
                &now_text,
            )
            .await?;
        }

        // An organization first named by a hello is created with its id as its name.
        sqlx::query(
            "INSERT INTO organizations (organization_id, name, created_at, updated_at) \
             VALUES ($1, $1, $2, $2) ON CONFLICT (organization_id) DO NOTHING",
        )
        .bind(&organization_id)
        .bind(&now_text)
        .execute(&mut *w.tx)
        .await
        .map_err(db_error)?;
        let organization_name: String =
            sqlx::query_scalar("SELECT name FROM organizations WHERE organization_id = $1")
                .bind(&organization_id)
                .fetch_one(&mut *w.tx)
                .await
                .map_err(db_error)?;

        // As in PostgreSQL, the `WHERE` on the conflict branch refuses to move an existing
        // orchestrator into a different organization (the check above already did, under
        // the same write lock; this keeps the statement safe on its own).
        let row: Option<HelloRow> = sqlx::query_as(concat!(
            "INSERT INTO orchestrator_instances AS o (orchestrator_id, organization_id, \
                 organization_name, name, location, features, metadata, session_id, edge_id, \
                 disconnected_at, last_activity, last_seen, status, created_at, updated_at, \
                 credential_id) \
             VALUES ($1, $2, $3, $4, $5, COALESCE($6, '{}'), $7, $8, $9, \
                 NULL, $10, $10, 'active', $10, $10, $12) \
             ON CONFLICT (orchestrator_id) DO UPDATE SET \
                 credential_id = excluded.credential_id, \
                 organization_name = excluded.organization_name, \
                 name = COALESCE($4, o.name), \
                 location = COALESCE($5, o.location), \
                 features = COALESCE($6, o.features), \
                 metadata = excluded.metadata, \
                 session_id = excluded.session_id, \
                 edge_id = excluded.edge_id, \
                 disconnected_at = NULL, \
                 last_activity = $10, \
                 last_seen = CASE WHEN o.is_independent THEN o.last_seen \
                                  ELSE max(COALESCE(o.last_seen, $10), $10) END, \
                 status = CASE WHEN o.is_independent THEN o.status ELSE 'active' END, \
                 updated_at = $10 \
             WHERE o.organization_id = excluded.organization_id \
             RETURNING orchestrator_id, organization_id, name, location, features, \
                 metadata, session_config, is_independent, privacy_mode, \
                 monitoring_enabled, config_version, last_seen, ",
            status_sql!("", "$11"),
            " AS status"
        ))
        .bind(&hello.orchestrator_id)
        .bind(&organization_id)
        .bind(&organization_name)
        .bind(hello.name.as_deref())
        .bind(hello.location.as_deref())
        .bind(hello.features.as_ref())
        .bind(Json(&hello.metadata))
        .bind(&hello.session_id)
        .bind(&hello.edge_id)
        .bind(&now_text)
        .bind(&cutoff)
        .bind(hello.credential_id.as_deref())
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Err(another_organization(&hello.orchestrator_id));
        };

        // The same session saying hello twice (a retried request) updates its row.
        sqlx::query(
            "INSERT INTO orchestrator_connections (connection_id, orchestrator_id, status, \
                 edge_id, remote_addr, metadata, last_seen, created_at, updated_at, \
                 credential_id) \
             VALUES ($1, $2, 'connected', $3, $4, $5, $6, $6, $6, $7) \
             ON CONFLICT (connection_id) DO UPDATE SET status = 'connected', \
                 credential_id = excluded.credential_id, \
                 edge_id = excluded.edge_id, remote_addr = excluded.remote_addr, \
                 metadata = excluded.metadata, last_seen = $6, disconnected_at = NULL, \
                 disconnect_reason = NULL, updated_at = $6 \
             WHERE orchestrator_connections.orchestrator_id = excluded.orchestrator_id",
        )
        .bind(&hello.session_id)
        .bind(&hello.orchestrator_id)
        .bind(&hello.edge_id)
        .bind(hello.remote_addr.as_deref())
        .bind(Json(&hello.metadata))
        .bind(&now_text)
        .bind(hello.credential_id.as_deref())
        .execute(&mut *w.tx)
        .await
        .map_err(db_error)?;

        if existing.is_none() {
            audit::insert(&mut w.tx, &hello_audit(hello, &organization_id), &now).await?;
        }
        let pending_messages = pending_deliveries(&mut w.tx, &hello.orchestrator_id).await?;
        w.commit().await?;

        Ok(Registered {
            status: parse_status(&row.status)?,
            last_seen: row.last_seen,
            organization_id: row.provisioning.organization_id.clone(),
            provisioning: row.provisioning.into(),
            previous_status,
            pending_messages,
        })
    }

    pub(crate) async fn list_orchestrators_page(
        &self,
        q: &OrchestratorQuery,
    ) -> Result<Page<OrchestratorRecord>, StoreError> {
        let (page, page_size) = crate::page_bounds(q.page, q.page_size);
        let cutoff = self.cutoff(time::now());

        let total: i64 = filtered(
            &cutoff,
            "SELECT count(*) FROM orchestrator_instances o, p",
            q,
        )
        .build_query_scalar()
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;

        let mut select = filtered(&cutoff, LISTING_SELECT, q);
        select
            .push(" ORDER BY o.orchestrator_id LIMIT ")
            .push_bind(i64::from(page_size))
            .push(" OFFSET ")
            .push_bind(crate::page_offset(page, page_size));

        Ok(Page {
            items: self.fetch_records(select).await?,
            total,
            page,
            page_size,
        })
    }

    /// The matching ids in listing order, if there are at most `limit`.
    pub(crate) async fn orchestrator_ids(
        &self,
        q: &OrchestratorQuery,
        limit: usize,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let cutoff = self.cutoff(time::now());
        let mut select = filtered(
            &cutoff,
            "SELECT o.orchestrator_id FROM orchestrator_instances o, p",
            q,
        );
        select
            .push(" ORDER BY o.orchestrator_id LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1));
        let ids: Vec<String> = select
            .build_query_scalar()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok((ids.len() <= limit).then_some(ids))
    }

    /// The rows of `ids` that still match, in listing order.
    pub(crate) async fn orchestrators_by_ids(
        &self,
        q: &OrchestratorQuery,
        ids: &[String],
    ) -> Result<Vec<OrchestratorRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(ids)
            .map_err(|e| StoreError::Other(format!("encoding orchestrator ids: {e}")))?;
        let cutoff = self.cutoff(time::now());
        let mut select = filtered(&cutoff, LISTING_SELECT, q);
        select
            .push(" AND o.orchestrator_id IN (SELECT value FROM json_each(")
            .push_bind(ids)
            .push(")) ORDER BY o.orchestrator_id");
        self.fetch_records(select).await
    }

    async fn fetch_records(
        &self,
        mut select: QueryBuilder<Sqlite>,
    ) -> Result<Vec<OrchestratorRecord>, StoreError> {
        let rows: Vec<OrchestratorRow> = select
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    pub(crate) async fn register_orchestrator_tx(
        &self,
        new: &NewOrchestrator,
        actor: &Actor,
    ) -> Result<OrchestratorRecord, StoreError> {
        let now = time::now();
        let now_text = time::encode(now)?;
        // The write lock keeps the organization from being deleted until we commit (what
        // PostgreSQL's FOR SHARE does).
        let mut w = self.begin_write().await?;

        let organization_name: Option<String> =
            sqlx::query_scalar("SELECT name FROM organizations WHERE organization_id = $1")
                .bind(&new.organization_id)
                .fetch_optional(&mut *w.tx)
                .await
                .map_err(db_error)?;
        let Some(organization_name) = organization_name else {
            return Err(StoreError::NotFound(format!(
                "organization {}",
                new.organization_id
            )));
        };

        let inserted = sqlx::query(
            "INSERT INTO orchestrator_instances (orchestrator_id, organization_id, \
                 organization_name, name, location, features, session_config, metadata, \
                 created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, COALESCE($6, '{}'), COALESCE($7, '{}'), \
                 COALESCE($8, '{}'), $9, $9) \
             ON CONFLICT (orchestrator_id) DO NOTHING",
        )
        .bind(&new.orchestrator_id)
        .bind(&new.organization_id)
        .bind(&organization_name)
        .bind(new.name.as_deref())
        .bind(new.location.as_deref())
        .bind(new.features.as_ref())
        .bind(new.session_config.as_ref())
        .bind(new.metadata.as_ref())
        .bind(&now_text)
        .execute(&mut *w.tx)
        .await
        .map_err(db_error)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "orchestrator {} already exists",
                new.orchestrator_id
            )));
        }

        audit::insert(
            &mut w.tx,
            &audit::entry(
                actor,
                "orchestrator.register",
                format!("orchestrator:{}", new.orchestrator_id),
                Some(new.organization_id.clone()),
                json!({ "name": new.name, "location": new.location }),
            ),
            &now,
        )
        .await?;

        let record = fetch(&mut w.tx, &new.orchestrator_id, &self.cutoff(now))
            .await?
            .ok_or_else(|| StoreError::Other("registered orchestrator vanished".into()))?;
        w.commit().await?;
        Ok(record)
    }

    pub(crate) async fn deregister_orchestrator_tx(
        &self,
        orchestrator_id: &str,
        actor: &Actor,
    ) -> Result<Option<OrchestratorRecord>, StoreError> {
        let now = time::now();
        let mut w = self.begin_write().await?;

        let Some(record) = fetch(&mut w.tx, orchestrator_id, &self.cutoff(now)).await? else {
            return Ok(None);
        };

        sqlx::query("DELETE FROM orchestrator_connections WHERE orchestrator_id = $1")
            .bind(orchestrator_id)
            .execute(&mut *w.tx)
            .await
            .map_err(db_error)?;
        sqlx::query("DELETE FROM orchestrator_instances WHERE orchestrator_id = $1")
            .bind(orchestrator_id)
            .execute(&mut *w.tx)
            .await
            .map_err(db_error)?;
        sqlx::query(
            "UPDATE orchestrator_credentials SET revoked_at = $2 \
             WHERE kind = 'orchestrator' AND orchestrator_id = $1 AND revoked_at IS NULL",
        )
        .bind(orchestrator_id)
        .bind(time::encode(now)?)
        .execute(&mut *w.tx)
        .await
        .map_err(db_error)?;
        audit::insert(
            &mut w.tx,
            &audit::entry(
                actor,
                "orchestrator.deregister",
                format!("orchestrator:{orchestrator_id}"),
                Some(record.organization_id.clone()),
                json!({ "name": record.name }),
            ),
            &now,
        )
        .await?;
        w.commit().await?;
        Ok(Some(record))
    }

    pub(crate) async fn set_independence_tx(
        &self,
        orchestrator_id: &str,
        is_independent: bool,
        actor: &Actor,
    ) -> Result<Option<IndependenceChange>, StoreError> {
        let now = time::now();
        let cutoff = self.cutoff(now);
        let mut w = self.begin_write().await?;

        let current: Option<(bool, String)> = sqlx::query_as(
            "SELECT is_independent, organization_id FROM orchestrator_instances \
             WHERE orchestrator_id = $1",
        )
        .bind(orchestrator_id)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(db_error)?;
        let Some((previous, organization_id)) = current else {
            return Ok(None);
        };

        // Switching off stores the status the facts give (heartbeats were not recorded while
        // independent, so it is usually inactive until the next one).
        sqlx::query(concat!(
            "UPDATE orchestrator_instances AS o SET is_independent = $2, \
                 status = CASE WHEN $2 THEN 'independent' \
                               WHEN ",
            alive_sql!("$3"),
            " THEN 'active' ELSE 'inactive' END, \
                 updated_at = $4 \
             WHERE o.orchestrator_id = $1"
        ))
        .bind(orchestrator_id)
        .bind(is_independent)
        .bind(&cutoff)
        .bind(time::encode(now)?)
        .execute(&mut *w.tx)
        .await
        .map_err(db_error)?;

        audit::insert(
            &mut w.tx,
            &audit::entry(
                actor,
                "orchestrator.independence",
                format!("orchestrator:{orchestrator_id}"),
                Some(organization_id),
                json!({ "is_independent": is_independent, "previous": previous }),
            ),
            &now,
        )
        .await?;

        let record = fetch(&mut w.tx, orchestrator_id, &cutoff)
            .await?
            .ok_or_else(|| StoreError::Other("orchestrator vanished while locked".into()))?;
        w.commit().await?;
        Ok(Some(IndependenceChange { previous, record }))
    }

    pub(crate) async fn update_session_config_tx(
        &self,
        orchestrator_id: &str,
        session_config: &Value,
        actor: &Actor,
    ) -> Result<Option<i64>, StoreError> {
        let now = time::now();
        let mut w = self.begin_write().await?;
        let updated: Option<(i64, String)> = sqlx::query_as(
            "UPDATE orchestrator_instances SET session_config = $2, \
                 config_version = config_version + 1, updated_at = $3 \
             WHERE orchestrator_id = $1 RETURNING config_version, organization_id",
        )
        .bind(orchestrator_id)
        .bind(session_config)
        .bind(time::encode(now)?)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(db_error)?;
        let Some((config_version, organization_id)) = updated else {
            return Ok(None);
        };
        audit::insert(
            &mut w.tx,
            &audit::entry(
                actor,
                "orchestrator.config_update",
                format!("orchestrator:{orchestrator_id}"),
                Some(organization_id),
                json!({ "config_version": config_version }),
            ),
            &now,
        )
        .await?;
        w.commit().await?;
        Ok(Some(config_version))
    }

    /// PostgreSQL merges with `metadata || $2` (top-level keys replaced whole, a JSON null
    /// stored as null). SQLite's `json_patch` is a different merge (RFC 7396: nested objects
    /// merged, null deletes the key), so the merge is done here, in a write transaction.
    pub(crate) async fn update_metadata_tx(
        &self,
        orchestrator_id: &str,
        metadata: &Map<String, Value>,
    ) -> Result<bool, StoreError> {
        let now = time::encode(time::now())?;
        let mut w = self.begin_write().await?;
        let stored: Option<Json<Value>> = sqlx::query_scalar(
            "SELECT metadata FROM orchestrator_instances WHERE orchestrator_id = $1",
        )
        .bind(orchestrator_id)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(db_error)?;
        let Some(Json(stored)) = stored else {
            return Ok(false);
        };
        let merged = merge_top_level(stored, metadata);
        sqlx::query(
            "UPDATE orchestrator_instances SET metadata = $2, last_activity = $3, \
                 updated_at = $3 \
             WHERE orchestrator_id = $1",
        )
        .bind(orchestrator_id)
        .bind(&merged)
        .bind(&now)
        .execute(&mut *w.tx)
        .await
        .map_err(db_error)?;
        w.commit().await?;
        Ok(true)
    }

    pub(crate) async fn save_config_snapshot_row(
        &self,
        orchestrator_id: &str,
        snapshot: &Value,
    ) -> Result<bool, StoreError> {
        let now = time::encode(time::now())?;
        let _gate = self.write_gate().await?;
        let done = sqlx::query(
            "UPDATE orchestrator_instances SET config_snapshot = $2, \
                 config_snapshot_at = $3, updated_at = $3 \
             WHERE orchestrator_id = $1",
        )
        .bind(orchestrator_id)
        .bind(snapshot)
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn connections(
        &self,
        orchestrator_id: &str,
        limit: u32,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let rows: Vec<ConnectionRow> = sqlx::query_as(
            "SELECT connection_id, orchestrator_id, status, edge_id, remote_addr, \
                 created_at AS connected_at, disconnected_at, disconnect_reason \
             FROM orchestrator_connections WHERE orchestrator_id = $1 \
             ORDER BY created_at DESC, connection_id DESC LIMIT $2",
        )
        .bind(orchestrator_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

/// `stored || update` as PostgreSQL's jsonb does it: an object gets the update's keys
/// (replacing whole values). Anything else is concatenated as arrays (a non-array counts as a
/// one-element array); a metadata column only ever holds an object, so that is defensive.
fn merge_top_level(stored: Value, update: &Map<String, Value>) -> Value {
    match stored {
        Value::Object(mut map) => {
            for (key, value) in update {
                map.insert(key.clone(), value.clone());
            }
            Value::Object(map)
        }
        Value::Array(mut items) => {
            items.push(Value::Object(update.clone()));
            Value::Array(items)
        }
        other => Value::Array(vec![other, Value::Object(update.clone())]),
    }
}

/// The audit entry of an orchestrator that registered itself with a hello.
fn hello_audit(hello: &HelloRegistration, organization_id: &str) -> moolai_store::AuditEntry {
    audit::entry(
        &Actor {
            name: format!("orchestrator:{}", hello.orchestrator_id),
            client_addr: hello.remote_addr.clone(),
        },
        "orchestrator.register",
        format!("orchestrator:{}", hello.orchestrator_id),
        Some(organization_id.to_owned()),
        json!({ "via": "hello", "credential_id": hello.credential_id, "edge_id": hello.edge_id }),
    )
}

/// `<select> WHERE <q's filters>`, the cutoff bound once as `p.cutoff` (see [`crate::sql`]);
/// `select` reads `orchestrator_instances o` and joins `p`.
fn filtered(cutoff: &str, select: &str, q: &OrchestratorQuery) -> QueryBuilder<Sqlite> {
    let mut qb = QueryBuilder::new("WITH p(cutoff) AS (SELECT ");
    qb.push_bind(cutoff.to_owned()).push(") ").push(select);
    push_filters(&mut qb, q);
    qb
}

/// `WHERE` clause of the orchestrator listing (the builder joins `p`, see [`filtered`]).
fn push_filters(qb: &mut QueryBuilder<Sqlite>, q: &OrchestratorQuery) {
    qb.push(" WHERE TRUE");
    if let Some(status) = q.status {
        qb.push(concat!(" AND ", status_sql!("p.cutoff"), " = "))
            .push_bind(status.as_str());
    }
    if let Some(organization_id) = &q.organization_id {
        qb.push(" AND o.organization_id = ")
            .push_bind(organization_id.clone());
    }
    if let Some(scope) = crate::accounts::scope_json(q.scope.as_deref()) {
        qb.push(" AND o.organization_id IN (SELECT value FROM json_each(")
            .push_bind(scope)
            .push("))");
    }
    if let Some(search) = q.search.as_deref().filter(|s| !s.is_empty()) {
        // SQLite's LIKE ignores case for ASCII letters only (PostgreSQL's ILIKE follows the
        // database's locale); ids and names are ASCII in practice.
        let pattern = format!("%{}%", escape_like(search));
        qb.push(" AND (o.orchestrator_id LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR o.name LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR o.organization_id LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
}

/// Makes `%`, `_` and `\` match themselves in a `LIKE` pattern.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_top_level_keys_like_jsonb_concatenation() {
        let update = |v: Value| match v {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        assert_eq!(
            merge_top_level(
                json!({ "a": { "x": 1 }, "b": 2, "keep": true }),
                &update(json!({ "a": { "y": 2 }, "b": null, "c": [1] }))
            ),
            json!({ "a": { "y": 2 }, "b": null, "c": [1], "keep": true })
        );
        assert_eq!(
            merge_top_level(json!([1]), &update(json!({ "a": 1 }))),
            json!([1, { "a": 1 }])
        );
        assert_eq!(
            merge_top_level(json!("x"), &update(json!({ "a": 1 }))),
            json!(["x", { "a": 1 }])
        );
    }

    #[test]
    fn escapes_like_wildcards() {
        assert_eq!(escape_like(r"100%_a\b"), r"100\%\_a\\b");
    }
}
