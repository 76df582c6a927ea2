//! The orchestrator aggregate: hello registration, reads with the derived status, operator
//! writes (pre-registration, independence, session config) and connection history.

use moolai_protocol::{DeliveredMessage, Provisioning, Status};
use moolai_store::{
    Actor, ConnectionRecord, FleetFacts, HelloRegistration, IndependenceChange, NewOrchestrator,
    OrchestratorFacts, OrchestratorQuery, OrchestratorRecord, OrchestratorVersion, Page,
    Registered, StoreError, Supervision,
};
use serde_json::{Map, Value, json};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::types::Json;
use sqlx::{Arguments, PgConnection, Postgres, QueryBuilder, Row};

use crate::error::db_error;
use crate::rows::{ConnectionRow, DeliveryRow, OrchestratorRow, ProvisioningRow, parse_status};
use crate::sql::{
    SELECT_ORCHESTRATOR, alive_sql, connection_upsert, hello_liveness_set, orchestrator_columns,
    status_sql,
};
use crate::{PgStore, audit};

/// The rows of a listing, from `o` (see [`PgStore::filtered`]).
const LISTING_SELECT: &str = concat!(
    "SELECT ",
    orchestrator_columns!("$1"),
    " FROM orchestrator_instances o"
);

/// How many undelivered messages a hello carries back; the rest wait for the next hello.
pub(crate) const PENDING_DELIVERY_LIMIT: i64 = 100;

/// One orchestrator with its derived status.
pub(crate) async fn fetch(
    conn: &mut PgConnection,
    orchestrator_id: &str,
    ttl_secs: f64,
) -> Result<Option<OrchestratorRecord>, StoreError> {
    let row: Option<OrchestratorRow> = sqlx::query_as(SELECT_ORCHESTRATOR)
        .bind(orchestrator_id)
        .bind(ttl_secs)
        .fetch_optional(conn)
        .await
        .map_err(db_error)?;
    row.map(TryInto::try_into).transpose()
}

pub(crate) async fn pending_deliveries(
    conn: &mut PgConnection,
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
    conn: &mut PgConnection,
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

/// Session, independence and configuration of these orchestrators, in one query.
pub(crate) async fn supervision(
    pool: &sqlx::PgPool,
    orchestrator_ids: &[String],
) -> Result<Vec<Supervision>, StoreError> {
    let rows: Vec<(String, Option<String>, bool, i64, Value)> = sqlx::query_as(
        "SELECT orchestrator_id, session_id, is_independent, config_version, session_config \
         FROM orchestrator_instances WHERE orchestrator_id = ANY($1)",
    )
    .bind(orchestrator_ids)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    Ok(rows.into_iter().map(Supervision::from).collect())
}

/// Provisioning fields plus what the hello reports back about liveness.
#[derive(sqlx::FromRow)]
pub(crate) struct HelloRow {
    #[sqlx(flatten)]
    pub(crate) provisioning: ProvisioningRow,
    pub(crate) status: String,
    pub(crate) last_seen: Option<chrono::DateTime<chrono::Utc>>,
}

impl HelloRow {
    /// The hello's outcome, from the row it wrote.
    pub(crate) fn registered(
        self,
        previous_status: Option<Status>,
        pending_messages: Vec<DeliveredMessage>,
    ) -> Result<Registered, StoreError> {
        Ok(Registered {
            status: parse_status(&self.status)?,
            last_seen: self.last_seen,
            organization_id: self.provisioning.organization_id.clone(),
            provisioning: self.provisioning.into(),
            previous_status,
            pending_messages,
        })
    }
}

/// The organization a hello lands in, and the derived status before it (`None` for a new
/// orchestrator) from `existing` (its locked row's organization and status): an existing
/// orchestrator keeps its organization and a hello claiming another is refused; a new one
/// takes the organization claimed, else the default.
pub(crate) fn hello_organization(
    hello: &HelloRegistration,
    existing: Option<(&str, &str)>,
) -> Result<(String, Option<Status>), StoreError> {
    match (existing, &hello.organization_id) {
        (Some((existing_org, _)), Some(claimed)) if claimed != existing_org => {
            Err(StoreError::Conflict(format!(
                "orchestrator {} belongs to another organization",
                hello.orchestrator_id
            )))
        }
        (Some((existing_org, status)), _) => {
            Ok((existing_org.to_owned(), Some(parse_status(status)?)))
        }
        (None, Some(claimed)) => Ok((claimed.clone(), None)),
        (None, None) => Ok((hello.default_organization_id.clone(), None)),
    }
}

impl PgStore {
    pub(crate) async fn register_hello_tx(
        &self,
        hello: &HelloRegistration,
    ) -> Result<Registered, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;

        // Lock the existing row (if any) so the organization check and the status captured
        // before this hello cannot race another hello of the same orchestrator.
        let existing: Option<(String, String)> = sqlx::query_as(concat!(
            "SELECT o.organization_id, ",
            status_sql!("$2"),
            " FROM orchestrator_instances o WHERE o.orchestrator_id = $1 FOR UPDATE"
        ))
        .bind(&hello.orchestrator_id)
        .bind(self.ttl_secs)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;

        let (organization_id, previous_status) = hello_organization(
            hello,
            existing
                .as_ref()
                .map(|(org, status)| (org.as_str(), status.as_str())),
        )?;
        if let Some(credential_id) = &hello.credential_id {
            crate::credentials::check_for_hello(&mut tx, credential_id, &hello.orchestrator_id)
                .await?;
        }

        // An organization first named by a hello is created with its id as its name.
        let organization_name: String = sqlx::query_scalar(
            "WITH created AS ( \
                 INSERT INTO organizations (organization_id, name) VALUES ($1, $1) \
                 ON CONFLICT (organization_id) DO NOTHING RETURNING name) \
             SELECT name FROM created \
             UNION ALL SELECT name FROM organizations WHERE organization_id = $1 \
             LIMIT 1",
        )
        .bind(&organization_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;

        // The `WHERE` on the conflict branch refuses to move an orchestrator that another
        // hello created between our SELECT and this INSERT into a different organization.
        let row: Option<HelloRow> = sqlx::query_as(concat!(
            "INSERT INTO orchestrator_instances AS o (orchestrator_id, organization_id, \
                 organization_name, name, location, features, metadata, session_id, edge_id, \
                 disconnected_at, last_activity, last_seen, status, credential_id) \
             VALUES ($1, $2, $3, $4, $5, COALESCE($6::jsonb, '{}'::jsonb), $7, $8, $9, \
                 NULL, now(), now(), 'active', $11) \
             ON CONFLICT (orchestrator_id) DO UPDATE SET \
                 credential_id = EXCLUDED.credential_id, \
                 organization_name = EXCLUDED.organization_name, \
                 name = COALESCE($4, o.name), \
                 location = COALESCE($5, o.location), \
                 features = COALESCE($6::jsonb, o.features), \
                 metadata = EXCLUDED.metadata, \
                 session_id = EXCLUDED.session_id, \
                 edge_id = EXCLUDED.edge_id, \
",
            hello_liveness_set!(),
            " WHERE o.organization_id = EXCLUDED.organization_id \
             RETURNING o.orchestrator_id, o.organization_id, o.name, o.location, o.features, \
                 o.metadata, o.session_config, o.is_independent, o.privacy_mode, \
                 o.monitoring_enabled, o.config_version, o.last_seen, ",
            status_sql!("$10"),
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
        .bind(self.ttl_secs)
        .bind(hello.credential_id.as_deref())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Err(StoreError::Conflict(format!(
                "orchestrator {} belongs to another organization",
                hello.orchestrator_id
            )));
        };

        // The same session saying hello twice (a retried request) updates its row.
        sqlx::query(concat!(
            "INSERT INTO orchestrator_connections (connection_id, orchestrator_id, status, \
                 edge_id, remote_addr, metadata, last_seen, credential_id) \
             VALUES ($1, $2, 'connected', $3, $4, $5, now(), $6)",
            connection_upsert!()
        ))
        .bind(&hello.session_id)
        .bind(&hello.orchestrator_id)
        .bind(&hello.edge_id)
        .bind(hello.remote_addr.as_deref())
        .bind(Json(&hello.metadata))
        .bind(hello.credential_id.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;

        if existing.is_none() {
            audit::insert(&mut tx, &hello_audit(hello, &organization_id)).await?;
        }
        let pending_messages = pending_deliveries(&mut tx, &hello.orchestrator_id).await?;
        tx.commit().await.map_err(db_error)?;

        row.registered(previous_status, pending_messages)
    }

    pub(crate) async fn list_orchestrators_page(
        &self,
        q: &OrchestratorQuery,
    ) -> Result<Page<OrchestratorRecord>, StoreError> {
        let (page, page_size) = crate::page_bounds(q.page, q.page_size);
        let total = self.count_orchestrators_matching(q).await?;
        let items = self.orchestrator_items(q).await?;
        Ok(Page {
            items,
            total,
            page,
            page_size,
        })
    }

    pub(crate) async fn count_orchestrators_matching(
        &self,
        q: &OrchestratorQuery,
    ) -> Result<i64, StoreError> {
        self.filtered("SELECT count(*) FROM orchestrator_instances o", q)?
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)
    }

    /// One page without the count: walks the (organization, id) index in id order and stops
    /// at the page's end, so an early page reads a few rows, not every match.
    pub(crate) async fn orchestrator_items(
        &self,
        q: &OrchestratorQuery,
    ) -> Result<Vec<OrchestratorRecord>, StoreError> {
        let (page, page_size) = crate::page_bounds(q.page, q.page_size);
        let mut select = self.filtered(LISTING_SELECT, q)?;
        select
            .push(" ORDER BY o.orchestrator_id LIMIT ")
            .push_bind(i64::from(page_size))
            .push(" OFFSET ")
            .push_bind(crate::page_offset(page, page_size));
        self.fetch_records(select).await
    }

    /// `<select> WHERE <q's filters>`, the TTL bound as `$1`; `select` reads
    /// `orchestrator_instances o`.
    fn filtered(
        &self,
        select: &'static str,
        q: &OrchestratorQuery,
    ) -> Result<QueryBuilder<Postgres>, StoreError> {
        let mut qb = QueryBuilder::with_arguments(select, self.ttl_arguments()?);
        push_filters(&mut qb, q);
        Ok(qb)
    }

    async fn fetch_records(
        &self,
        mut select: QueryBuilder<Postgres>,
    ) -> Result<Vec<OrchestratorRecord>, StoreError> {
        let rows: Vec<OrchestratorRow> = select
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// The matching ids in listing order, if there are at most `limit`.
    pub(crate) async fn orchestrator_ids(
        &self,
        q: &OrchestratorQuery,
        limit: usize,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut select =
            self.filtered("SELECT o.orchestrator_id FROM orchestrator_instances o", q)?;
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

    /// The rows of `ids` that still match, in listing order: one primary-key lookup each.
    pub(crate) async fn orchestrators_by_ids(
        &self,
        q: &OrchestratorQuery,
        ids: &[String],
    ) -> Result<Vec<OrchestratorRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut select = self.filtered(LISTING_SELECT, q)?;
        select
            .push(" AND o.orchestrator_id = ANY(")
            .push_bind(ids)
            .push(") ORDER BY o.orchestrator_id");
        self.fetch_records(select).await
    }

    /// The row versions of [`Self::orchestrators_by_ids`]: the row's `xmin` (the transaction
    /// that wrote this version of it; every update writes a new version, and the version a
    /// reader sees is the last one its transaction wrote) and the derived status.
    pub(crate) async fn orchestrator_versions_by_ids(
        &self,
        q: &OrchestratorQuery,
        ids: &[String],
    ) -> Result<Vec<OrchestratorVersion>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut select = self.filtered(
            concat!(
                "SELECT o.orchestrator_id, o.xmin::text::int8, ",
                status_sql!("$1"),
                " FROM orchestrator_instances o"
            ),
            q,
        )?;
        select
            .push(" AND o.orchestrator_id = ANY(")
            .push_bind(ids)
            .push(") ORDER BY o.orchestrator_id");
        let rows: Vec<(String, i64, String)> = select
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.into_iter()
            .map(|(orchestrator_id, version, status)| {
                Ok(OrchestratorVersion {
                    orchestrator_id,
                    version,
                    status: crate::rows::parse_status(&status)?,
                })
            })
            .collect()
    }

    /// Every orchestrator's version and status facts, in no particular order, and the
    /// database's next transaction id and clock, read just before.
    pub(crate) async fn all_orchestrator_facts(&self) -> Result<FleetFacts, StoreError> {
        let (next_transaction, database_now): (i64, chrono::DateTime<chrono::Utc>) =
            sqlx::query_as("SELECT txid_snapshot_xmax(txid_current_snapshot()), now()")
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
        let orchestrators = sqlx::query(
            "SELECT orchestrator_id, organization_id, xmin::text::int8, last_seen, \
                 is_independent, disconnected_at IS NOT NULL FROM orchestrator_instances",
        )
        .try_map(|row: PgRow| {
            Ok(OrchestratorFacts {
                orchestrator_id: row.try_get(0)?,
                organization_id: row.try_get(1)?,
                version: row.try_get(2)?,
                last_seen: row.try_get(3)?,
                is_independent: row.try_get(4)?,
                disconnected: row.try_get(5)?,
            })
        })
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(FleetFacts {
            next_transaction,
            database_now,
            orchestrators,
        })
    }

    /// Arguments starting with the TTL as `$1`, for builders whose SQL uses `status_sql!("$1")`.
    fn ttl_arguments(&self) -> Result<PgArguments, StoreError> {
        let mut args = PgArguments::default();
        args.add(self.ttl_secs)
            .map_err(|e| StoreError::Other(format!("binding the heartbeat TTL: {e}")))?;
        Ok(args)
    }

    pub(crate) async fn register_orchestrator_tx(
        &self,
        new: &NewOrchestrator,
        actor: &Actor,
    ) -> Result<OrchestratorRecord, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;

        // FOR SHARE keeps the organization from being deleted until we commit.
        let organization_name: Option<String> = sqlx::query_scalar(
            "SELECT name FROM organizations WHERE organization_id = $1 FOR SHARE",
        )
        .bind(&new.organization_id)
        .fetch_optional(&mut *tx)
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
                 organization_name, name, location, features, session_config, metadata) \
             VALUES ($1, $2, $3, $4, $5, COALESCE($6::jsonb, '{}'::jsonb), \
                 COALESCE($7::jsonb, '{}'::jsonb), COALESCE($8::jsonb, '{}'::jsonb)) \
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
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "orchestrator {} already exists",
                new.orchestrator_id
            )));
        }

        audit::insert(
            &mut tx,
            &audit::entry(
                actor,
                "orchestrator.register",
                format!("orchestrator:{}", new.orchestrator_id),
                Some(new.organization_id.clone()),
                json!({ "name": new.name, "location": new.location }),
            ),
        )
        .await?;

        let record = fetch(&mut tx, &new.orchestrator_id, self.ttl_secs)
            .await?
            .ok_or_else(|| StoreError::Other("registered orchestrator vanished".into()))?;
        tx.commit().await.map_err(db_error)?;
        Ok(record)
    }

    pub(crate) async fn deregister_orchestrator_tx(
        &self,
        orchestrator_id: &str,
        actor: &Actor,
    ) -> Result<Option<OrchestratorRecord>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;

        let locked: Option<String> = sqlx::query_scalar(
            "SELECT orchestrator_id FROM orchestrator_instances WHERE orchestrator_id = $1 FOR UPDATE",
        )
        .bind(orchestrator_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if locked.is_none() {
            return Ok(None);
        }
        let Some(record) = fetch(&mut tx, orchestrator_id, self.ttl_secs).await? else {
            return Ok(None);
        };

        sqlx::query("DELETE FROM orchestrator_connections WHERE orchestrator_id = $1")
            .bind(orchestrator_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("DELETE FROM orchestrator_instances WHERE orchestrator_id = $1")
            .bind(orchestrator_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(
            "UPDATE orchestrator_credentials SET revoked_at = now() \
             WHERE kind = 'orchestrator' AND orchestrator_id = $1 AND revoked_at IS NULL",
        )
        .bind(orchestrator_id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        audit::insert(
            &mut tx,
            &audit::entry(
                actor,
                "orchestrator.deregister",
                format!("orchestrator:{orchestrator_id}"),
                Some(record.organization_id.clone()),
                json!({ "name": record.name }),
            ),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(record))
    }

    pub(crate) async fn set_independence_tx(
        &self,
        orchestrator_id: &str,
        is_independent: bool,
        actor: &Actor,
    ) -> Result<Option<IndependenceChange>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;

        let current: Option<(bool, String)> = sqlx::query_as(
            "SELECT is_independent, organization_id FROM orchestrator_instances \
             WHERE orchestrator_id = $1 FOR UPDATE",
        )
        .bind(orchestrator_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some((previous, organization_id)) = current else {
            return Ok(None);
        };

        // Switching off stores the status the facts give (heartbeats were not recorded while
        // independent, so it is usually inactive until the next one).
        sqlx::query(concat!(
            "UPDATE orchestrator_instances o SET is_independent = $2, \
                 status = CASE WHEN $2 THEN 'independent' \
                               WHEN ",
            alive_sql!("$3"),
            " THEN 'active' ELSE 'inactive' END, \
                 updated_at = now() \
             WHERE o.orchestrator_id = $1"
        ))
        .bind(orchestrator_id)
        .bind(is_independent)
        .bind(self.ttl_secs)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;

        audit::insert(
            &mut tx,
            &audit::entry(
                actor,
                "orchestrator.independence",
                format!("orchestrator:{orchestrator_id}"),
                Some(organization_id),
                json!({ "is_independent": is_independent, "previous": previous }),
            ),
        )
        .await?;

        let record = fetch(&mut tx, orchestrator_id, self.ttl_secs)
            .await?
            .ok_or_else(|| StoreError::Other("orchestrator vanished while locked".into()))?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(IndependenceChange { previous, record }))
    }

    pub(crate) async fn update_session_config_tx(
        &self,
        orchestrator_id: &str,
        session_config: &Value,
        actor: &Actor,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let updated: Option<(i64, String)> = sqlx::query_as(
            "UPDATE orchestrator_instances SET session_config = $2, \
                 config_version = config_version + 1, updated_at = now() \
             WHERE orchestrator_id = $1 RETURNING config_version, organization_id",
        )
        .bind(orchestrator_id)
        .bind(session_config)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some((config_version, organization_id)) = updated else {
            return Ok(None);
        };
        audit::insert(
            &mut tx,
            &audit::entry(
                actor,
                "orchestrator.config_update",
                format!("orchestrator:{orchestrator_id}"),
                Some(organization_id),
                json!({ "config_version": config_version }),
            ),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(config_version))
    }

    pub(crate) async fn update_metadata_row(
        &self,
        orchestrator_id: &str,
        metadata: &Map<String, Value>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE orchestrator_instances SET metadata = metadata || $2::jsonb, \
                 last_activity = now(), updated_at = now() \
             WHERE orchestrator_id = $1",
        )
        .bind(orchestrator_id)
        .bind(Json(metadata))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn save_config_snapshot_row(
        &self,
        orchestrator_id: &str,
        snapshot: &Value,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE orchestrator_instances SET config_snapshot = $2, \
                 config_snapshot_at = now(), updated_at = now() \
             WHERE orchestrator_id = $1",
        )
        .bind(orchestrator_id)
        .bind(snapshot)
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

/// The audit entry of an orchestrator that registered itself with a hello.
pub(crate) fn hello_audit(
    hello: &HelloRegistration,
    organization_id: &str,
) -> moolai_store::AuditEntry {
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

/// `WHERE` clause of the orchestrator listing; the builder's `$1` is the TTL.
fn push_filters(qb: &mut QueryBuilder<Postgres>, q: &OrchestratorQuery) {
    qb.push(" WHERE TRUE");
    if let Some(status) = q.status {
        qb.push(concat!(" AND ", status_sql!("$1"), " = "))
            .push_bind(status.as_str());
    }
    if let Some(organization_id) = &q.organization_id {
        qb.push(" AND o.organization_id = ")
            .push_bind(organization_id.clone());
    }
    crate::sql::push_scope(qb, "o.organization_id", q.scope.as_deref());
    if let Some(search) = q.search.as_deref().filter(|s| !s.is_empty()) {
        let pattern = format!("%{}%", escape_like(search));
        qb.push(" AND (o.orchestrator_id ILIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR o.name ILIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR o.organization_id ILIKE ")
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
