//! SQL fragments shared by several queries, as macros that expand to string literals so
//! every query stays a `&'static str`.
//!
//! The orchestrator table is aliased `o`, except in `RETURNING` clauses, which cannot name an
//! alias in SQLite: there the fragments take `""` as the table prefix. Where PostgreSQL
//! compares `last_seen` with `now() - ttl`, these take the cutoff (`now - ttl`, computed by the
//! store, see [`crate::time`]) as an SQL expression: a numbered parameter like `"$2"` in static
//! queries, or `"p.cutoff"` in `QueryBuilder` queries, which bind it once in a leading
//! `WITH p(cutoff) AS (SELECT ?)` (sqlx numbers a builder's `?` placeholders by position, so
//! they cannot be mixed with `$N`).

/// `true` when the orchestrator counts as alive, ignoring independence: connected (no explicit
/// disconnect) and heard from after the cutoff.
macro_rules! alive_sql {
    ($cutoff:literal) => {
        $crate::sql::alive_sql!("o.", $cutoff)
    };
    ($table:literal, $cutoff:literal) => {
        concat!(
            "(",
            $table,
            "disconnected_at IS NULL AND ",
            $table,
            "last_seen IS NOT NULL AND ",
            $table,
            "last_seen > ",
            $cutoff,
            ")"
        )
    };
}

/// The status shown everywhere, derived from the facts rather than the stored column.
macro_rules! status_sql {
    ($cutoff:literal) => {
        $crate::sql::status_sql!("o.", $cutoff)
    };
    ($table:literal, $cutoff:literal) => {
        concat!(
            "(CASE WHEN ",
            $table,
            "is_independent THEN 'independent' WHEN ",
            $crate::sql::alive_sql!($table, $cutoff),
            " THEN 'active' ELSE 'inactive' END)"
        )
    };
}

/// The client version as PostgreSQL's `metadata->>'version'` gives it: a string's own text,
/// any other JSON value's JSON text, NULL for JSON null or no key. (SQLite's `->>` would give
/// numbers and booleans as SQL numbers.)
macro_rules! version_sql {
    () => {
        "(CASE json_type(o.metadata, '$.version') \
             WHEN 'text' THEN o.metadata ->> '$.version' \
             WHEN 'null' THEN NULL \
             ELSE o.metadata -> '$.version' END)"
    };
}

/// The columns of [`crate::rows::OrchestratorRow`], read from `o` joined with `g`
/// (its organization, see [`orchestrator_from!`]).
macro_rules! orchestrator_columns {
    ($cutoff:literal) => {
        concat!(
            "o.orchestrator_id, o.organization_id, ",
            "COALESCE(g.name, o.organization_name) AS organization_name, o.name, o.location, ",
            $crate::sql::status_sql!($cutoff),
            " AS status, o.last_seen, o.is_independent, ",
            "(o.session_id IS NOT NULL AND o.disconnected_at IS NULL) AS connected, ",
            "o.health_status, o.metadata, o.features, o.session_config, o.config_version, ",
            "o.config_snapshot, o.config_snapshot_at, o.privacy_mode, o.monitoring_enabled, ",
            "o.session_id, o.edge_id, ",
            $crate::sql::version_sql!(),
            " AS version, o.last_activity, o.created_at, o.updated_at"
        )
    };
}

/// The `FROM` clause matching [`orchestrator_columns!`].
macro_rules! orchestrator_from {
    () => {
        " FROM orchestrator_instances o \
         LEFT JOIN organizations g ON g.organization_id = o.organization_id "
    };
}

/// The rows of an orchestrator listing, with the cutoff `p` its builder binds (see
/// `orchestrators::filtered`).
pub(crate) const LISTING_SELECT: &str = concat!(
    "SELECT ",
    orchestrator_columns!("p.cutoff"),
    orchestrator_from!(),
    "CROSS JOIN p"
);

/// One orchestrator by id (`$1`), cutoff in `$2`.
pub(crate) const SELECT_ORCHESTRATOR: &str = concat!(
    "SELECT ",
    orchestrator_columns!("$2"),
    orchestrator_from!(),
    "WHERE o.orchestrator_id = $1"
);

/// The columns of [`crate::rows::MessageRow`] from `m` (a message) and `i` (its orchestrator,
/// left-joined: it may have been deregistered).
pub(crate) const MESSAGE_COLUMNS: &str = "m.id, m.orchestrator_id, m.organization_id, \
     m.message_type, m.content, m.message_metadata, m.status, m.source, \
     COALESCE(i.is_independent, FALSE) AS orchestrator_is_independent, m.delivered_at, \
     m.created_at, m.updated_at";

pub(crate) use {alive_sql, status_sql, version_sql};
