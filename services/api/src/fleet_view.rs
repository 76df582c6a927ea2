//! A view of the whole fleet kept in memory (`API_FLEET_VIEW_MS`): every orchestrator's row
//! version, organization and the facts its status is derived from, read in one statement and
//! read again in the background while listings use it. A listing page finds its rows'
//! versions and statuses here instead of asking the database for them (as the Kubernetes API
//! server answers lists from its watch cache), and reads in full only the records the row
//! cache ([`crate::row_cache`]) does not keep at those versions.
//!
//! How far behind the database it can be:
//! - a write through this process makes the whole view unusable until a read that started
//!   after it (pages go to the database meanwhile);
//! - a status event (a hello, a disconnect, an expiry, a toggle through another replica)
//!   makes its orchestrator unknown to the view until such a read, so pages read it from the
//!   database;
//! - any other write (heartbeats moving `last_seen`, a hello's metadata, a change through
//!   another replica without a status event) shows after the next read: a view older than
//!   the interval is read again in the background, and one older than twice the interval is
//!   not used.
//!
//! Statuses are derived when a page is served, from the `last_seen` read, so an orchestrator
//! that went quiet leaves the active listing on time.
//!
//! Each read also notes the database's next transaction id. Row versions are transaction ids,
//! so a database restored to an earlier point, or a standby promoted after losing
//! transactions, can hand out versions seen before for other contents: a read whose next id
//! is lower than one seen before forgets every record kept ([`RowCache::clear`]) before the
//! view is used again. Records kept are trusted for [`MAX_AGE_CHECKED`] on pages the view
//! answers (a check that ran within two intervals) and for [`MAX_AGE`] otherwise. Searches are not answered from it. A read
//! runs at most once per interval, or once per four times the last read took when that is
//! longer (a 100,000-orchestrator fleet reads in ~40 ms), and only while listings use it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use moolai_store::{FleetFacts, OrchestratorFacts, OrchestratorQuery, OrchestratorVersion, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::report_cache::{Generation, Staleness};
use crate::row_cache::RowCache;
#[cfg(doc)]
use crate::row_cache::{MAX_AGE, MAX_AGE_CHECKED};

/// Status events remembered until the next read; past it, the view is dropped and reads
/// already started are discarded (whatever they read may miss one of the events).
const MAX_FORGOTTEN: usize = 100_000;

/// What the view says about one id of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Matches the page's filters, at this version and status.
    Current(OrchestratorVersion),
    /// Does not match the page's filters: left out.
    Excluded,
    /// Not known to the view (created or changed since it was read): read from the database.
    Unknown(String),
}

struct Facts {
    version: i64,
    organization: Arc<str>,
    last_seen: Option<DateTime<Utc>>,
    is_independent: bool,
    disconnected: bool,
}

struct Snapshot {
    /// When the read began.
    started: Instant,
    /// The write generation when the read began.
    writes: Generation,
    entries: HashMap<String, Facts>,
}

impl Snapshot {
    fn new(started: Instant, writes: Generation, rows: Vec<OrchestratorFacts>) -> Self {
        let mut organizations: HashMap<String, Arc<str>> = HashMap::new();
        let mut entries = HashMap::with_capacity(rows.len());
        for row in rows {
            let organization = match organizations.get(&row.organization_id) {
                Some(o) => o.clone(),
                None => {
                    let o: Arc<str> = row.organization_id.as_str().into();
                    organizations.insert(row.organization_id, o.clone());
                    o
                }
            };
            entries.insert(
                row.orchestrator_id,
                Facts {
                    version: row.version,
                    organization,
                    last_seen: row.last_seen,
                    is_independent: row.is_independent,
                    disconnected: row.disconnected,
                },
            );
        }
        Self {
            started,
            writes,
            entries,
        }
    }
}

#[derive(Default)]
struct Inner {
    snapshot: Option<Arc<Snapshot>>,
    /// Orchestrators with a status event the view may not show, with the event's number.
    forgotten: HashMap<String, u64>,
    /// Status events counted so far.
    events: u64,
    /// Reads started before this many events are discarded (the forgotten set overflowed).
    discard_before: u64,
    /// The store keeps no row versions: the view is never used.
    unsupported: bool,
    /// The highest next transaction id a read saw.
    highest_transaction: Option<i64>,
}

pub struct FleetView {
    /// Zero: off.
    interval: Duration,
    ttl: chrono::Duration,
    staleness: Staleness,
    max_forgotten: usize,
    inner: Mutex<Inner>,
    wake: Notify,
}

impl FleetView {
    /// A view read at most every `interval` (zero: never used), deriving statuses with the
    /// heartbeat `ttl`, unusable after any write counted by `staleness`.
    #[must_use]
    pub fn new(interval: Duration, ttl: chrono::Duration, staleness: Staleness) -> Self {
        Self {
            interval,
            ttl,
            staleness,
            max_forgotten: MAX_FORGOTTEN,
            inner: Mutex::default(),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the view says about each of `ids` for a page of `q`, in order; `None` when it
    /// cannot say (off, not read yet, too old, stale after a write, or a search), and the
    /// page asks the database. Asks for a read in the background when one is due.
    pub fn lookup(&self, q: &OrchestratorQuery, ids: &[String]) -> Option<Vec<Lookup>> {
        if self.interval.is_zero() || q.search.as_deref().is_some_and(|s| !s.is_empty()) {
            return None;
        }
        let now = Utc::now();
        let inner = self.lock();
        if inner.unsupported {
            return None;
        }
        let Some(snapshot) = inner.snapshot.as_ref() else {
            self.wake.notify_one();
            return None;
        };
        let age = snapshot.started.elapsed();
        if age >= self.interval {
            self.wake.notify_one();
        }
        if snapshot.writes != self.staleness.writes() || age >= self.interval.saturating_mul(2) {
            return None;
        }
        Some(
            ids.iter()
                .map(|id| {
                    if inner.forgotten.contains_key(id) {
                        return Lookup::Unknown(id.clone());
                    }
                    let Some(facts) = snapshot.entries.get(id) else {
                        return Lookup::Unknown(id.clone());
                    };
                    self.filtered(q, id, facts, now)
                })
                .collect(),
        )
    }

    fn filtered(
        &self,
        q: &OrchestratorQuery,
        id: &str,
        facts: &Facts,
        now: DateTime<Utc>,
    ) -> Lookup {
        let organization = &*facts.organization;
        if q.organization_id
            .as_deref()
            .is_some_and(|o| o != organization)
            || q.scope
                .as_ref()
                .is_some_and(|scope| !scope.iter().any(|o| o == organization))
        {
            return Lookup::Excluded;
        }
        let status = moolai_store::derive_status(
            facts.is_independent,
            facts.last_seen,
            facts.disconnected,
            now,
            self.ttl,
        );
        if q.status.is_some_and(|s| s != status) {
            return Lookup::Excluded;
        }
        Lookup::Current(OrchestratorVersion {
            orchestrator_id: id.to_owned(),
            version: facts.version,
            status,
        })
    }

    /// A status event about `orchestrator_id`: the view does not answer for it until a read
    /// that started after now.
    pub fn forget(&self, orchestrator_id: &str) {
        if self.interval.is_zero() {
            return;
        }
        let mut inner = self.lock();
        inner.events += 1;
        let number = inner.events;
        inner.forgotten.insert(orchestrator_id.to_owned(), number);
        if inner.forgotten.len() > self.max_forgotten {
            inner.forgotten.clear();
            inner.snapshot = None;
            inner.discard_before = number;
        }
    }

    /// Notes the next transaction id a read saw; true when it is lower than one seen before
    /// (the database went back: kept records must be forgotten before the read is used).
    fn went_back(&self, next_transaction: i64) -> bool {
        let mut inner = self.lock();
        let back = inner
            .highest_transaction
            .is_some_and(|highest| next_transaction < highest);
        if back {
            inner.snapshot = None;
            inner.highest_transaction = Some(next_transaction);
        } else {
            inner.highest_transaction = Some(
                inner
                    .highest_transaction
                    .map_or(next_transaction, |h| h.max(next_transaction)),
            );
        }
        back
    }

    /// Installs what a read that began at `started` (after `events` status events, with the
    /// write generation `writes`) returned, unless it was discarded since.
    fn install(
        &self,
        started: Instant,
        writes: Generation,
        events: u64,
        rows: Vec<OrchestratorFacts>,
    ) {
        let snapshot = Arc::new(Snapshot::new(started, writes, rows));
        let mut inner = self.lock();
        if events < inner.discard_before {
            return;
        }
        inner.forgotten.retain(|_, number| *number > events);
        // The old snapshot is dropped outside the lock.
        let old = inner.snapshot.replace(snapshot);
        drop(inner);
        drop(old);
    }

    /// Takes in a read: forgets the records kept in `rows` first if the database went back.
    fn take(
        &self,
        started: Instant,
        writes: Generation,
        events: u64,
        facts: FleetFacts,
        rows: &RowCache,
    ) {
        if self.went_back(facts.next_transaction) {
            rows.clear();
            metrics::counter!("api_fleet_view_database_went_back_total").increment(1);
            tracing::warn!(
                next_transaction = facts.next_transaction,
                "the database's transaction ids went back (a restore or a failover): kept records forgotten"
            );
        }
        self.install(started, writes, events, facts.orchestrators);
    }

    /// Reads the view whenever a page asks for it, at most once per interval (or four times
    /// the last read's duration), until `shutdown`; returns at once when off or when `store`
    /// keeps no row versions. `rows` is forgotten when the database went back.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        rows: Arc<RowCache>,
        shutdown: CancellationToken,
    ) {
        if self.interval.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
            }
            let started = Instant::now();
            let writes = self.staleness.writes();
            let events = self.lock().events;
            match store.orchestrator_facts().await {
                Ok(Some(facts)) => {
                    let count = facts.orchestrators.len();
                    self.take(started, writes, events, facts, &rows);
                    metrics::counter!("api_fleet_view_reads_total", "outcome" => "ok").increment(1);
                    metrics::histogram!("api_fleet_view_read_seconds")
                        .record(started.elapsed().as_secs_f64());
                    #[allow(clippy::cast_precision_loss)]
                    metrics::gauge!("api_fleet_view_orchestrators").set(count as f64);
                }
                Ok(None) => {
                    self.lock().unsupported = true;
                    tracing::info!("the store keeps no row versions: listings read them per page");
                    return;
                }
                Err(e) => {
                    metrics::counter!("api_fleet_view_reads_total", "outcome" => "error")
                        .increment(1);
                    tracing::warn!(error = %e, "reading the fleet view failed; pages read versions from the database");
                }
            }
            let spent = started.elapsed();
            let gap = self.interval.max(spent.saturating_mul(4));
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(gap.saturating_sub(spent)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use moolai_protocol::Status;

    use super::*;

    const TTL: chrono::Duration = chrono::Duration::seconds(120);

    fn facts(id: &str, org: &str, version: i64, seen_secs_ago: i64) -> OrchestratorFacts {
        OrchestratorFacts {
            orchestrator_id: id.into(),
            organization_id: org.into(),
            version,
            last_seen: Some(Utc::now() - chrono::Duration::seconds(seen_secs_ago)),
            is_independent: false,
            disconnected: false,
        }
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn current(id: &str, version: i64, status: Status) -> Lookup {
        Lookup::Current(OrchestratorVersion {
            orchestrator_id: id.into(),
            version,
            status,
        })
    }

    fn view(interval_ms: u64) -> FleetView {
        FleetView::new(
            Duration::from_millis(interval_ms),
            TTL,
            Staleness::default(),
        )
    }

    /// A view read `ago` before now, before any event or write.
    fn read(view: &FleetView, ago: Duration, rows: Vec<OrchestratorFacts>) {
        let started = Instant::now().checked_sub(ago).unwrap();
        view.install(started, view.staleness.writes(), 0, rows);
    }

    /// A read that began now, after `events` status events.
    fn read_after(view: &FleetView, events: u64, rows: Vec<OrchestratorFacts>) {
        view.install(Instant::now(), view.staleness.writes(), events, rows);
    }

    #[test]
    fn answers_with_versions_and_statuses_derived_now_and_applies_the_filters() {
        let v = view(1_000);
        let q = OrchestratorQuery::default();
        assert_eq!(v.lookup(&q, &ids(&["a"])), None, "not read yet");
        let mut independent = facts("c", "org-1", 3, 0);
        independent.is_independent = true;
        let mut disconnected = facts("d", "org-1", 4, 0);
        disconnected.disconnected = true;
        read(
            &v,
            Duration::ZERO,
            vec![
                facts("a", "org-1", 1, 0),
                facts("b", "org-2", 2, 121),
                independent,
                disconnected,
            ],
        );
        let all = ids(&["a", "b", "c", "d", "new"]);
        assert_eq!(
            v.lookup(&q, &all).unwrap(),
            vec![
                current("a", 1, Status::Active),
                current("b", 2, Status::Inactive),
                current("c", 3, Status::Independent),
                current("d", 4, Status::Inactive),
                Lookup::Unknown("new".into()),
            ]
        );
        let active_of_org_1 = OrchestratorQuery {
            status: Some(Status::Active),
            organization_id: Some("org-1".into()),
            ..q.clone()
        };
        assert_eq!(
            v.lookup(&active_of_org_1, &all).unwrap(),
            vec![
                current("a", 1, Status::Active),
                Lookup::Excluded,
                Lookup::Excluded,
                Lookup::Excluded,
                Lookup::Unknown("new".into()),
            ]
        );
        let scoped = OrchestratorQuery {
            scope: Some(vec!["org-2".into()]),
            ..q.clone()
        };
        assert_eq!(
            v.lookup(&scoped, &ids(&["a", "b"])).unwrap(),
            vec![Lookup::Excluded, current("b", 2, Status::Inactive)]
        );
        let search = OrchestratorQuery {
            search: Some("a".into()),
            ..q
        };
        assert_eq!(v.lookup(&search, &all), None, "searches go to the database");
    }

    #[test]
    fn a_status_goes_inactive_with_time_alone() {
        let v = view(60_000);
        read(
            &v,
            Duration::ZERO,
            vec![OrchestratorFacts {
                last_seen: Some(Utc::now() - TTL + chrono::Duration::milliseconds(300)),
                ..facts("a", "o", 1, 0)
            }],
        );
        let q = OrchestratorQuery::default();
        assert_eq!(
            v.lookup(&q, &ids(&["a"])).unwrap(),
            vec![current("a", 1, Status::Active)]
        );
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            v.lookup(&q, &ids(&["a"])).unwrap(),
            vec![current("a", 1, Status::Inactive)]
        );
    }

    #[test]
    fn a_write_or_age_makes_the_view_unusable_until_read_again() {
        let v = view(1_000);
        let q = OrchestratorQuery::default();
        read(
            &v,
            Duration::from_millis(1_500),
            vec![facts("a", "o", 1, 0)],
        );
        assert!(
            v.lookup(&q, &ids(&["a"])).is_some(),
            "past the interval, still used"
        );
        read(
            &v,
            Duration::from_millis(2_000),
            vec![facts("a", "o", 1, 0)],
        );
        assert_eq!(
            v.lookup(&q, &ids(&["a"])),
            None,
            "twice the interval: not used"
        );

        read(&v, Duration::ZERO, vec![facts("a", "o", 1, 0)]);
        v.staleness.bump();
        assert_eq!(v.lookup(&q, &ids(&["a"])), None, "a write since the read");
        read(&v, Duration::ZERO, vec![facts("a", "o", 2, 0)]);
        assert_eq!(
            v.lookup(&q, &ids(&["a"])).unwrap(),
            vec![current("a", 2, Status::Active)]
        );
        assert_eq!(view(0).lookup(&q, &ids(&["a"])), None, "off");
    }

    #[test]
    fn a_status_event_hides_its_orchestrator_until_a_read_that_started_after_it() {
        let v = view(60_000);
        let q = OrchestratorQuery::default();
        read(
            &v,
            Duration::ZERO,
            vec![facts("a", "o", 1, 0), facts("b", "o", 1, 0)],
        );
        v.forget("a");
        assert_eq!(
            v.lookup(&q, &ids(&["a", "b"])).unwrap(),
            vec![Lookup::Unknown("a".into()), current("b", 1, Status::Active)]
        );
        // A read that began before the event (0 events then) may not show it.
        read_after(&v, 0, vec![facts("a", "o", 2, 0)]);
        assert_eq!(
            v.lookup(&q, &ids(&["a"])).unwrap(),
            vec![Lookup::Unknown("a".into())]
        );
        // One that began after it (1 event then) does.
        read_after(&v, 1, vec![facts("a", "o", 2, 0)]);
        assert_eq!(
            v.lookup(&q, &ids(&["a"])).unwrap(),
            vec![current("a", 2, Status::Active)]
        );
    }

    #[test]
    fn a_database_whose_transaction_ids_went_back_makes_every_kept_record_forgotten() {
        let v = view(60_000);
        let rows = RowCache::new(1 << 20);
        let q = OrchestratorQuery::default();
        let read_at = |next_transaction| {
            v.take(
                Instant::now(),
                v.staleness.writes(),
                0,
                FleetFacts {
                    next_transaction,
                    orchestrators: vec![facts("a", "o", 7, 0)],
                },
                &rows,
            );
        };
        read_at(1_000);
        rows.put("a", 7, Status::Active, bytes::Bytes::from_static(b"{}"));
        read_at(1_000);
        read_at(1_500);
        assert_eq!(rows.len(), 1, "ids moving forward keep the records");
        // Restored to an earlier point: version 7 may now be another transaction's.
        read_at(1_200);
        assert!(rows.is_empty());
        assert_eq!(
            v.lookup(&q, &ids(&["a"])).unwrap(),
            vec![current("a", 7, Status::Active)],
            "the read itself is used, from the database as it is now"
        );
        rows.put("a", 7, Status::Active, bytes::Bytes::from_static(b"{}"));
        read_at(1_300);
        assert_eq!(rows.len(), 1, "compared with the lower id from then on");
    }

    #[test]
    fn too_many_status_events_drop_the_view_and_the_reads_under_way() {
        let mut v = view(60_000);
        v.max_forgotten = 2;
        let q = OrchestratorQuery::default();
        read(&v, Duration::ZERO, vec![facts("a", "o", 1, 0)]);
        for id in ["x", "y", "z"] {
            v.forget(id);
        }
        assert_eq!(v.lookup(&q, &ids(&["a"])), None);
        // A read that began before the overflow is discarded…
        read_after(&v, 2, vec![facts("a", "o", 1, 0)]);
        assert_eq!(v.lookup(&q, &ids(&["a"])), None);
        // …one that began after it is used.
        read_after(&v, 3, vec![facts("a", "o", 1, 0)]);
        assert!(v.lookup(&q, &ids(&["a"])).is_some());
    }
}
