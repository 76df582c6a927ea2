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

/// The columns of [`crate::rows::OrchestratorRow`], read from `o` joined with `g`
/// (its organization, see [`ORCHESTRATOR_FROM`]).
macro_rules! orchestrator_columns {
    ($ttl:literal) => {
        concat!(
            "o.orchestrator_id, o.organization_id, ",
            "COALESCE(g.name, o.organization_name) AS organization_name, o.name, o.location, ",
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

/// The `FROM` clause matching [`orchestrator_columns!`].
pub(crate) const ORCHESTRATOR_FROM: &str = " FROM orchestrator_instances o \
     LEFT JOIN organizations g ON g.organization_id = o.organization_id";

/// One orchestrator by id (`$1`), TTL in `$2`.
pub(crate) const SELECT_ORCHESTRATOR: &str = concat!(
    "SELECT ",
    orchestrator_columns!("$2"),
    " FROM orchestrator_instances o ",
    "LEFT JOIN organizations g ON g.organization_id = o.organization_id ",
    "WHERE o.orchestrator_id = $1"
);

/// The columns of [`crate::rows::MessageRow`] from `m` (a message) and `i` (its orchestrator,
/// left-joined: it may have been deregistered).
pub(crate) const MESSAGE_COLUMNS: &str = "m.id, m.orchestrator_id, m.organization_id, \
     m.message_type, m.content, m.message_metadata, m.status, m.source, \
     COALESCE(i.is_independent, FALSE) AS orchestrator_is_independent, m.delivered_at, \
     m.created_at, m.updated_at";

pub(crate) use {alive_sql, orchestrator_columns, status_sql};
