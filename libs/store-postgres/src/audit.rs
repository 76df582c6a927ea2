//! The append-only audit log. [`insert`] takes a connection so writes that are audited can
//! put the audit row in their own transaction.

use moolai_store::{Actor, AuditEntry, AuditQuery, AuditRecord, Page, StoreError};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use crate::error::db_error;
use crate::rows::AuditRow;

/// Writes one audit row.
pub(crate) async fn insert(conn: &mut PgConnection, entry: &AuditEntry) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (actor, client_addr, action, target, organization_id, details, success) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&entry.actor.name)
    .bind(entry.actor.client_addr.as_deref())
    .bind(&entry.action)
    .bind(entry.target.as_deref())
    .bind(entry.organization_id.as_deref())
    .bind(&entry.details)
    .bind(entry.success)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Many entries in one statement (nothing to do for none).
pub(crate) async fn insert_many(
    conn: &mut PgConnection,
    entries: &[AuditEntry],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut qb = QueryBuilder::<Postgres>::new(
        "INSERT INTO audit_log (actor, client_addr, action, target, organization_id, details, success) ",
    );
    qb.push_values(entries, |mut row, entry| {
        row.push_bind(&entry.actor.name)
            .push_bind(entry.actor.client_addr.as_deref())
            .push_bind(&entry.action)
            .push_bind(entry.target.as_deref())
            .push_bind(entry.organization_id.as_deref())
            .push_bind(&entry.details)
            .push_bind(entry.success);
    });
    qb.build().execute(conn).await.map_err(db_error)?;
    Ok(())
}

/// Shorthand for the successful operator actions the store audits itself.
pub(crate) fn entry(
    actor: &Actor,
    action: &str,
    target: String,
    organization_id: Option<String>,
    details: Value,
) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action: action.to_owned(),
        target: Some(target),
        organization_id,
        details,
        success: true,
    }
}

fn push_filters(qb: &mut QueryBuilder<Postgres>, q: &AuditQuery) {
    qb.push(" WHERE TRUE");
    if let Some(action) = &q.action {
        qb.push(" AND action = ").push_bind(action.clone());
    }
    if let Some(actor) = &q.actor {
        qb.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(target) = &q.target {
        qb.push(" AND target = ").push_bind(target.clone());
    }
    if let Some(organization_id) = &q.organization_id {
        qb.push(" AND organization_id = ")
            .push_bind(organization_id.clone());
    }
    if let Some(from) = q.from {
        qb.push(" AND at >= ").push_bind(from);
    }
    if let Some(to) = q.to {
        qb.push(" AND at < ").push_bind(to);
    }
    if let Some(success) = q.success {
        qb.push(" AND success = ").push_bind(success);
    }
    // Entries without an organization (logins, users, API tokens) are not any scoped
    // reader's business.
    crate::sql::push_scope(qb, "organization_id", q.scope.as_deref());
}

pub(crate) async fn list(pool: &PgPool, q: &AuditQuery) -> Result<Page<AuditRecord>, StoreError> {
    let (page, page_size) = crate::page_bounds(q.page, q.page_size);

    let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM audit_log");
    push_filters(&mut count, q);
    let total: i64 = count
        .build_query_scalar()
        .fetch_one(pool)
        .await
        .map_err(db_error)?;

    let mut select = QueryBuilder::<Postgres>::new(
        "SELECT id, at, actor, client_addr, action, target, organization_id, details, success \
         FROM audit_log",
    );
    push_filters(&mut select, q);
    select
        .push(" ORDER BY at DESC, id DESC LIMIT ")
        .push_bind(i64::from(page_size))
        .push(" OFFSET ")
        .push_bind(crate::page_offset(page, page_size));
    let rows: Vec<AuditRow> = select
        .build_query_as()
        .fetch_all(pool)
        .await
        .map_err(db_error)?;

    Ok(Page {
        items: rows.into_iter().map(Into::into).collect(),
        total,
        page,
        page_size,
    })
}
