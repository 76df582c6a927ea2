//! Usage rows and the reports built from them: the fleet overview and the cost breakdown.

use chrono::{DateTime, Utc};
use moolai_store::{
    CostBucket, CostPoint, CostQuery, CostReport, Granularity, Overview, StoreError, UsageTotals,
    UsageWrite,
};

use sqlx::{Postgres, QueryBuilder};

use crate::PgStore;
use crate::error::db_error;
use crate::sql::alive_sql;

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

/// The aggregate columns of a [`TotalsRow`].
macro_rules! totals_columns {
    () => {
        "COALESCE(sum(requests), 0)::int8 AS requests, \
         COALESCE(sum(input_tokens), 0)::int8 AS input_tokens, \
         COALESCE(sum(output_tokens), 0)::int8 AS output_tokens, \
         COALESCE(sum(cost), 0)::float8 AS cost"
    };
}

/// `SELECT <select> FROM usage_records WHERE <range and the filters the query has> <tail>`.
/// Only present filters are written: a filter written as `$n IS NULL OR organization_id = $n`
/// gets a generic plan once the statement is prepared, which cannot use the organization
/// index (an organization's month took ~300 ms at 500,000 usage rows, scanning them all).
fn usage_query(q: &CostQuery, select: &str, tail: &str) -> QueryBuilder<Postgres> {
    let mut qb = QueryBuilder::new("SELECT ");
    qb.push(select)
        .push(" FROM usage_records WHERE reported_at >= ")
        .push_bind(q.from)
        .push(" AND reported_at < ")
        .push_bind(q.to);
    if let Some(organization_id) = &q.organization_id {
        qb.push(" AND organization_id = ")
            .push_bind(organization_id.as_str());
    }
    if let Some(orchestrator_id) = &q.orchestrator_id {
        qb.push(" AND orchestrator_id = ")
            .push_bind(orchestrator_id.as_str());
    }
    if let Some(scope) = &q.scope {
        qb.push(" AND organization_id = ANY(")
            .push_bind(scope.as_slice())
            .push(")");
    }
    qb.push(" ").push(tail);
    qb
}

/// How many orchestrators the report lists by name; the rest only count in the totals.
const TOP_ORCHESTRATORS: i64 = 100;

impl PgStore {
    pub(crate) async fn insert_usage(&self, rows: &[UsageWrite]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut orchestrators = Vec::with_capacity(rows.len());
        let mut organizations = Vec::with_capacity(rows.len());
        let mut models = Vec::with_capacity(rows.len());
        let mut requests = Vec::with_capacity(rows.len());
        let mut input_tokens = Vec::with_capacity(rows.len());
        let mut output_tokens = Vec::with_capacity(rows.len());
        let mut costs = Vec::with_capacity(rows.len());
        let mut reported = Vec::with_capacity(rows.len());
        for row in rows {
            orchestrators.push(row.orchestrator_id.as_str());
            organizations.push(row.organization_id.as_str());
            models.push(row.model.as_deref());
            requests.push(row.requests);
            input_tokens.push(row.input_tokens);
            output_tokens.push(row.output_tokens);
            costs.push(row.cost);
            reported.push(row.reported_at);
        }
        sqlx::query(
            "INSERT INTO usage_records (orchestrator_id, organization_id, model, requests, \
                 input_tokens, output_tokens, cost, reported_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], \
                 $6::int8[], $7::float8[], $8::timestamptz[])",
        )
        .bind(&orchestrators)
        .bind(&organizations)
        .bind(&models)
        .bind(&requests)
        .bind(&input_tokens)
        .bind(&output_tokens)
        .bind(&costs)
        .bind(&reported)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    pub(crate) async fn overview_row(
        &self,
        scope: Option<&[String]>,
    ) -> Result<Overview, StoreError> {
        // `$2` is the scope: NULL for every organization.
        let row: OverviewRow = sqlx::query_as(concat!(
            "SELECT \
                 (SELECT count(*) FROM organizations \
                  WHERE $2::text[] IS NULL OR organization_id = ANY($2)) AS total_organizations, \
                 f.total AS total_orchestrators, \
                 f.active AS active_orchestrators, \
                 f.independent AS independent_orchestrators, \
                 (SELECT count(*) FROM users u WHERE $2::text[] IS NULL \
                  OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(u.organization_ids) a \
                             WHERE a = ANY($2))) AS total_users, \
                 (SELECT count(*) FROM orchestrator_messages m \
                  LEFT JOIN orchestrator_instances i ON i.orchestrator_id = m.orchestrator_id \
                  WHERE m.status = 'pending' AND NOT COALESCE(i.is_independent, FALSE) \
                    AND ($2::text[] IS NULL OR m.organization_id = ANY($2)) \
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
                 WHERE $2::text[] IS NULL OR o.organization_id = ANY($2)) f, \
             ( \
                 SELECT COALESCE(sum(cost), 0)::float8 AS cost, \
                     COALESCE(sum(requests), 0)::int8 AS requests, \
                     COALESCE(sum(input_tokens + output_tokens), 0)::int8 AS tokens \
                 FROM usage_records \
                 WHERE reported_at >= date_trunc('month', now(), 'UTC') \
                   AND ($2::text[] IS NULL OR organization_id = ANY($2)) \
             ) u"
        ))
        .bind(self.ttl_secs)
        .bind(scope)
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
        // One snapshot for the five queries, so the parts add up to the totals.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db_error)?;

        let totals: TotalsRow = usage_query(q, totals_columns!(), "")
            .build_query_as()
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;

        let by_organization: Vec<BucketRow> = usage_query(
            q,
            concat!("organization_id AS key, ", totals_columns!()),
            "GROUP BY organization_id ORDER BY cost DESC, key",
        )
        .build_query_as()
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;

        let mut top = usage_query(
            q,
            concat!("orchestrator_id AS key, ", totals_columns!()),
            "GROUP BY orchestrator_id ORDER BY cost DESC, key LIMIT ",
        );
        top.push_bind(TOP_ORCHESTRATORS);
        let by_orchestrator: Vec<BucketRow> = top
            .build_query_as()
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;

        let by_model: Vec<BucketRow> = usage_query(
            q,
            concat!("COALESCE(model, 'unknown') AS key, ", totals_columns!()),
            "GROUP BY 1 ORDER BY cost DESC, key",
        )
        .build_query_as()
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;

        // `unit` is one of three fixed strings, written into the SQL text (not a bind: the
        // GROUP BY must see the same expression as the select list).
        let series: Vec<PointRow> = usage_query(
            q,
            &format!(
                "date_trunc('{unit}', reported_at, 'UTC') AS period_start, {}",
                totals_columns!()
            ),
            "GROUP BY 1 ORDER BY 1",
        )
        .build_query_as()
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
