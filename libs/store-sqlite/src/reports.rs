//! Usage rows and the reports built from them: the fleet overview and the cost breakdown.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use moolai_store::{
    CostBucket, CostPoint, CostQuery, CostReport, Granularity, Overview, StoreError, UsageTotals,
    UsageWrite,
};
use serde_json::{Value, json};

use crate::error::db_error;
use crate::sql::alive_sql;
use crate::{SqliteStore, time};

#[derive(sqlx::FromRow)]
struct OverviewRow {
    total_organizations: i64,
    total_orchestrators: i64,
    active_orchestrators: i64,
    independent_orchestrators: i64,
    total_users: i64,
    pending_messages: i64,
    cost_this_month: f64,
    requests_this_month: i64,
    tokens_this_month: i64,
}

/// Totals of one group of usage rows.
#[derive(sqlx::FromRow)]
struct TotalsRow {
    requests: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost: f64,
}

impl From<TotalsRow> for UsageTotals {
    fn from(r: TotalsRow) -> Self {
        Self {
            requests: r.requests,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            total_tokens: r.input_tokens + r.output_tokens,
            cost: r.cost,
        }
    }
}

#[derive(sqlx::FromRow)]
struct BucketRow {
    key: String,
    #[sqlx(flatten)]
    totals: TotalsRow,
}

#[derive(sqlx::FromRow)]
struct PointRow {
    period_start: DateTime<Utc>,
    #[sqlx(flatten)]
    totals: TotalsRow,
}

/// The aggregate columns of a [`TotalsRow`]. `total()` is SQLite's sum that is always a
/// float (0.0 for no rows), like PostgreSQL's `COALESCE(sum(cost), 0)::float8`.
macro_rules! totals_columns {
    () => {
        "COALESCE(sum(requests), 0) AS requests, \
         COALESCE(sum(input_tokens), 0) AS input_tokens, \
         COALESCE(sum(output_tokens), 0) AS output_tokens, \
         total(cost) AS cost"
    };
}

/// Rows of the report: `[$1, $2)`, optional organization `$3`, orchestrator `$4` and
/// organization scope `$5` (a JSON array).
macro_rules! usage_in_range {
    () => {
        " FROM usage_records \
          WHERE reported_at >= $1 AND reported_at < $2 \
            AND ($3 IS NULL OR organization_id = $3) \
            AND ($4 IS NULL OR orchestrator_id = $4) \
            AND ($5 IS NULL OR organization_id IN (SELECT value FROM json_each($5))) "
    };
}

/// The start of the period holding `reported_at`, as PostgreSQL's `date_trunc($6,
/// reported_at, 'UTC')` gives it, for the unit `$6` (`day`, `week` or `month`). Weeks start on
/// Monday (ISO): SQLite's `weekday 0` moves to the next Sunday (or stays on one), six days
/// back is that week's Monday. The stored text starts with the UTC date, so days and months
/// are its prefix.
macro_rules! period_start {
    () => {
        "(CASE $6 \
             WHEN 'day' THEN substr(reported_at, 1, 10) \
             WHEN 'week' THEN date(reported_at, 'weekday 0', '-6 days') \
             ELSE substr(reported_at, 1, 7) || '-01' END) || 'T00:00:00.000000Z'"
    };
}

/// How many orchestrators the report lists by name; the rest only count in the totals.
const TOP_ORCHESTRATORS: i64 = 100;

/// Midnight UTC on the first day of `now`'s month.
fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

impl SqliteStore {
    /// One statement for the whole batch: the rows travel as one JSON array read by
    /// `json_each` (SQLite has no array parameters; a multi-row VALUES would run into the
    /// bound-parameter limit on large batches).
    pub(crate) async fn insert_usage(&self, rows: &[UsageWrite]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut batch = Vec::with_capacity(rows.len());
        for row in rows {
            // JSON has no NaN or infinity (serde_json would write null).
            if !row.cost.is_finite() {
                return Err(StoreError::Invalid(format!(
                    "usage cost {} is not a number",
                    row.cost
                )));
            }
            batch.push(json!({
                "orchestrator_id": row.orchestrator_id,
                "organization_id": row.organization_id,
                "model": row.model,
                "requests": row.requests,
                "input_tokens": row.input_tokens,
                "output_tokens": row.output_tokens,
                "cost": row.cost,
                "reported_at": time::encode(row.reported_at)?,
            }));
        }
        let batch = Value::Array(batch).to_string();
        let _gate = self.write_gate().await?;
        sqlx::query(
            "INSERT INTO usage_records (orchestrator_id, organization_id, model, requests, \
                 input_tokens, output_tokens, cost, reported_at) \
             SELECT value ->> '$.orchestrator_id', value ->> '$.organization_id', \
                 value ->> '$.model', value ->> '$.requests', value ->> '$.input_tokens', \
                 value ->> '$.output_tokens', value ->> '$.cost', value ->> '$.reported_at' \
             FROM json_each($1)",
        )
        .bind(&batch)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    pub(crate) async fn overview_row(
        &self,
        scope: Option<&[String]>,
    ) -> Result<Overview, StoreError> {
        let now = time::now();
        // `$3` is the scope (a JSON array), NULL for every organization.
        let row: OverviewRow = sqlx::query_as(concat!(
            "SELECT \
                 (SELECT count(*) FROM organizations \
                  WHERE $3 IS NULL OR organization_id IN (SELECT value FROM json_each($3)) \
                 ) AS total_organizations, \
                 f.total AS total_orchestrators, \
                 f.active AS active_orchestrators, \
                 f.independent AS independent_orchestrators, \
                 (SELECT count(*) FROM users u WHERE $3 IS NULL \
                  OR EXISTS (SELECT 1 FROM json_each(u.organization_ids) a \
                             WHERE a.value IN (SELECT value FROM json_each($3))) \
                 ) AS total_users, \
                 (SELECT count(*) FROM orchestrator_messages m \
                  LEFT JOIN orchestrator_instances i ON i.orchestrator_id = m.orchestrator_id \
                  WHERE m.status = 'pending' AND NOT COALESCE(i.is_independent, FALSE) \
                    AND ($3 IS NULL OR m.organization_id IN (SELECT value FROM json_each($3))) \
                 ) AS pending_messages, \
                 u.cost AS cost_this_month, \
                 u.requests AS requests_this_month, \
                 u.tokens AS tokens_this_month \
             FROM ( \
                 SELECT count(*) AS total, \
                     count(*) FILTER (WHERE NOT o.is_independent AND ",
            alive_sql!("$1"),
            ") AS active, \
                     count(*) FILTER (WHERE o.is_independent) AS independent \
                 FROM orchestrator_instances o \
                 WHERE $3 IS NULL OR o.organization_id IN (SELECT value FROM json_each($3))) f, \
             ( \
                 SELECT total(cost) AS cost, \
                     COALESCE(sum(requests), 0) AS requests, \
                     COALESCE(sum(input_tokens + output_tokens), 0) AS tokens \
                 FROM usage_records \
                 WHERE reported_at >= $2 \
                   AND ($3 IS NULL OR organization_id IN (SELECT value FROM json_each($3))) \
             ) u"
        ))
        .bind(self.cutoff(now))
        .bind(time::encode_bound(month_start(now)))
        .bind(crate::accounts::scope_json(scope))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(Overview {
            total_organizations: row.total_organizations,
            total_orchestrators: row.total_orchestrators,
            active_orchestrators: row.active_orchestrators,
            inactive_orchestrators: row.total_orchestrators
                - row.active_orchestrators
                - row.independent_orchestrators,
            independent_orchestrators: row.independent_orchestrators,
            total_users: row.total_users,
            pending_messages: row.pending_messages,
            cost_this_month: row.cost_this_month,
            requests_this_month: row.requests_this_month,
            tokens_this_month: row.tokens_this_month,
        })
    }

    pub(crate) async fn cost_report(&self, q: &CostQuery) -> Result<CostReport, StoreError> {
        // Fixed strings chosen here, bound as a parameter: nothing the caller typed reaches
        // the SQL text.
        let unit = match q.granularity {
            Granularity::Day => "day",
            Granularity::Week => "week",
            Granularity::Month => "month",
        };
        let from = time::encode_bound(q.from);
        let to = time::encode_bound(q.to);
        let scope = crate::accounts::scope_json(q.scope.as_deref());
        // One read transaction for the five queries: in WAL mode it reads one snapshot, so
        // the parts add up to the totals (PostgreSQL's REPEATABLE READ READ ONLY).
        let mut tx = self.pool.begin().await.map_err(db_error)?;

        let totals: TotalsRow =
            sqlx::query_as(concat!("SELECT ", totals_columns!(), usage_in_range!()))
                .bind(&from)
                .bind(&to)
                .bind(q.organization_id.as_deref())
                .bind(q.orchestrator_id.as_deref())
                .bind(scope.as_deref())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;

        let by_organization: Vec<BucketRow> = sqlx::query_as(concat!(
            "SELECT organization_id AS key, ",
            totals_columns!(),
            usage_in_range!(),
            "GROUP BY organization_id ORDER BY cost DESC, key"
        ))
        .bind(&from)
        .bind(&to)
        .bind(q.organization_id.as_deref())
        .bind(q.orchestrator_id.as_deref())
        .bind(scope.as_deref())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;

        let by_orchestrator: Vec<BucketRow> = sqlx::query_as(concat!(
            "SELECT orchestrator_id AS key, ",
            totals_columns!(),
            usage_in_range!(),
            "GROUP BY orchestrator_id ORDER BY cost DESC, key LIMIT $6"
        ))
        .bind(&from)
        .bind(&to)
        .bind(q.organization_id.as_deref())
        .bind(q.orchestrator_id.as_deref())
        .bind(scope.as_deref())
        .bind(TOP_ORCHESTRATORS)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;

        let by_model: Vec<BucketRow> = sqlx::query_as(concat!(
            "SELECT COALESCE(model, 'unknown') AS key, ",
            totals_columns!(),
            usage_in_range!(),
            "GROUP BY 1 ORDER BY cost DESC, key"
        ))
        .bind(&from)
        .bind(&to)
        .bind(q.organization_id.as_deref())
        .bind(q.orchestrator_id.as_deref())
        .bind(scope.as_deref())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;

        let series: Vec<PointRow> = sqlx::query_as(concat!(
            "SELECT ",
            period_start!(),
            " AS period_start, ",
            totals_columns!(),
            usage_in_range!(),
            "GROUP BY 1 ORDER BY 1"
        ))
        .bind(&from)
        .bind(&to)
        .bind(q.organization_id.as_deref())
        .bind(q.orchestrator_id.as_deref())
        .bind(scope.as_deref())
        .bind(unit)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;

        let bucket = |r: BucketRow| CostBucket {
            key: r.key,
            totals: r.totals.into(),
        };
        Ok(CostReport {
            from: q.from,
            to: q.to,
            granularity: q.granularity,
            totals: totals.into(),
            by_organization: by_organization.into_iter().map(bucket).collect(),
            by_orchestrator: by_orchestrator.into_iter().map(bucket).collect(),
            by_model: by_model.into_iter().map(bucket).collect(),
            series: series
                .into_iter()
                .map(|r| CostPoint {
                    period_start: r.period_start,
                    totals: r.totals.into(),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_starts_at_midnight_utc_on_the_first() {
        let t = Utc
            .with_ymd_and_hms(2025, 2, 28, 23, 59, 59)
            .single()
            .expect("valid");
        assert_eq!(
            month_start(t),
            Utc.with_ymd_and_hms(2025, 2, 1, 0, 0, 0)
                .single()
                .expect("valid")
        );
    }
}
