//! Organizations, with their orchestrator counts derived per listed organization (correlated
//! counts over the organization index, SQLite's form of PostgreSQL's lateral aggregate; never a
//! scan of the whole fleet). The status (active when one of them is) is derived from the count
//! in [`crate::rows`].

use moolai_store::{Actor, NewOrganization, OrganizationRecord, Page, StoreError};
use serde_json::json;

use crate::error::db_error;
use crate::rows::OrganizationRow;
use crate::sql::alive_sql;
use crate::{SqliteStore, audit, time};

/// `g` is the organization; the cutoff is `$1`.
macro_rules! organization_select {
    () => {
        concat!(
            "SELECT g.organization_id, g.name, g.location, g.is_independent, g.is_active, \
                 g.metadata, g.features, g.settings, g.created_at, g.updated_at, \
                 (SELECT count(*) FROM orchestrator_instances o \
                  WHERE o.organization_id = g.organization_id) AS orchestrator_count, \
                 (SELECT count(*) FROM orchestrator_instances o \
                  WHERE o.organization_id = g.organization_id AND NOT o.is_independent AND ",
            alive_sql!("$1"),
            ") AS active_orchestrators \
             FROM organizations g "
        )
    };
}

impl SqliteStore {
    pub(crate) async fn organizations_page(
        &self,
        page: u32,
        page_size: u32,
        scope: Option<&[String]>,
    ) -> Result<Page<OrganizationRecord>, StoreError> {
        let (page, page_size) = crate::page_bounds(page, page_size);
        let scope = crate::accounts::scope_json(scope);
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM organizations \
             WHERE $1 IS NULL OR organization_id IN (SELECT value FROM json_each($1))",
        )
        .bind(scope.as_deref())
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        let rows: Vec<OrganizationRow> = sqlx::query_as(concat!(
            organization_select!(),
            "WHERE $4 IS NULL OR g.organization_id IN (SELECT value FROM json_each($4)) \
             ORDER BY g.organization_id LIMIT $2 OFFSET $3"
        ))
        .bind(self.cutoff(time::now()))
        .bind(i64::from(page_size))
        .bind(crate::page_offset(page, page_size))
        .bind(scope.as_deref())
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
        .bind(self.cutoff(time::now()))
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
        let now = time::now();
        let mut w = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO organizations (organization_id, name, location, metadata, features, \
                 settings, created_at, updated_at) \
             VALUES ($1, $2, $3, COALESCE($4, '{}'), COALESCE($5, '{}'), COALESCE($6, '{}'), \
                 $7, $7) \
             ON CONFLICT (organization_id) DO NOTHING",
        )
        .bind(&new.organization_id)
        .bind(&new.name)
        .bind(new.location.as_deref())
        .bind(new.metadata.as_ref())
        .bind(new.features.as_ref())
        .bind(new.settings.as_ref())
        .bind(time::encode(now)?)
        .execute(&mut *w.tx)
        .await
        .map_err(db_error)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "organization {} already exists",
                new.organization_id
            )));
        }
        audit::insert(
            &mut w.tx,
            &audit::entry(
                actor,
                "organization.create",
                format!("organization:{}", new.organization_id),
                Some(new.organization_id.clone()),
                json!({ "name": new.name }),
            ),
            &now,
        )
        .await?;
        let row: OrganizationRow = sqlx::query_as(concat!(
            organization_select!(),
            "WHERE g.organization_id = $2"
        ))
        .bind(self.cutoff(now))
        .bind(&new.organization_id)
        .fetch_one(&mut *w.tx)
        .await
        .map_err(db_error)?;
        w.commit().await?;
        Ok(row.into())
    }
}
