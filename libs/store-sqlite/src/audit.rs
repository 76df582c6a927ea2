//! The append-only audit log. [`insert`] takes a connection so writes that are audited can
//! put the audit row in their own transaction.

use chrono::{DateTime, Utc};
use moolai_store::{Actor, AuditEntry, AuditQuery, AuditRecord, Page, StoreError};
use serde_json::Value;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use crate::error::db_error;
use crate::rows::AuditRow;
use crate::time;

/// Writes one audit row stamped `at`. The caller holds the write gate.
pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    entry: &AuditEntry,
    at: &DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, client_addr, action, target, organization_id, \
             details, success) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(time::encode(*at)?)
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

fn push_filters(qb: &mut QueryBuilder<Sqlite>, q: &AuditQuery) {
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
        qb.push(" AND at >= ").push_bind(time::encode_bound(from));
    }
    if let Some(to) = q.to {
        qb.push(" AND at < ").push_bind(time::encode_bound(to));
    }
    if let Some(success) = q.success {
        qb.push(" AND success = ").push_bind(success);
    }
    // Entries without an organization (logins, users, API tokens) are not any scoped
    // reader's business.
    if let Some(scope) = crate::accounts::scope_json(q.scope.as_deref()) {
        qb.push(" AND organization_id IN (SELECT value FROM json_each(")
            .push_bind(scope)
            .push("))");
    }
}

pub(crate) async fn list(
    pool: &SqlitePool,
    q: &AuditQuery,
) -> Result<Page<AuditRecord>, StoreError> {
    let (page, page_size) = crate::page_bounds(q.page, q.page_size);

    let mut count = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM audit_log");
    push_filters(&mut count, q);
    let total: i64 = count
        .build_query_scalar()
        .fetch_one(pool)
        .await
        .map_err(db_error)?;

    let mut select = QueryBuilder::<Sqlite>::new(
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
