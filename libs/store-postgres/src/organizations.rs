//! Organizations, with their orchestrator counts derived per page (one lateral aggregate over
//! the organization index per listed organization, never a scan of the whole fleet).

use moolai_store::{Actor, NewOrganization, OrganizationRecord, Page, StoreError};
use serde_json::json;

use crate::error::db_error;
use crate::rows::OrganizationRow;
use crate::sql::alive_sql;
use crate::{PgStore, audit};

/// `g` is the organization; the TTL is `$1`.
macro_rules! organization_select {
    () => {
        concat!(
            "SELECT g.organization_id, g.name, g.location, g.is_independent, g.is_active, \
                 g.metadata, g.features, g.settings, g.created_at, g.updated_at, \
                 COALESCE(c.total, 0) AS orchestrator_count, \
                 COALESCE(c.active, 0) AS active_orchestrators, \
                 CASE WHEN COALESCE(c.active, 0) > 0 THEN 'active' ELSE 'inactive' END AS status \
             FROM organizations g \
             LEFT JOIN LATERAL ( \
                 SELECT count(*) AS total, \
                     count(*) FILTER (WHERE NOT o.is_independent AND ",
            alive_sql!("$1"),
            ") AS active \
                 FROM orchestrator_instances o WHERE o.organization_id = g.organization_id \
             ) c ON TRUE "
        )
    };
}

impl PgStore {
    pub(crate) async fn organizations_page(
        &self,
        page: u32,
        page_size: u32,
        scope: Option<&[String]>,
    ) -> Result<Page<OrganizationRecord>, StoreError> {
        let (page, page_size) = crate::page_bounds(page, page_size);
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM organizations \
             WHERE $1::text[] IS NULL OR organization_id = ANY($1)",
        )
        .bind(scope)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        let rows: Vec<OrganizationRow> = sqlx::query_as(concat!(
            organization_select!(),
            "WHERE $4::text[] IS NULL OR g.organization_id = ANY($4) \
             ORDER BY g.organization_id LIMIT $2 OFFSET $3"
        ))
        .bind(self.ttl_secs)
        .bind(i64::from(page_size))
        .bind(crate::page_offset(page, page_size))
        .bind(scope)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(Page {
            items: rows.into_iter().map(Into::into).collect(),
            total,
            page,
            page_size,
        })
    }

    pub(crate) async fn organization(
        &self,
        organization_id: &str,
    ) -> Result<Option<OrganizationRecord>, StoreError> {
        let row: Option<OrganizationRow> = sqlx::query_as(concat!(
            organization_select!(),
            "WHERE g.organization_id = $2"
        ))
        .bind(self.ttl_secs)
        .bind(organization_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.map(Into::into))
    }

    pub(crate) async fn create_organization_tx(
        &self,
        new: &NewOrganization,
        actor: &Actor,
    ) -> Result<OrganizationRecord, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let inserted = sqlx::query(
            "INSERT INTO organizations (organization_id, name, location, metadata, features, settings) \
             VALUES ($1, $2, $3, COALESCE($4::jsonb, '{}'::jsonb), \
                 COALESCE($5::jsonb, '{}'::jsonb), COALESCE($6::jsonb, '{}'::jsonb)) \
             ON CONFLICT (organization_id) DO NOTHING",
        )
        .bind(&new.organization_id)
        .bind(&new.name)
        .bind(new.location.as_deref())
        .bind(new.metadata.as_ref())
        .bind(new.features.as_ref())
        .bind(new.settings.as_ref())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "organization {} already exists",
                new.organization_id
            )));
        }
        audit::insert(
            &mut tx,
            &audit::entry(
                actor,
                "organization.create",
                format!("organization:{}", new.organization_id),
                Some(new.organization_id.clone()),
                json!({ "name": new.name }),
            ),
        )
        .await?;
        let row: OrganizationRow = sqlx::query_as(concat!(
            organization_select!(),
            "WHERE g.organization_id = $2"
        ))
        .bind(self.ttl_secs)
        .bind(&new.organization_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(row.into())
    }
}
