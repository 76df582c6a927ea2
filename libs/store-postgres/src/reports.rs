//! Usage rows (with each organization's day totals, which a trigger on the rows keeps) and
//! the reports built from them: the fleet overview and the cost breakdown.

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

/// The aggregate columns of a [`TotalsRow`].
macro_rules! totals_columns {
    () => {
        "COALESCE(sum(requests), 0)::int8 AS requests, \
         COALESCE(sum(input_tokens), 0)::int8 AS input_tokens, \
         COALESCE(sum(output_tokens), 0)::int8 AS output_tokens, \
         COALESCE(sum(cost), 0)::float8 AS cost"
    };
}

/// One row of the cost report's single statement: the totals (`kind` 0), an organization
/// (1), an orchestrator (2), a model (3) or a period of the series (4).
#[derive(sqlx::FromRow)]
struct ReportRow {
    kind: i32,
    key: Option<String>,
    period_start: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    totals: TotalsRow,
}

/// The cost report as one statement over the matching usage rows: the five breakdowns are
/// grouping sets of one aggregation, so the rows are read once (five statements read them
/// five times), and it sees one snapshot. Rows come out by `kind`, each kind in report
/// order: the series by period, the others by cost (highest first), then key; only the top
/// [`TOP_ORCHESTRATORS`] orchestrators. `unit` is one of three fixed strings.
fn report_query(q: &CostQuery, unit: &str) -> QueryBuilder<Postgres> {
    let mut qb = QueryBuilder::new(concat!(
        "SELECT kind, key, period_start, requests, input_tokens, output_tokens, cost FROM (\
         SELECT CASE WHEN GROUPING(organization_id) = 0 THEN 1 \
                 WHEN GROUPING(orchestrator_id) = 0 THEN 2 \
                 WHEN GROUPING(model) = 0 THEN 3 \
                 WHEN GROUPING(period_start) = 0 THEN 4 ELSE 0 END AS kind, \
             COALESCE(organization_id, orchestrator_id, model) AS key, period_start, ",
        totals_columns!(),
        ", row_number() OVER (\
                 PARTITION BY GROUPING(organization_id, orchestrator_id, model, period_start) \
                 ORDER BY period_start, sum(cost) DESC, \
                     COALESCE(organization_id, orchestrator_id, model)) AS rank \
         FROM (SELECT organization_id, orchestrator_id, COALESCE(model, 'unknown') AS model, \
                 date_trunc("
    ));
    qb.push_bind(unit)
        .push(
            ", reported_at, 'UTC') AS period_start, requests, input_tokens, output_tokens, cost \
             FROM usage_records WHERE reported_at >= ",
        )
        .push_bind(q.from)
        .push(" AND reported_at < ")
        .push_bind(q.to);
    // Only present filters are written: a filter written as `$n IS NULL OR organization_id =
    // $n` gets a generic plan once the statement is prepared, which cannot use the
    // organization index (an organization's month took ~300 ms at 500,000 usage rows).
    if let Some(organization_id) = &q.organization_id {
        qb.push(" AND organization_id = ")
            .push_bind(organization_id.as_str());
    }
    if let Some(orchestrator_id) = &q.orchestrator_id {
        qb.push(" AND orchestrator_id = ")
            .push_bind(orchestrator_id.as_str());
    }
    crate::sql::push_scope(&mut qb, "organization_id", q.scope.as_deref());
    qb.push(
        ") u GROUP BY GROUPING SETS ((), (organization_id), (orchestrator_id), (model), \
             (period_start))) r \
         WHERE kind <> 2 OR rank <= ",
    )
    .push_bind(TOP_ORCHESTRATORS)
    .push(" ORDER BY kind, rank");
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
        // The organizations' day totals are added by the table's trigger (migration
        // 20261201000003_usage_organization_days_trigger), in the same statement.
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
        // `$2` is the scope: NULL for every organization. This month's usage comes from the
        // organizations' day totals (a month starts on a UTC day), not the usage rows. Pending
        // messages the controller acts on are all pending ones less those of independent
        // orchestrators (a message of a deregistered orchestrator counts), read through the
        // partial index of independent orchestrators instead of a join with every row.
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
                  WHERE m.status = 'pending' \
                    AND ($2::text[] IS NULL OR m.organization_id = ANY($2))) \
                 - (SELECT count(*) FROM orchestrator_messages m \
                  JOIN orchestrator_instances i ON i.orchestrator_id = m.orchestrator_id \
                  WHERE m.status = 'pending' AND i.is_independent \
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
                     LEAST(COALESCE(sum(requests), 0), 9223372036854775807)::int8 AS requests, \
                     LEAST(COALESCE(sum(input_tokens::numeric + output_tokens), 0), \
                         9223372036854775807)::int8 AS tokens \
                 FROM usage_organization_days \
                 WHERE day >= date_trunc('month', now(), 'UTC') \
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
        let unit = match q.granularity {
            Granularity::Day => "day",
            Granularity::Week => "week",
            Granularity::Month => "month",
        };
        let rows: Vec<ReportRow> = report_query(q, unit)
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;

        let mut report = CostReport {
            from: q.from,
            to: q.to,
            granularity: q.granularity,
            totals: UsageTotals::default(),
            by_organization: Vec::new(),
            by_orchestrator: Vec::new(),
            by_model: Vec::new(),
            series: Vec::new(),
        };
        for r in rows {
            let totals: UsageTotals = r.totals.into();
            let list = match (r.kind, r.period_start) {
                (0, _) => {
                    report.totals = totals;
                    continue;
                }
                (4, Some(period_start)) => {
                    report.series.push(CostPoint {
                        period_start,
                        totals,
                    });
                    continue;
                }
                (1, _) => &mut report.by_organization,
                (2, _) => &mut report.by_orchestrator,
                (3, _) => &mut report.by_model,
                (kind, period_start) => {
                    return Err(StoreError::Other(format!(
                        "cost report: unexpected row (kind {kind}, period {period_start:?})"
                    )));
                }
            };
            list.push(CostBucket {
                key: r.key.unwrap_or_default(),
                totals,
            });
        }
        Ok(report)
    }
}
