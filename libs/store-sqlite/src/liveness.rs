//! Liveness writes: heartbeat flushes, disconnects and the expiry sweep.
//!
//! SQLite's `RETURNING` only sees the new row, so where PostgreSQL joins a locked copy of the
//! row to return the status before its write, each write here runs in a write transaction
//! (`BEGIN IMMEDIATE`, under the write gate) that first reads the stored statuses with one
//! `SELECT` and then writes with one `UPDATE ... RETURNING`. Holding the write lock from the
//! start, nothing can change a row between the two, so a reported transition really happened.
//!
//! No advisory lock guards the sweep: one process owns the file and its writes are
//! serialized, so two sweeps run one after the other and the second finds nothing left to do.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use moolai_protocol::Status;
use moolai_store::{HeartbeatWrite, StatusChange, StoreError, SweepOutcome};
use serde_json::{Value, json};

use crate::error::db_error;
use crate::rows::StatusWriteRow;
use crate::sql::alive_sql;
use crate::{SqliteStore, time};

/// The fleet-silence guard only engages when at least this many orchestrators would flip:
/// one or two silent orchestrators in a tiny fleet are ordinary.
const FLEET_SILENCE_MIN_ACTIVE: i64 = 3;

pub(crate) const SKIPPED_FLEET_SILENT: &str = "every orchestrator looks silent at once; not marking the fleet inactive (is the controller's heartbeat path healthy?)";

/// The row an `UPDATE ... RETURNING` gives back (new values only).
#[derive(sqlx::FromRow)]
struct WrittenRow {
    orchestrator_id: String,
    organization_id: String,
    status: String,
    is_independent: bool,
    last_seen: Option<DateTime<Utc>>,
}

impl WrittenRow {
    fn with_previous(self, previous: String) -> StatusWriteRow {
        StatusWriteRow {
            orchestrator_id: self.orchestrator_id,
            organization_id: self.organization_id,
            previous,
            current: self.status,
            is_independent: self.is_independent,
            last_seen: self.last_seen,
        }
    }
}

/// Keeps one heartbeat per orchestrator (the latest), sorted by id, as the JSON array the
/// flush reads with `json_each`: an `UPDATE ... FROM` joining the same row twice would use
/// one of the joined rows at random.
fn latest_per_orchestrator(beats: &[HeartbeatWrite]) -> Result<(usize, String), StoreError> {
    let mut latest: HashMap<&str, DateTime<Utc>> = HashMap::with_capacity(beats.len());
    for beat in beats {
        latest
            .entry(beat.orchestrator_id.as_str())
            .and_modify(|t| *t = (*t).max(beat.received_at))
            .or_insert(beat.received_at);
    }
    let mut sorted: Vec<(&str, DateTime<Utc>)> = latest.into_iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let batch = sorted
        .iter()
        .map(|(id, ts)| Ok(json!({ "id": id, "ts": time::encode(*ts)? })))
        .collect::<Result<Vec<Value>, StoreError>>()?;
    Ok((batch.len(), Value::Array(batch).to_string()))
}

impl SqliteStore {
    pub(crate) async fn flush_heartbeats_tx(
        &self,
        beats: &[HeartbeatWrite],
    ) -> Result<Vec<StatusChange>, StoreError> {
        if beats.is_empty() {
            return Ok(Vec::new());
        }
        let (orchestrators, batch) = latest_per_orchestrator(beats)?;
        let now = time::now();
        let mut w = self.begin_write().await?;

        let previous: HashMap<String, String> = sqlx::query_as(
            "SELECT orchestrator_id, status FROM orchestrator_instances \
             WHERE orchestrator_id IN (SELECT value ->> '$.id' FROM json_each($1))",
        )
        .bind(&batch)
        .fetch_all(&mut *w.tx)
        .await
        .map_err(db_error)?
        .into_iter()
        .collect();

        // The one statement that writes. Independence is checked in its WHERE; `max` of the
        // stored and the new time keeps `last_seen` from moving backwards. The stored status
        // only becomes active when the new last_seen is within the TTL, so a heartbeat that
        // arrives late does not announce an orchestrator the sweep would flip straight back.
        // (SET expressions all read the row as it was before the UPDATE.)
        let written: Vec<WrittenRow> = sqlx::query_as(
            "UPDATE orchestrator_instances AS o SET \
                 last_seen = max(COALESCE(o.last_seen, b.ts), b.ts), \
                 status = CASE WHEN o.disconnected_at IS NULL \
                     AND max(COALESCE(o.last_seen, b.ts), b.ts) > $2 \
                     THEN 'active' ELSE o.status END, \
                 last_activity = max(COALESCE(o.last_activity, b.ts), b.ts), \
                 updated_at = $3 \
             FROM (SELECT value ->> '$.id' AS id, value ->> '$.ts' AS ts \
                   FROM json_each($1)) AS b \
             WHERE o.orchestrator_id = b.id AND NOT o.is_independent \
             RETURNING orchestrator_id, organization_id, status, is_independent, last_seen",
        )
        .bind(&batch)
        .bind(self.cutoff(now))
        .bind(time::encode(now)?)
        .fetch_all(&mut *w.tx)
        .await
        .map_err(db_error)?;
        w.commit().await?;

        let mut changes = Vec::new();
        for row in written {
            let before = previous
                .get(&row.orchestrator_id)
                .cloned()
                .unwrap_or_else(|| row.status.clone());
            if let Some(change) = row.with_previous(before).into_change()? {
                changes.push(change);
            }
        }
        tracing::debug!(orchestrators, changes = changes.len(), "heartbeats flushed");
        Ok(changes)
    }

    pub(crate) async fn record_disconnect_tx(
        &self,
        orchestrator_id: &str,
        session_id: &str,
        reason: &str,
    ) -> Result<Option<StatusChange>, StoreError> {
        let reason = truncate_chars(reason, 64);
        let now = time::encode(time::now())?;
        let mut w = self.begin_write().await?;

        let previous: Option<String> = sqlx::query_scalar(
            "SELECT status FROM orchestrator_instances \
             WHERE orchestrator_id = $1 AND session_id = $2 AND disconnected_at IS NULL",
        )
        .bind(orchestrator_id)
        .bind(session_id)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(db_error)?;

        let written: Option<WrittenRow> = match previous {
            Some(_) => sqlx::query_as(
                "UPDATE orchestrator_instances SET disconnected_at = $3, \
                     status = CASE WHEN is_independent THEN status ELSE 'inactive' END, \
                     updated_at = $3 \
                 WHERE orchestrator_id = $1 AND session_id = $2 AND disconnected_at IS NULL \
                 RETURNING orchestrator_id, organization_id, status, is_independent, last_seen",
            )
            .bind(orchestrator_id)
            .bind(session_id)
            .bind(&now)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(db_error)?,
            None => None,
        };

        // The session's own history row is closed even when a newer session replaced it:
        // that socket really did go away.
        sqlx::query(
            "UPDATE orchestrator_connections SET status = 'disconnected', \
                 disconnected_at = $4, disconnect_reason = $3, updated_at = $4 \
             WHERE connection_id = $2 AND orchestrator_id = $1 AND disconnected_at IS NULL",
        )
        .bind(orchestrator_id)
        .bind(session_id)
        .bind(reason)
        .bind(&now)
        .execute(&mut *w.tx)
        .await
        .map_err(db_error)?;
        w.commit().await?;

        match (written, previous) {
            (Some(row), Some(previous)) => row.with_previous(previous).into_change(),
            _ => Ok(None),
        }
    }

    pub(crate) async fn sweep_expired_tx(&self) -> Result<SweepOutcome, StoreError> {
        let now = time::now();
        let cutoff = self.cutoff(now);
        let mut w = self.begin_write().await?;

        // If nobody at all has been heard from within the TTL while several are supposed to
        // be active, the likelier story is that heartbeats stopped reaching the database.
        let (active, any_alive): (i64, bool) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE o.status = 'active'), \
                 COALESCE(max(o.last_seen > $1), FALSE) \
             FROM orchestrator_instances o WHERE NOT o.is_independent",
        )
        .bind(&cutoff)
        .fetch_one(&mut *w.tx)
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
            "UPDATE orchestrator_instances AS o SET status = 'inactive', updated_at = $2 \
             WHERE o.status = 'active' AND NOT o.is_independent AND NOT ",
            alive_sql!("$1"),
            " RETURNING orchestrator_id, organization_id, last_seen"
        ))
        .bind(&cutoff)
        .bind(time::encode(now)?)
        .fetch_all(&mut *w.tx)
        .await
        .map_err(db_error)?;
        w.commit().await?;

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
        let (count, batch) =
            latest_per_orchestrator(&[beat("b", 5), beat("a", 1), beat("b", 9), beat("b", 2)])
                .expect("in range");
        assert_eq!(count, 2);
        let batch: Value = serde_json::from_str(&batch).expect("json");
        assert_eq!(
            batch,
            json!([
                { "id": "a", "ts": time::encode(t(1)).expect("in range") },
                { "id": "b", "ts": time::encode(t(9)).expect("in range") },
            ])
        );
    }

    #[test]
    fn truncates_on_character_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("abc", 64), "abc");
    }
}
