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
/// What a page's version statement is assumed to cost until one was timed.
const FIRST_PAGE_COST: Duration = Duration::from_micros(100);

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

/// What one read returned, and when.
struct Snapshot {
    /// When the read began.
    started: Instant,
    /// The write generation when the read began.
    writes: Generation,
    /// The database's clock when it read.
    read_at: DateTime<Utc>,
    /// The database's clock less this process's, as the read found them.
    clock_offset: chrono::Duration,
    entries: HashMap<String, Facts>,
}

/// How a read began: when, and what had happened by then.
#[derive(Clone, Copy)]
struct ReadStart {
    started: Instant,
    /// This process's clock then.
    wall: DateTime<Utc>,
    writes: Generation,
    /// Status events counted by then.
    events: u64,
}

impl Snapshot {
    fn new(start: ReadStart, read_at: DateTime<Utc>, rows: Vec<OrchestratorFacts>) -> Self {
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
            started: start.started,
            writes: start.writes,
            read_at,
            clock_offset: read_at - start.wall,
            entries,
        }
    }
}

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
    /// Pages asked since the last read began.
    pages: u64,
    /// What a page's version statement costs the database (a moving average).
    page_cost: Duration,
    /// What the last read took.
    read_cost: Duration,
    /// How often the view is read: the interval, or four times the last read if longer.
    period: Duration,
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
            inner: Mutex::new(Inner {
                snapshot: None,
                forgotten: HashMap::new(),
                events: 0,
                discard_before: 0,
                unsupported: false,
                highest_transaction: None,
                pages: 0,
                page_cost: FIRST_PAGE_COST,
                read_cost: Duration::ZERO,
                period: interval,
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the view says about each of `ids` for a page of `q`, in order; `None` when it
    /// cannot say (off, not read yet, too old, stale after a write, or a search), and the
    /// page asks the database. Asks for a read in the background when one is due and pays
    /// for itself.
    pub fn lookup(&self, q: &OrchestratorQuery, ids: &[String]) -> Option<Vec<Lookup>> {
        self.lookup_at(q, ids, Utc::now(), Instant::now())
    }

    fn lookup_at(
        &self,
        q: &OrchestratorQuery,
        ids: &[String],
        wall: DateTime<Utc>,
        at: Instant,
    ) -> Option<Vec<Lookup>> {
        if self.interval.is_zero() || q.search.as_deref().is_some_and(|s| !s.is_empty()) {
            return None;
        }
        let mut inner = self.lock();
        if inner.unsupported {
            return None;
        }
        inner.pages = inner.pages.saturating_add(1);
        let age = inner
            .snapshot
            .as_ref()
            .map(|s| at.saturating_duration_since(s.started));
        let usable = inner
            .snapshot
            .as_ref()
            .filter(|s| s.writes == self.staleness.writes())
            .filter(|_| age.is_some_and(|a| a < inner.period.saturating_mul(2)))
            .cloned();
        let due = usable.is_none() || age.is_some_and(|a| a >= inner.period);
        let asked = u32::try_from(inner.pages).unwrap_or(u32::MAX);
        if due && inner.page_cost.saturating_mul(asked) >= inner.read_cost {
            self.wake.notify_one();
        }
        let snapshot = usable?;
        let now = wall + snapshot.clock_offset;
        Some(
            ids.iter()
                .map(|id| {
                    if inner.forgotten.contains_key(id) {
                        return Lookup::Unknown(id.clone());
                    }
                    let Some(facts) = snapshot.entries.get(id) else {
                        return Lookup::Unknown(id.clone());
                    };
                    self.filtered(q, id, facts, snapshot.read_at, now)
                })
                .collect(),
        )
    }

    fn filtered(
        &self,
        q: &OrchestratorQuery,
        id: &str,
        facts: &Facts,
        read_at: DateTime<Utc>,
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
        let status_at = |t| {
            moolai_store::derive_status(
                facts.is_independent,
                facts.last_seen,
                facts.disconnected,
                t,
                self.ttl,
            )
        };
        let status = status_at(now);
        if status != status_at(read_at) {
            // Changed with time alone since the read: a heartbeat since may have kept it
            // alive, which only the database knows.
            return Lookup::Unknown(id.to_owned());
        }
        if q.status.is_some_and(|s| s != status) {
            return Lookup::Excluded;
        }
        Lookup::Current(OrchestratorVersion {
            orchestrator_id: id.to_owned(),
            version: facts.version,
            status,
        })
    }

    /// A page asked the database for its versions, which took `cost`.
    pub fn database_page(&self, cost: Duration) {
        if self.interval.is_zero() {
            return;
        }
        let mut inner = self.lock();
        inner.page_cost = (inner.page_cost.saturating_mul(7) + cost) / 8;
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

    /// Installs what a read that began at `start` returned (read on the database's clock at
    /// `read_at`), unless it was discarded since.
    fn install(&self, start: ReadStart, read_at: DateTime<Utc>, rows: Vec<OrchestratorFacts>) {
        let snapshot = Arc::new(Snapshot::new(start, read_at, rows));
        let mut inner = self.lock();
        if start.events < inner.discard_before {
            return;
        }
        inner.forgotten.retain(|_, number| *number > start.events);
        // The old snapshot is dropped outside the lock.
        let old = inner.snapshot.replace(snapshot);
        drop(inner);
        drop(old);
    }

    /// Takes in a read: forgets the records kept in `rows` first if the database went back.
    fn take(&self, start: ReadStart, facts: FleetFacts, rows: &RowCache) {
        if self.went_back(facts.next_transaction) {
            rows.clear();
            metrics::counter!("api_fleet_view_database_went_back_total").increment(1);
            tracing::warn!(
                next_transaction = facts.next_transaction,
                "the database's transaction ids went back (a restore or a failover): kept records forgotten"
            );
        }
        self.install(start, facts.database_now, facts.orchestrators);
    }

    fn begin_read(&self) -> ReadStart {
        let mut inner = self.lock();
        inner.pages = 0;
        ReadStart {
            started: Instant::now(),
            wall: Utc::now(),
            writes: self.staleness.writes(),
            events: inner.events,
        }
    }

    /// Reads the view whenever a page asks for it (see [`FleetView::lookup`]), at most once
    /// per interval (or four times the last read's duration), until `shutdown`; returns at
    /// once when off or when `store` keeps no row versions. `rows` is forgotten when the
    /// database went back.
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
            let start = self.begin_read();
            let read = tokio::select! {
                () = shutdown.cancelled() => return,
                read = store.orchestrator_facts() => read,
            };
            let spent = start.started.elapsed();
            // After a failure, the interval: a failure's duration (a pool timeout) says
            // nothing about what a read costs.
            let mut gap = self.interval;
            match read {
                Ok(Some(facts)) => {
                    let count = facts.orchestrators.len();
                    self.take(start, facts, &rows);
                    let mut inner = self.lock();
                    inner.read_cost = spent;
                    inner.period = self.interval.max(spent.saturating_mul(4));
                    gap = inner.period;
                    drop(inner);
                    metrics::counter!("api_fleet_view_reads_total", "outcome" => "ok").increment(1);
                    metrics::histogram!("api_fleet_view_read_seconds").record(spent.as_secs_f64());
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
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(gap.saturating_sub(start.started.elapsed())) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;
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

    /// A read beginning now, after `events` status events.
    fn start(view: &FleetView, events: u64) -> ReadStart {
        ReadStart {
            started: Instant::now(),
            wall: Utc::now(),
            writes: view.staleness.writes(),
            events,
        }
    }

    /// A view read now on a database with this process's clock, after `events` status
    /// events; what the read began at.
    fn read_after(view: &FleetView, events: u64, rows: Vec<OrchestratorFacts>) -> ReadStart {
        let s = start(view, events);
        view.install(s, s.wall, rows);
        s
    }

    fn read(view: &FleetView, rows: Vec<OrchestratorFacts>) -> ReadStart {
        read_after(view, 0, rows)
    }

    /// `view`'s answer `later` after the read `s` began.
    fn lookup_later(
        view: &FleetView,
        q: &OrchestratorQuery,
        list: &[&str],
        s: ReadStart,
        later: Duration,
    ) -> Option<Vec<Lookup>> {
        let wall = s.wall + chrono::Duration::from_std(later).unwrap();
        view.lookup_at(q, &ids(list), wall, s.started + later)
    }

    fn asked_for_a_read(view: &FleetView) -> bool {
        view.wake.notified().now_or_never().is_some()
    }

    #[test]
    fn answers_with_versions_and_statuses_and_applies_the_filters() {
        let v = view(1_000);
        let q = OrchestratorQuery::default();
        assert_eq!(v.lookup(&q, &ids(&["a"])), None, "not read yet");
        let mut independent = facts("c", "org-1", 3, 0);
        independent.is_independent = true;
        let mut disconnected = facts("d", "org-1", 4, 0);
        disconnected.disconnected = true;
        let s = read(
            &v,
            vec![
                facts("a", "org-1", 1, 0),
                facts("b", "org-2", 2, 121),
                independent,
                disconnected,
            ],
        );
        let all = ["a", "b", "c", "d", "new"];
        assert_eq!(
            lookup_later(&v, &q, &all, s, Duration::ZERO).unwrap(),
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
            lookup_later(&v, &active_of_org_1, &all, s, Duration::ZERO).unwrap(),
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
            lookup_later(&v, &scoped, &["a", "b"], s, Duration::ZERO).unwrap(),
            vec![Lookup::Excluded, current("b", 2, Status::Inactive)]
        );
        let search = OrchestratorQuery {
            search: Some("a".into()),
            ..q
        };
        assert_eq!(
            lookup_later(&v, &search, &all, s, Duration::ZERO),
            None,
            "searches go to the database"
        );
    }

    #[test]
    fn a_status_that_changed_with_time_since_the_read_is_asked_of_the_database() {
        let v = view(60_000);
        let s = start(&v, 0);
        let nearly_expired = OrchestratorFacts {
            last_seen: Some(s.wall - TTL + chrono::Duration::milliseconds(300)),
            ..facts("a", "o", 1, 0)
        };
        v.install(s, s.wall, vec![nearly_expired]);
        let q = OrchestratorQuery::default();
        assert_eq!(
            lookup_later(&v, &q, &["a"], s, Duration::from_millis(100)).unwrap(),
            vec![current("a", 1, Status::Active)]
        );
        // Expired by now on what the view read; a heartbeat since may have kept it alive.
        assert_eq!(
            lookup_later(&v, &q, &["a"], s, Duration::from_secs(1)).unwrap(),
            vec![Lookup::Unknown("a".into())]
        );
    }

    #[test]
    fn statuses_are_derived_on_the_database_clock() {
        let v = view(60_000);
        let s = start(&v, 0);
        // The database's clock is an hour ahead of this process's.
        let database_now = s.wall + chrono::Duration::hours(1);
        let quiet = OrchestratorFacts {
            last_seen: Some(database_now - TTL - chrono::Duration::seconds(10)),
            ..facts("a", "o", 1, 0)
        };
        v.install(s, database_now, vec![quiet]);
        // On this process's clock the last heartbeat is in the future: "active".
        assert_eq!(
            lookup_later(&v, &OrchestratorQuery::default(), &["a"], s, Duration::ZERO).unwrap(),
            vec![current("a", 1, Status::Inactive)]
        );
    }

    #[test]
    fn a_write_or_age_makes_the_view_unusable_until_read_again() {
        let v = view(1_000);
        let q = OrchestratorQuery::default();
        let s = read(&v, vec![facts("a", "o", 1, 0)]);
        assert!(
            lookup_later(&v, &q, &["a"], s, Duration::from_millis(1_999)).is_some(),
            "past the interval, still used"
        );
        assert_eq!(
            lookup_later(&v, &q, &["a"], s, Duration::from_secs(2)),
            None,
            "twice the interval: not used"
        );
        v.staleness.bump();
        assert_eq!(
            lookup_later(&v, &q, &["a"], s, Duration::ZERO),
            None,
            "a write since the read"
        );
        let s = read(&v, vec![facts("a", "o", 2, 0)]);
        assert_eq!(
            lookup_later(&v, &q, &["a"], s, Duration::ZERO).unwrap(),
            vec![current("a", 2, Status::Active)]
        );
        assert_eq!(view(0).lookup(&q, &ids(&["a"])), None, "off");
    }

    #[test]
    fn a_read_is_asked_for_when_due_and_when_the_pages_since_would_have_cost_as_much() {
        let v = view(1_000);
        let q = OrchestratorQuery::default();
        assert_eq!(v.lookup(&q, &ids(&["a"])), None);
        assert!(
            asked_for_a_read(&v),
            "the first page asks for the first read"
        );
        let s = read(&v, vec![facts("a", "o", 1, 0)]);
        {
            let mut inner = v.lock();
            inner.pages = 0;
            inner.read_cost = Duration::from_millis(10);
            inner.page_cost = Duration::from_millis(1);
        }
        assert!(lookup_later(&v, &q, &["a"], s, Duration::from_millis(500)).is_some());
        assert!(!asked_for_a_read(&v), "not due");
        for _ in 2..10 {
            assert!(lookup_later(&v, &q, &["a"], s, Duration::from_millis(1_500)).is_some());
            assert!(
                !asked_for_a_read(&v),
                "due, but nine pages cost less than a read"
            );
        }
        assert!(lookup_later(&v, &q, &["a"], s, Duration::from_millis(1_500)).is_some());
        assert!(asked_for_a_read(&v), "ten pages cost as much as a read");

        v.database_page(Duration::from_millis(9));
        assert_eq!(v.lock().page_cost, Duration::from_millis(2));
    }

    #[test]
    fn a_status_event_hides_its_orchestrator_until_a_read_that_started_after_it() {
        let v = view(60_000);
        let q = OrchestratorQuery::default();
        let s = read(&v, vec![facts("a", "o", 1, 0), facts("b", "o", 1, 0)]);
        v.forget("a");
        assert_eq!(
            lookup_later(&v, &q, &["a", "b"], s, Duration::ZERO).unwrap(),
            vec![Lookup::Unknown("a".into()), current("b", 1, Status::Active)]
        );
        // A read that began before the event (0 events then) may not show it.
        let s = read_after(&v, 0, vec![facts("a", "o", 2, 0)]);
        assert_eq!(
            lookup_later(&v, &q, &["a"], s, Duration::ZERO).unwrap(),
            vec![Lookup::Unknown("a".into())]
        );
        // One that began after it (1 event then) does.
        let s = read_after(&v, 1, vec![facts("a", "o", 2, 0)]);
        assert_eq!(
            lookup_later(&v, &q, &["a"], s, Duration::ZERO).unwrap(),
            vec![current("a", 2, Status::Active)]
        );
    }

    #[test]
    fn a_database_whose_transaction_ids_went_back_makes_every_kept_record_forgotten() {
        let v = view(60_000);
        let rows = RowCache::new(1 << 20);
        let q = OrchestratorQuery::default();
        let read_at = |next_transaction| {
            let s = start(&v, 0);
            v.take(
                s,
                FleetFacts {
                    next_transaction,
                    database_now: s.wall,
                    orchestrators: vec![facts("a", "o", 7, 0)],
                },
                &rows,
            );
            s
        };
        read_at(1_000);
        rows.put("a", 7, Status::Active, bytes::Bytes::from_static(b"{}"));
        read_at(1_000);
        read_at(1_500);
        assert_eq!(rows.len(), 1, "ids moving forward keep the records");
        // Restored to an earlier point: version 7 may now be another transaction's.
        let s = read_at(1_200);
        assert!(rows.is_empty());
        assert_eq!(
            lookup_later(&v, &q, &["a"], s, Duration::ZERO).unwrap(),
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
        let s = read(&v, vec![facts("a", "o", 1, 0)]);
        for id in ["x", "y", "z"] {
            v.forget(id);
        }
        assert_eq!(lookup_later(&v, &q, &["a"], s, Duration::ZERO), None);
        // A read that began before the overflow is discarded…
        let s = read_after(&v, 2, vec![facts("a", "o", 1, 0)]);
        assert_eq!(lookup_later(&v, &q, &["a"], s, Duration::ZERO), None);
        // …one that began after it is used.
        let s = read_after(&v, 3, vec![facts("a", "o", 1, 0)]);
        assert!(lookup_later(&v, &q, &["a"], s, Duration::ZERO).is_some());
    }
}
