//! Hellos registered in batches: one transaction of set-based statements for many
//! orchestrators, each hello with the outcome [`PgStore::register_hello_tx`] gives it alone.
//!
//! A reconnect storm is tens of thousands of hellos in a minute. One transaction per hello
//! costs PostgreSQL about ten statements and a commit each; a batch costs about ten statements
//! and one commit for all of them. Rows are locked in `orchestrator_id` order (credentials in
//! `credential_id` order), so concurrent batches queue rather than deadlock among themselves.
//!
//! Anything unusual — the same orchestrator or session twice in the batch, an orchestrator
//! created by a concurrent hello between our lock and our insert, a deadlock with a heartbeat
//! flush — sends the hellos concerned through the one-at-a-time path, which decides them
//! exactly as before.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use moolai_protocol::{DeliveredMessage, Status};
use moolai_store::{AuditEntry, HelloRegistration, Registered, StoreError};

use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;

use crate::credentials::{credential_gone, enrollment_cannot_claim};
use crate::error::db_error;
use crate::orchestrators::{HelloRow, PENDING_DELIVERY_LIMIT, hello_audit, hello_organization};
use crate::rows::DeliveryRow;
use crate::sql::{connection_upsert, hello_liveness_set, status_sql};
use crate::{PgStore, audit};

/// Columns returned for every registered orchestrator (`HelloRow`); `$1` is the TTL.
macro_rules! hello_returning {
    () => {
        concat!(
            " RETURNING o.orchestrator_id, o.organization_id, o.name, o.location, o.features, \
             o.metadata, o.session_config, o.is_independent, o.privacy_mode, \
             o.monitoring_enabled, o.config_version, o.last_seen, ",
            status_sql!("$1"),
            " AS status"
        )
    };
}

/// The batch's hellos as rows `i` (the arrays [`BindColumns`] binds as `$2`…`$11`).
macro_rules! hello_input {
    () => {
        " unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                 $8::text[], $9::text[], $10::text[], $11::text[]) \
             AS i(orchestrator_id, organization_id, organization_name, name, location, \
                  features, metadata, session_id, edge_id, credential_id)"
    };
}

/// Hello batches of a store (and its clones).
#[derive(Debug, Default)]
pub(crate) struct BatchCounts {
    /// Committed together.
    committed: AtomicU64,
    /// Rolled back and registered one by one.
    rolled_back: AtomicU64,
}

/// A hello that passed the organization and credential checks, waiting for its writes.
struct Planned<'a> {
    index: usize,
    hello: &'a HelloRegistration,
    organization_id: String,
    previous_status: Option<Status>,
    /// The hello's JSON as text for the `unnest` columns (serialized once).
    features: Option<String>,
    metadata: String,
}

impl PgStore {
    pub(crate) async fn register_hellos_batch(
        &self,
        hellos: &[HelloRegistration],
    ) -> Vec<Result<Registered, StoreError>> {
        let mut outcomes: Vec<Option<Result<Registered, StoreError>>> =
            hellos.iter().map(|_| None).collect();

        // First sight of each orchestrator and each session goes into the batch; a repeat is
        // registered after it, alone and in order (the later hello is the one that counts).
        let mut orchestrators = HashSet::new();
        let mut sessions = HashSet::new();
        let mut batch = Vec::new();
        let mut repeats = Vec::new();
        for (index, hello) in hellos.iter().enumerate() {
            let new_orchestrator = !orchestrators.contains(hello.orchestrator_id.as_str());
            let new_session = !sessions.contains(hello.session_id.as_str());
            if new_orchestrator && new_session {
                orchestrators.insert(hello.orchestrator_id.as_str());
                sessions.insert(hello.session_id.as_str());
                batch.push(index);
            } else {
                repeats.push(index);
            }
        }

        if batch.len() > 1 {
            match self.register_batch(hellos, &batch).await {
                Ok(decided) => {
                    self.hello_batches.committed.fetch_add(1, Ordering::Relaxed);
                    for (index, outcome) in decided {
                        outcomes[index] = Some(outcome);
                    }
                }
                Err(StoreError::Unavailable(message)) => {
                    for &index in &batch {
                        outcomes[index] = Some(Err(StoreError::Unavailable(message.clone())));
                    }
                }
                Err(e) => {
                    self.hello_batches
                        .rolled_back
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(error = %e, hellos = batch.len(), "hello batch rolled back; registering its hellos one by one");
                }
            }
        }
        for index in batch.into_iter().chain(repeats) {
            if outcomes[index].is_none() {
                outcomes[index] = Some(self.register_hello_tx(&hellos[index]).await);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(StoreError::Other("hello left undecided".into()))))
            .collect()
    }

    /// Hello batches so far: (committed together, rolled back and registered one by one).
    #[must_use]
    pub fn hello_batches(&self) -> (u64, u64) {
        (
            self.hello_batches.committed.load(Ordering::Relaxed),
            self.hello_batches.rolled_back.load(Ordering::Relaxed),
        )
    }

    /// One transaction for the hellos at `batch` (distinct orchestrators and sessions).
    /// `Err` rolls everything back; the caller then registers them one by one.
    #[allow(clippy::too_many_lines)]
    async fn register_batch(
        &self,
        hellos: &[HelloRegistration],
        batch: &[usize],
    ) -> Result<Vec<(usize, Result<Registered, StoreError>)>, StoreError> {
        let mut decided = Vec::with_capacity(batch.len());
        let mut tx = self.pool.begin().await.map_err(db_error)?;

        let mut ids: Vec<&str> = batch
            .iter()
            .map(|&i| hellos[i].orchestrator_id.as_str())
            .collect();
        ids.sort_unstable();
        let existing: Vec<(String, String, String)> = sqlx::query_as(concat!(
            "SELECT o.orchestrator_id, o.organization_id, ",
            status_sql!("$2"),
            " FROM orchestrator_instances o WHERE o.orchestrator_id = ANY($1) \
             ORDER BY o.orchestrator_id FOR UPDATE"
        ))
        .bind(&ids)
        .bind(self.ttl_secs)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let existing: HashMap<String, (String, String)> = existing
            .into_iter()
            .map(|(id, org, status)| (id, (org, status)))
            .collect();

        // The organization each hello lands in, as register_hello_tx decides it.
        let mut planned = Vec::with_capacity(batch.len());
        for &index in batch {
            let hello = &hellos[index];
            let found = existing
                .get(&hello.orchestrator_id)
                .map(|(org, status)| (org.as_str(), status.as_str()));
            match hello_organization(hello, found) {
                Ok((organization_id, previous_status)) => planned.push(Planned {
                    index,
                    hello,
                    organization_id,
                    previous_status,
                    features: hello.features.as_ref().map(json_text).transpose()?,
                    metadata: json_text(&hello.metadata)?,
                }),
                Err(e) => decided.push((index, Err(e))),
            }
        }

        // Credentials: still active (held FOR SHARE until commit, so a revocation waits for
        // this batch and then sees its sockets), and an enrollment token may not claim an
        // orchestrator that has a credential of its own.
        let mut credential_ids: Vec<&str> = planned
            .iter()
            .filter_map(|p| p.hello.credential_id.as_deref())
            .collect();
        credential_ids.sort_unstable();
        credential_ids.dedup();
        if !credential_ids.is_empty() {
            let active: HashMap<String, String> = sqlx::query_as::<_, (String, String)>(
                "SELECT c.credential_id, c.kind FROM orchestrator_credentials c \
                 WHERE c.credential_id = ANY($1) AND c.revoked_at IS NULL \
                   AND (c.expires_at IS NULL OR c.expires_at > now()) \
                 ORDER BY c.credential_id FOR SHARE OF c",
            )
            .bind(&credential_ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?
            .into_iter()
            .collect();
            let enrolling: Vec<&str> = planned
                .iter()
                .filter(|p| {
                    p.hello
                        .credential_id
                        .as_deref()
                        .and_then(|c| active.get(c))
                        .is_some_and(|kind| kind == "enrollment")
                })
                .map(|p| p.hello.orchestrator_id.as_str())
                .collect();
            let owning: HashSet<String> = if enrolling.is_empty() {
                HashSet::new()
            } else {
                sqlx::query_scalar::<_, String>(
                    "SELECT DISTINCT own.orchestrator_id FROM orchestrator_credentials own \
                     WHERE own.kind = 'orchestrator' AND own.orchestrator_id = ANY($1) \
                       AND own.revoked_at IS NULL \
                       AND (own.expires_at IS NULL OR own.expires_at > now())",
                )
                .bind(&enrolling)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?
                .into_iter()
                .collect()
            };
            planned.retain(|p| {
                let Some(credential_id) = p.hello.credential_id.as_deref() else {
                    return true;
                };
                let refusal = match active.get(credential_id) {
                    None => Some(credential_gone()),
                    Some(kind)
                        if kind == "enrollment"
                            && owning.contains(p.hello.orchestrator_id.as_str()) =>
                    {
                        Some(enrollment_cannot_claim(&p.hello.orchestrator_id))
                    }
                    Some(_) => None,
                };
                match refusal {
                    Some(e) => {
                        decided.push((p.index, Err(e)));
                        false
                    }
                    None => true,
                }
            });
        }
        if planned.is_empty() {
            tx.commit().await.map_err(db_error)?;
            return Ok(decided);
        }

        // Organizations first named by a hello are created with their id as their name.
        let mut organizations: Vec<&str> =
            planned.iter().map(|p| p.organization_id.as_str()).collect();
        organizations.sort_unstable();
        organizations.dedup();
        sqlx::query(
            "INSERT INTO organizations (organization_id, name) \
             SELECT g, g FROM unnest($1::text[]) AS g ON CONFLICT (organization_id) DO NOTHING",
        )
        .bind(&organizations)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let organization_names: HashMap<String, String> = sqlx::query_as::<_, (String, String)>(
            "SELECT organization_id, name FROM organizations WHERE organization_id = ANY($1)",
        )
        .bind(&organizations)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?
        .into_iter()
        .collect();

        let (known, new): (Vec<&Planned>, Vec<&Planned>) =
            planned.iter().partition(|p| p.previous_status.is_some());
        let mut rows: Vec<HelloRow> = Vec::with_capacity(planned.len());
        if !known.is_empty() {
            // Locked above, so every one of them is updated; same SET as register_hello_tx.
            let c = HelloColumns::new(&known, &organization_names)?;
            let updated: Result<Vec<HelloRow>, _> = sqlx::query_as(concat!(
                "UPDATE orchestrator_instances o SET \
                     credential_id = i.credential_id, \
                     organization_name = i.organization_name, \
                     name = COALESCE(i.name, o.name), \
                     location = COALESCE(i.location, o.location), \
                     features = COALESCE(i.features::jsonb, o.features), \
                     metadata = i.metadata::jsonb, \
                     session_id = i.session_id, \
                     edge_id = i.edge_id,",
                hello_liveness_set!(),
                "FROM",
                hello_input!(),
                " WHERE o.orchestrator_id = i.orchestrator_id \
                   AND o.organization_id = i.organization_id",
                hello_returning!()
            ))
            .bind(self.ttl_secs)
            .bind_columns(&c)
            .fetch_all(&mut *tx)
            .await;
            rows.extend(all_rows(updated, known.len(), "changed under its lock")?);
        }
        if !new.is_empty() {
            let c = HelloColumns::new(&new, &organization_names)?;
            let inserted: Result<Vec<HelloRow>, _> = sqlx::query_as(concat!(
                "INSERT INTO orchestrator_instances AS o (orchestrator_id, organization_id, \
                     organization_name, name, location, features, metadata, session_id, edge_id, \
                     disconnected_at, last_activity, last_seen, status, credential_id) \
                 SELECT i.orchestrator_id, i.organization_id, i.organization_name, i.name, \
                     i.location, COALESCE(i.features::jsonb, '{}'::jsonb), i.metadata::jsonb, \
                     i.session_id, i.edge_id, NULL, now(), now(), 'active', i.credential_id \
                 FROM",
                hello_input!(),
                " ON CONFLICT (orchestrator_id) DO NOTHING",
                hello_returning!()
            ))
            .bind(self.ttl_secs)
            .bind_columns(&c)
            .fetch_all(&mut *tx)
            .await;
            // Short when a concurrent hello created one of them after our lock.
            rows.extend(all_rows(inserted, new.len(), "created concurrently")?);
        }

        // The same session saying hello twice (a retried request) updates its row.
        let all: Vec<&Planned> = planned.iter().collect();
        let c = HelloColumns::new(&all, &organization_names)?;
        let remote_addrs: Vec<Option<&str>> = planned
            .iter()
            .map(|p| p.hello.remote_addr.as_deref())
            .collect();
        sqlx::query(concat!(
            "INSERT INTO orchestrator_connections (connection_id, orchestrator_id, status, \
                 edge_id, remote_addr, metadata, last_seen, credential_id) \
             SELECT i.session_id, i.orchestrator_id, 'connected', i.edge_id, i.remote_addr, \
                 i.metadata::jsonb, now(), i.credential_id \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                         $6::text[]) \
                 AS i(session_id, orchestrator_id, edge_id, remote_addr, metadata, credential_id)",
            connection_upsert!()
        ))
        .bind(&c.sessions)
        .bind(&c.ids)
        .bind(&c.edges)
        .bind(&remote_addrs)
        .bind(&c.metadata)
        .bind(&c.credentials)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;

        let registrations: Vec<AuditEntry> = new
            .iter()
            .map(|p| hello_audit(p.hello, &p.organization_id))
            .collect();
        audit::insert_many(&mut tx, &registrations).await?;

        let pending: Vec<DeliveryRow> = sqlx::query_as(
            "SELECT id, orchestrator_id, message_type, content, message_metadata, status FROM ( \
                 SELECT m.*, row_number() OVER (PARTITION BY m.orchestrator_id \
                                                ORDER BY m.created_at, m.id) AS n \
                 FROM orchestrator_messages m \
                 WHERE m.orchestrator_id = ANY($1) AND m.status = 'accepted' \
                   AND m.delivered_at IS NULL) p \
             WHERE p.n <= $2 ORDER BY p.orchestrator_id, p.n",
        )
        .bind(&c.ids)
        .bind(PENDING_DELIVERY_LIMIT)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;

        let mut pending_by_orchestrator: HashMap<String, Vec<DeliveredMessage>> = HashMap::new();
        for row in pending {
            let message = DeliveredMessage::from(row);
            pending_by_orchestrator
                .entry(message.orchestrator_id.clone())
                .or_default()
                .push(message);
        }
        let mut rows_by_orchestrator: HashMap<String, HelloRow> = rows
            .into_iter()
            .map(|r| (r.provisioning.orchestrator_id.clone(), r))
            .collect();
        for p in planned {
            let outcome = match rows_by_orchestrator.remove(&p.hello.orchestrator_id) {
                Some(row) => row.registered(
                    p.previous_status,
                    pending_by_orchestrator
                        .remove(&p.hello.orchestrator_id)
                        .unwrap_or_default(),
                ),
                None => Err(StoreError::Other(
                    "registered orchestrator missing from the batch's rows".into(),
                )),
            };
            decided.push((p.index, outcome));
        }
        Ok(decided)
    }
}

/// The batch's hellos as parallel arrays, for `unnest`. JSON travels as text and is cast in
/// SQL.
struct HelloColumns<'a> {
    ids: Vec<&'a str>,
    organizations: Vec<&'a str>,
    organization_names: Vec<&'a str>,
    names: Vec<Option<&'a str>>,
    locations: Vec<Option<&'a str>>,
    features: Vec<Option<&'a str>>,
    metadata: Vec<&'a str>,
    sessions: Vec<&'a str>,
    edges: Vec<&'a str>,
    credentials: Vec<Option<&'a str>>,
}

impl<'a> HelloColumns<'a> {
    fn new(
        rows: &[&'a Planned<'a>],
        organization_names: &'a HashMap<String, String>,
    ) -> Result<Self, StoreError> {
        let mut c = Self {
            ids: Vec::with_capacity(rows.len()),
            organizations: Vec::with_capacity(rows.len()),
            organization_names: Vec::with_capacity(rows.len()),
            names: Vec::with_capacity(rows.len()),
            locations: Vec::with_capacity(rows.len()),
            features: Vec::with_capacity(rows.len()),
            metadata: Vec::with_capacity(rows.len()),
            sessions: Vec::with_capacity(rows.len()),
            edges: Vec::with_capacity(rows.len()),
            credentials: Vec::with_capacity(rows.len()),
        };
        for p in rows {
            let h = p.hello;
            let organization_name = organization_names
                .get(&p.organization_id)
                .ok_or_else(|| StoreError::Other("organization vanished in the batch".into()))?;
            c.ids.push(&h.orchestrator_id);
            c.organizations.push(&p.organization_id);
            c.organization_names.push(organization_name);
            c.names.push(h.name.as_deref());
            c.locations.push(h.location.as_deref());
            c.features.push(p.features.as_deref());
            c.metadata.push(&p.metadata);
            c.sessions.push(&h.session_id);
            c.edges.push(&h.edge_id);
            c.credentials.push(h.credential_id.as_deref());
        }
        Ok(c)
    }
}

/// Binds [`HelloColumns`] as `$2`…`$11` of a query whose `$1` is bound already.
trait BindColumns<'q> {
    fn bind_columns(self, c: &'q HelloColumns<'q>) -> Self;
}

impl<'q, O> BindColumns<'q> for QueryAs<'q, Postgres, O, PgArguments> {
    fn bind_columns(self, c: &'q HelloColumns<'q>) -> Self {
        self.bind(&c.ids)
            .bind(&c.organizations)
            .bind(&c.organization_names)
            .bind(&c.names)
            .bind(&c.locations)
            .bind(&c.features)
            .bind(&c.metadata)
            .bind(&c.sessions)
            .bind(&c.edges)
            .bind(&c.credentials)
    }
}

/// The rows a batch statement wrote, or an error (rolling the batch back) when it wrote
/// fewer than `expected`: what happened to the rest is decided one by one.
fn all_rows(
    written: Result<Vec<HelloRow>, sqlx::Error>,
    expected: usize,
    what: &str,
) -> Result<Vec<HelloRow>, StoreError> {
    let rows = written.map_err(db_error)?;
    if rows.len() == expected {
        Ok(rows)
    } else {
        Err(StoreError::Other(format!(
            "{} of {expected} orchestrators of the batch written: one was {what}",
            rows.len()
        )))
    }
}

/// JSON for a text column of an `unnest`, cast back to `jsonb` in SQL.
fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Invalid(format!("hello metadata is not JSON: {e}")))
}
