//! Liveness writes: heartbeat flushes, disconnects and the expiry sweep.
//!
//! Each statement captures the stored status before its write by joining a locked copy of
//! the row (`prev`): PostgreSQL before 18 cannot return old values from an `UPDATE`, and the
//! `FOR UPDATE` makes `prev` the latest committed version, not the statement's snapshot, so a
//! concurrent write cannot make us report a transition that did not happen. The one
//! exception is a heartbeat of an orchestrator already active, whose status cannot change:
//! written without the lock (see `flush_heartbeats_statement`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use moolai_protocol::Status;
use moolai_store::{HeartbeatWrite, StatusChange, StoreError, SweepOutcome};

use crate::PgStore;
use crate::error::db_error;
use crate::rows::StatusWriteRow;
use crate::sql::alive_sql;

/// Key of the transaction-scoped advisory lock that lets one replica sweep at a time.
/// ("moolai" in ASCII, then the lock number.)
pub const SWEEP_LOCK_KEY: i64 = 0x006d_6f6f_6c61_6901;

/// The fleet-silence guard only engages when at least this many orchestrators would flip:
/// one or two silent orchestrators in a tiny fleet are ordinary.
const FLEET_SILENCE_MIN_ACTIVE: i64 = 3;

pub(crate) const SKIPPED_LOCKED: &str = "another replica is sweeping";
pub(crate) const SKIPPED_FLEET_SILENT: &str = "every orchestrator looks silent at once; not marking the fleet inactive (is the controller's heartbeat path healthy?)";

/// Keeps one heartbeat per orchestrator (the latest), sorted by id: an `UPDATE ... FROM`
/// joining the same row twice is undefined, and walking the rows in one order keeps two
/// concurrent flushes (two state replicas) from deadlocking.
fn latest_per_orchestrator(beats: &[HeartbeatWrite]) -> (Vec<String>, Vec<DateTime<Utc>>) {
    let mut latest: HashMap<&str, DateTime<Utc>> = HashMap::with_capacity(beats.len());
    for beat in beats {
        latest
            .entry(beat.orchestrator_id.as_str())
            .and_modify(|t| *t = (*t).max(beat.received_at))
            .or_insert(beat.received_at);
    }
    let mut sorted: Vec<(&str, DateTime<Utc>)> = latest.into_iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    sorted
        .into_iter()
        .map(|(id, ts)| (id.to_owned(), ts))
        .unzip()
}

impl PgStore {
    pub(crate) async fn flush_heartbeats_statement(
        &self,
        beats: &[HeartbeatWrite],
    ) -> Result<Vec<StatusChange>, StoreError> {
        if beats.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, times) = latest_per_orchestrator(beats);

        // Most heartbeats come from orchestrators already active: their status cannot change
        // (the status below only ever becomes 'active'), so there is no previous status to
        // capture and no row to lock first. Those rows are written here; the statement
        // answers with the heartbeats it did not write (not active, independent, unknown),
        // usually none. The sorted input drives the join (a nested loop over it once the
        // statement's generic plan is in use), so rows are locked in id order. Skipping the
        // locking step saves a quarter of the flush (an extra WAL record per row).
        let rest: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
            "WITH beats AS (SELECT id, ts FROM unnest($1::text[], $2::timestamptz[]) AS b(id, ts)), \
             written AS ( \
                 UPDATE orchestrator_instances o SET \
                     last_seen = GREATEST(o.last_seen, b.ts), \
                     last_activity = GREATEST(o.last_activity, b.ts), \
                     updated_at = now() \
                 FROM beats b \
                 WHERE o.orchestrator_id = b.id AND o.status = 'active' AND NOT o.is_independent \
                 RETURNING o.orchestrator_id) \
             SELECT b.id, b.ts FROM beats b \
             WHERE NOT EXISTS (SELECT 1 FROM written w WHERE w.orchestrator_id = b.id) \
             ORDER BY b.id",
        )
        .bind(&ids)
        .bind(&times)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let changes = if rest.is_empty() {
            Vec::new()
        } else {
            let (ids, times): (Vec<String>, Vec<DateTime<Utc>>) = rest.into_iter().unzip();
            self.write_heartbeats_with_status(&ids, &times).await?
        };
        tracing::debug!(
            orchestrators = ids.len(),
            changes = changes.len(),
            "heartbeats flushed"
        );
        Ok(changes)
    }

    /// Heartbeats of orchestrators that may change status: the previous status is captured
    /// from a locked copy of each row, and only real transitions are returned.
    async fn write_heartbeats_with_status(
        &self,
        ids: &[String],
        times: &[DateTime<Utc>],
    ) -> Result<Vec<StatusChange>, StoreError> {
        // The stored status only becomes active when the new last_seen is within the TTL, so a
        // heartbeat that arrives late does not announce an orchestrator the sweep would flip
        // straight back. The locking step is a MATERIALIZED CTE, run once: as a subquery, a
        // planner that believes the table is nearly empty (fresh statistics are minutes away)
        // put it on the inner side of a nested loop and ran it, locks and all, once per row:
        // cubic in the fleet, seconds per flush at a few hundred orchestrators.
        let rows: Vec<StatusWriteRow> = sqlx::query_as(
            "WITH prev AS MATERIALIZED ( \
                 SELECT p.orchestrator_id, p.status, b.ts \
                 FROM unnest($1::text[], $2::timestamptz[]) AS b(id, ts) \
                 JOIN orchestrator_instances p ON p.orchestrator_id = b.id \
                 ORDER BY p.orchestrator_id \
                 FOR UPDATE OF p) \
             UPDATE orchestrator_instances o SET \
                 last_seen = GREATEST(o.last_seen, prev.ts), \
                 status = CASE WHEN o.disconnected_at IS NULL \
                     AND GREATEST(o.last_seen, prev.ts) > now() - make_interval(secs => $3::float8) \
                     THEN 'active' ELSE o.status END, \
                 last_activity = GREATEST(o.last_activity, prev.ts), \
                 updated_at = now() \
             FROM prev \
             WHERE o.orchestrator_id = prev.orchestrator_id AND NOT o.is_independent \
             RETURNING o.orchestrator_id, o.organization_id, prev.status AS previous, \
                 o.status AS current, o.is_independent, o.last_seen"
        )
        .bind(ids)
        .bind(times)
        .bind(self.ttl_secs)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;

        let mut changes = Vec::new();
        for row in rows {
            if let Some(change) = row.into_change()? {
                changes.push(change);
            }
        }
        Ok(changes)
    }

    pub(crate) async fn record_disconnect_tx(
        &self,
        orchestrator_id: &str,
        session_id: &str,
        reason: &str,
    ) -> Result<Option<StatusChange>, StoreError> {
        let reason = truncate_chars(reason, 64);
        let mut tx = self.pool.begin().await.map_err(db_error)?;

        let row: Option<StatusWriteRow> = sqlx::query_as(
            "UPDATE orchestrator_instances o SET disconnected_at = now(), \
                 status = CASE WHEN o.is_independent THEN o.status ELSE 'inactive' END, \
                 updated_at = now() \
             FROM (SELECT orchestrator_id, status FROM orchestrator_instances \
                   WHERE orchestrator_id = $1 FOR UPDATE) AS prev \
             WHERE o.orchestrator_id = prev.orchestrator_id AND o.session_id = $2 \
                 AND o.disconnected_at IS NULL \
             RETURNING o.orchestrator_id, o.organization_id, prev.status AS previous, \
                 o.status AS current, o.is_independent, o.last_seen",
        )
        .bind(orchestrator_id)
        .bind(session_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;

        // The session's own history row is closed even when a newer session replaced it:
        // that socket really did go away.
        sqlx::query(
            "UPDATE orchestrator_connections SET status = 'disconnected', \
                 disconnected_at = now(), disconnect_reason = $3, updated_at = now() \
             WHERE connection_id = $2 AND orchestrator_id = $1 AND disconnected_at IS NULL",
        )
        .bind(orchestrator_id)
        .bind(session_id)
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;

        match row {
            Some(row) => row.into_change(),
            None => Ok(None),
        }
    }

    pub(crate) async fn sweep_expired_tx(&self) -> Result<SweepOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;

        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(SWEEP_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        if !locked {
            return Ok(SweepOutcome {
                changes: Vec::new(),
                skipped: Some(SKIPPED_LOCKED.to_owned()),
            });
        }
        refresh_statistics(&mut tx).await?;

        // If nobody at all has been heard from within the TTL while several are supposed to
        // be active, the likelier story is that heartbeats stopped reaching the database.
        let (active, any_alive): (i64, bool) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE o.status = 'active'), \
                 COALESCE(bool_or(o.last_seen > now() - make_interval(secs => $1::float8)), FALSE) \
             FROM orchestrator_instances o WHERE NOT o.is_independent",
        )
        .bind(self.ttl_secs)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        if !any_alive && active >= FLEET_SILENCE_MIN_ACTIVE {
            tracing::warn!(active, "{SKIPPED_FLEET_SILENT}");
            return Ok(SweepOutcome {
                changes: Vec::new(),
                skipped: Some(SKIPPED_FLEET_SILENT.to_owned()),
            });
        }

        let expired: Vec<(String, String, Option<DateTime<Utc>>)> = sqlx::query_as(concat!(
            "UPDATE orchestrator_instances o SET status = 'inactive', updated_at = now() \
             WHERE o.status = 'active' AND NOT o.is_independent AND NOT ",
            alive_sql!("$1"),
            " RETURNING o.orchestrator_id, o.organization_id, o.last_seen"
        ))
        .bind(self.ttl_secs)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;

        Ok(SweepOutcome {
            changes: expired
                .into_iter()
                .map(
                    |(orchestrator_id, organization_id, last_seen)| StatusChange {
                        orchestrator_id,
                        organization_id,
                        previous: Some(Status::Active),
                        current: Status::Inactive,
                        is_independent: false,
                        last_seen,
                    },
                )
                .collect(),
            skipped: None,
        })
    }
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// Autovacuum analyzes a table at most once per `autovacuum_naptime` (a minute by default).
/// Until then a fresh `orchestrator_instances` filling up during a registration storm is
/// planned as if it were nearly empty, and the heartbeat flush's join degrades into a
/// nested loop that is quadratic in the batch (seconds to minutes for a few thousand rows,
/// instead of ~100 ms for 20,000 with statistics). The sweep, which runs every few seconds on
/// one replica, refreshes the statistics itself when the row count has drifted far from
/// what the planner believes. `ANALYZE` samples a bounded number of rows and does not block
/// writers.
async fn refresh_statistics(tx: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    let (planned, live): (f32, i64) = sqlx::query_as(
        "SELECT c.reltuples, COALESCE(s.n_live_tup, 0) \
         FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid \
         WHERE c.oid = 'orchestrator_instances'::regclass",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    let planned = f64::from(planned.max(0.0));
    #[allow(clippy::cast_precision_loss)] // row counts far below 2^52
    let live = live as f64;
    if live > 2.0 * planned + 50.0 {
        tracing::info!(
            planned,
            live,
            "refreshing orchestrator_instances statistics"
        );
        sqlx::query("ANALYZE orchestrator_instances")
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_heartbeat_per_orchestrator_sorted_by_id() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).expect("valid time");
        let beat = |id: &str, s: i64| HeartbeatWrite {
            orchestrator_id: id.to_owned(),
            received_at: t(s),
        };
        let (ids, times) =
            latest_per_orchestrator(&[beat("b", 5), beat("a", 1), beat("b", 9), beat("b", 2)]);
        assert_eq!(ids, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(times, vec![t(1), t(9)]);
    }

    #[test]
    fn truncates_on_character_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("abc", 64), "abc");
    }
}
