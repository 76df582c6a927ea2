//! SQL fragments shared by several queries, as macros that expand to string literals so
//! every query stays a `&'static str` (sqlx only runs dynamic strings through `QueryBuilder`
//! or an explicit `AssertSqlSafe`).
//!
//! The orchestrator table is always aliased `o`; `$ttl` is the placeholder bound to the
//! heartbeat TTL in seconds (`f64`).

/// `true` when the orchestrator counts as alive, ignoring independence: connected (no explicit
/// disconnect) and heard from within the TTL.
macro_rules! alive_sql {
    ($ttl:literal) => {
        concat!(
            "(o.disconnected_at IS NULL AND o.last_seen IS NOT NULL ",
            "AND o.last_seen > now() - make_interval(secs => ",
            $ttl,
            "::float8))"
        )
    };
}

/// The status shown everywhere, derived from the facts rather than the stored column.
macro_rules! status_sql {
    ($ttl:literal) => {
        concat!(
            "(CASE WHEN o.is_independent THEN 'independent' WHEN ",
            $crate::sql::alive_sql!($ttl),
            " THEN 'active' ELSE 'inactive' END)"
        )
    };
}

/// The columns of [`crate::rows::OrchestratorRow`], read from `o` alone: its
/// `organization_name` is copied from `organizations` by every writer, and organizations are
/// never renamed (a rename would have to update its orchestrators' rows in the same
/// transaction).
macro_rules! orchestrator_columns {
    ($ttl:literal) => {
        concat!(
            "o.orchestrator_id, o.organization_id, ",
            "o.organization_name, o.name, o.location, ",
            $crate::sql::status_sql!($ttl),
            " AS status, o.last_seen, o.is_independent, ",
            "(o.session_id IS NOT NULL AND o.disconnected_at IS NULL) AS connected, ",
            "o.health_status, o.metadata, o.features, o.session_config, o.config_version, ",
            "o.config_snapshot, o.config_snapshot_at, o.privacy_mode, o.monitoring_enabled, ",
            "o.session_id, o.edge_id, o.metadata->>'version' AS version, o.last_activity, ",
            "o.created_at, o.updated_at"
        )
    };
}

/// One orchestrator by id (`$1`), TTL in `$2`.
pub(crate) const SELECT_ORCHESTRATOR: &str = concat!(
    "SELECT ",
    orchestrator_columns!("$2"),
    " FROM orchestrator_instances o WHERE o.orchestrator_id = $1"
);

/// The columns of [`crate::rows::MessageRow`] from `m` (a message) and `i` (its orchestrator,
/// left-joined: it may have been deregistered).
pub(crate) const MESSAGE_COLUMNS: &str = "m.id, m.orchestrator_id, m.organization_id, \
     m.message_type, m.content, m.message_metadata, m.status, m.source, \
     COALESCE(i.is_independent, FALSE) AS orchestrator_is_independent, m.delivered_at, \
     m.created_at, m.updated_at";

/// What a hello's connection row does when its session said hello before (a retried
/// request): it is updated, unless the session belongs to another orchestrator.
macro_rules! connection_upsert {
    () => {
        " ON CONFLICT (connection_id) DO UPDATE SET status = 'connected', \
             credential_id = EXCLUDED.credential_id, \
             edge_id = EXCLUDED.edge_id, remote_addr = EXCLUDED.remote_addr, \
             metadata = EXCLUDED.metadata, last_seen = now(), disconnected_at = NULL, \
             disconnect_reason = NULL, updated_at = now() \
         WHERE orchestrator_connections.orchestrator_id = EXCLUDED.orchestrator_id"
    };
}

/// The liveness part of a hello's update of its orchestrator: connected again, active now
/// unless independent (an independent orchestrator's `last_seen` and status stay as they are).
macro_rules! hello_liveness_set {
    () => {
        " disconnected_at = NULL, \
          last_activity = now(), \
          last_seen = CASE WHEN o.is_independent THEN o.last_seen \
                           ELSE GREATEST(o.last_seen, now()) END, \
          status = CASE WHEN o.is_independent THEN o.status ELSE 'active' END, \
          updated_at = now() "
    };
}

/// ` AND <column> = ANY(<scope>)` when the reader is limited to some organizations (`None`:
/// all of them). Every scoped listing and report filters through here.
pub(crate) fn push_scope(
    qb: &mut sqlx::QueryBuilder<sqlx::Postgres>,
    column: &'static str,
    scope: Option<&[String]>,
) {
    if let Some(scope) = scope {
        qb.push(" AND ")
            .push(column)
            .push(" = ANY(")
            .push_bind(scope.to_vec())
            .push(")");
    }
}

pub(crate) use {
    alive_sql, connection_upsert, hello_liveness_set, orchestrator_columns, status_sql,
};
