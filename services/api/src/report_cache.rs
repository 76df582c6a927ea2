//! A short-lived cache of the fleet-wide reports (`overview`, `costs`) and of the
//! orchestrator listings' totals.
//!
//! The reports aggregate the whole fleet on every request (100,000 orchestrators and a month
//! of usage: 50 ms to over a second), and a listing's total reads every match, while the
//! dashboard asks for them on every screen and after every status event. An answer is
//! reused for `API_REPORT_CACHE_MS` (default 1000; 0 turns the cache off), per caller scope
//! and query:
//! - every successful write through this api process makes all cached answers stale: the
//!   next request computes afresh, so an operator sees their own change;
//! - a status event (from NATS, whichever replica caused it) makes stale what can count its
//!   orchestrator: answers about its organization and those not filtered by one (an
//!   organization's listings outlive the churn of the others). Such an answer is computed
//!   again on the next request, but not before four times what it last took to compute and
//!   not within a second of it (or the TTL if shorter; served until then), so a steady
//!   stream of events keeps at most a quarter of a database connection busy per answer, and
//!   a cheap answer is read at most once a second, instead of recomputing it for every
//!   request. While events keep coming — the answer was itself computed because of them,
//!   less than a TTL past that — it is served while one request refreshes it in the
//!   background instead of making requests wait; the first change after a quiet spell is
//!   computed before answering (unless a computation is already running). The dashboard
//!   refetches once more a few seconds after a burst of events, so it ends up showing the
//!   last of them. Cost reports count usage, which a status event does not change: their
//!   cache follows writes only ([`Follows::Writes`]);
//! - requests for an answer that has to be computed share one computation: the first
//!   computes, the others wait for it — any started since the last write, status events
//!   since or not — and when it fails or is abandoned one of them leads the next attempt.
//!   A burst of dashboards after a write, or a steady stream of events, costs one database
//!   read at a time per answer, not one per request. An answer never replaces one from a
//!   computation that started later;
//! - an answer past its freshness (and younger than it plus nine TTLs) is still served while
//!   one request refreshes it in the background, so concurrent readers do not queue on the
//!   database. Writes through another api replica show after at most that long;
//! - an answer is fresh for the TTL, or for four times what it took to compute when that is
//!   longer (a whole-fleet cost report of a month can take most of a second), up to a
//!   minute: refreshing it then keeps at most a quarter of one database connection busy,
//!   where a TTL shorter than the computation would keep one busy all the time.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// An answer stays fresh for at least this many times what it took to compute.
const COMPUTE_TIMES_KEPT: u32 = 4;
/// Status events make an answer computed again at most this often (or the TTL if shorter),
/// however cheap: an organization in a reconnect storm has events every few milliseconds,
/// and its listings recomputed ten times a second halved the listing throughput of the api
/// bench at 1,000 events/s.
const EVENT_REFRESH_EVERY: Duration = Duration::from_secs(1);
/// …but no longer than this for that reason (a computation that waited out a database stall
/// would otherwise keep its answer for minutes).
const SLOW_FRESH_AT_MOST: Duration = Duration::from_secs(60);

/// Cached answers per cache unless it says otherwise; past its number of distinct keys a
/// cache starts over.
const MAX_ENTRIES: usize = 1024;

/// Organizations whose changes are counted apart; past it, the counters start over (and
/// everything cached is stale once).
const TRACKED_ORGANIZATIONS: usize = 100_000;

/// The shared "something changed" counters: bumping makes cached answers stale, all of them
/// ([`Staleness::bump`]) or those an organization's change can touch
/// ([`Staleness::bump_organization`]).
#[derive(Debug, Clone, Default)]
pub struct Staleness(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    everything: AtomicU64,
    /// Bumped with any organization: for answers not filtered by one.
    any_organization: AtomicU64,
    organizations: Mutex<HashMap<String, u64>>,
}

/// The state of the world an answer was computed from, as far as its key can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation {
    everything: u64,
    part: u64,
}

impl Staleness {
    /// Everything cached so far is stale.
    pub fn bump(&self) {
        self.0.everything.fetch_add(1, Ordering::AcqRel);
    }

    /// What is cached about `organization`, or not filtered by organization, is stale.
    pub fn bump_organization(&self, organization: &str) {
        {
            let mut orgs = self
                .0
                .organizations
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = orgs.get_mut(organization) {
                *n += 1;
            } else {
                if orgs.len() >= TRACKED_ORGANIZATIONS {
                    // Starting the counters over could make an old generation current
                    // again; a new `everything` rules that out.
                    orgs.clear();
                    self.bump();
                }
                orgs.insert(organization.to_owned(), 1);
            }
        }
        self.0.any_organization.fetch_add(1, Ordering::AcqRel);
    }

    /// The generation of answers about `organization` (`None`: not filtered by one).
    pub(crate) fn current_for(&self, organization: Option<&str>) -> Generation {
        match organization {
            // Never starts over: any `everything` goes with it.
            None => {
                let part = self.0.any_organization.load(Ordering::Acquire);
                let everything = self.0.everything.load(Ordering::Acquire);
                Generation { everything, part }
            }
            Some(org) => {
                // Both under the lock the counters are cleared (and `everything` bumped)
                // under: a count from before a clear never pairs with `everything` after it.
                let orgs = self
                    .0
                    .organizations
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let part = orgs.get(org).copied().unwrap_or(0);
                let everything = self.0.everything.load(Ordering::Acquire);
                Generation { everything, part }
            }
        }
    }

    /// The generation of answers no status event changes: writes only.
    pub(crate) fn writes(&self) -> Generation {
        Generation {
            everything: self.0.everything.load(Ordering::Acquire),
            part: 0,
        }
    }
}

/// Which changes make a cache's answers stale, besides writes through this process.
pub enum Follows<K> {
    /// None: the answers count what no status event changes (usage).
    Writes,
    /// Every status event.
    StatusEvents,
    /// The status events of the organization a key names, or every one for a key naming none.
    StatusEventsOf(fn(&K) -> Option<&str>),
}

pub struct ReportCache<K, V> {
    ttl: Duration,
    max_entries: usize,
    staleness: Staleness,
    follows: Follows<K>,
    inner: Mutex<Inner<K, V>>,
    flight_ids: AtomicU64,
}

struct Inner<K, V> {
    entries: HashMap<K, Entry<V>>,
    /// Computations running for a key, at most one per key.
    flights: HashMap<K, Flight<V>>,
}

struct Entry<V> {
    value: Arc<V>,
    /// When the computation that produced it started.
    at: Instant,
    /// How long it is served without a refresh: the TTL, or longer for a slow computation.
    fresh_for: Duration,
    /// Four times what it took to compute, at least [`EVENT_REFRESH_EVERY`]: how long it is
    /// served without a refresh after a status event changed what it counts.
    settle_for: Duration,
    /// Computed because status events changed what it counts.
    churning: bool,
    generation: Generation,
    refreshing: bool,
}

/// What a shared computation ended with: its answer, or `None` when it failed.
type Outcome<V> = Option<Arc<V>>;

struct Flight<V> {
    id: u64,
    generation: Generation,
    /// `Some` once it ended; closed without a value when its leader was dropped.
    outcome: watch::Receiver<Option<Outcome<V>>>,
}

enum Plan<V> {
    Fresh(Arc<V>),
    /// Serve this and refresh in the background.
    Refresh(Arc<V>, Churning),
    /// Wait for the computation running for this key.
    Join(watch::Receiver<Option<Outcome<V>>>),
    /// Compute, telling those who join through this.
    Lead(u64, watch::Sender<Option<Outcome<V>>>, Churning),
}

/// Whether an answer is computed because status events changed what it counts.
type Churning = bool;

impl<K, V> ReportCache<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Send + Sync + 'static,
{
    /// A cache whose answers every status event makes stale.
    #[must_use]
    pub fn new(ttl: Duration, staleness: Staleness) -> Arc<Self> {
        Self::bounded(ttl, staleness, MAX_ENTRIES, Follows::StatusEvents)
    }

    /// A cache whose answers only writes make stale.
    #[must_use]
    pub fn writes_only(ttl: Duration, staleness: Staleness) -> Arc<Self> {
        Self::bounded(ttl, staleness, MAX_ENTRIES, Follows::Writes)
    }

    /// A cache of at most `max_entries` keys (for answers larger than a report), made stale
    /// by writes and what `follows` says.
    #[must_use]
    pub fn bounded(
        ttl: Duration,
        staleness: Staleness,
        max_entries: usize,
        follows: Follows<K>,
    ) -> Arc<Self> {
        Arc::new(Self {
            ttl,
            max_entries,
            staleness,
            follows,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                flights: HashMap::new(),
            }),
            flight_ids: AtomicU64::new(0),
        })
    }

    /// The answer for `key`: cached, or from `compute` (see the module docs).
    ///
    /// # Errors
    /// What `compute` returns when the answer had to be computed by this call.
    pub async fn get<F, Fut, E>(self: &Arc<Self>, key: K, compute: F) -> Result<Arc<V>, E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        if self.ttl.is_zero() {
            return compute().await.map(Arc::new);
        }
        loop {
            let generation = self.generation(&key);
            let now = Instant::now();
            match self.plan(&key, generation, now) {
                Plan::Fresh(value) => return Ok(value),
                Plan::Refresh(value, churning) => {
                    let cache = self.clone();
                    tokio::spawn(async move {
                        match compute().await {
                            Ok(fresh) => {
                                cache.store(key, Arc::new(fresh), generation, now, churning);
                            }
                            // Served stale a little longer; the next request past the TTL
                            // retries.
                            Err(_) => cache.refresh_failed(&key),
                        }
                    });
                    return Ok(value);
                }
                Plan::Join(mut outcome) => {
                    if let Ok(ended) = outcome.wait_for(Option::is_some).await
                        && let Some(Some(value)) = &*ended
                    {
                        return Ok(value.clone());
                    }
                    // The computation failed or was abandoned: plan again, so one of those
                    // who waited leads the next attempt.
                }
                Plan::Lead(id, outcome, churning) => {
                    let flight = FlightGuard {
                        cache: self,
                        key: Some(key),
                        id,
                        outcome,
                    };
                    let result = compute().await.map(Arc::new);
                    flight.end(result.as_ref().ok().cloned(), generation, now, churning);
                    return result;
                }
            }
        }
    }

    fn generation(&self, key: &K) -> Generation {
        match self.follows {
            Follows::Writes => self.staleness.writes(),
            Follows::StatusEvents => self.staleness.current_for(None),
            Follows::StatusEventsOf(organization_of) => {
                self.staleness.current_for(organization_of(key))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn plan(&self, key: &K, generation: Generation, now: Instant) -> Plan<V> {
        let mut inner = self.lock();
        let mut event_stale = false;
        if let Some(e) = inner.entries.get_mut(key)
            && e.generation.everything == generation.everything
        {
            let age = now.saturating_duration_since(e.at);
            let served_until = e.fresh_for + self.ttl * 9;
            if e.generation == generation {
                if age < e.fresh_for || (e.refreshing && age < served_until) {
                    return Plan::Fresh(e.value.clone());
                }
                if age < served_until {
                    e.refreshing = true;
                    return Plan::Refresh(e.value.clone(), false);
                }
            } else {
                // Changed since by status events only.
                if age < e.settle_for || (e.refreshing && age < served_until) {
                    return Plan::Fresh(e.value.clone());
                }
                if e.churning && age < e.settle_for + self.ttl {
                    e.refreshing = true;
                    return Plan::Refresh(e.value.clone(), true);
                }
                event_stale = true;
            }
        }
        // A computation started since the last write answers this request too, even if
        // status events came after it started (they are followed at most every
        // `settle_for` anyway): under a stream of events every request would otherwise
        // start its own.
        if let Some(f) = inner.flights.get(key)
            && f.generation.everything == generation.everything
        {
            return Plan::Join(f.outcome.clone());
        }
        let id = self.flight_ids.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = watch::channel(None);
        inner.flights.insert(
            key.clone(),
            Flight {
                id,
                generation,
                outcome: receiver,
            },
        );
        Plan::Lead(id, sender, event_stale)
    }

    /// Keeps `value`, computed from the state of `generation` starting at `at` (so a change
    /// during the computation leaves it stale).
    fn store(&self, key: K, value: Arc<V>, generation: Generation, at: Instant, churning: bool) {
        let mut inner = self.lock();
        self.store_locked(&mut inner, key, value, generation, at, churning);
    }

    fn store_locked(
        &self,
        inner: &mut Inner<K, V>,
        key: K,
        value: Arc<V>,
        generation: Generation,
        at: Instant,
        churning: bool,
    ) {
        match inner.entries.get(&key) {
            // A computation that started later has already answered: keep the newer answer.
            Some(kept) if kept.at > at => return,
            Some(_) => {}
            None if inner.entries.len() >= self.max_entries => inner.entries.clear(),
            None => {}
        }
        let compute_times = at
            .elapsed()
            .saturating_mul(COMPUTE_TIMES_KEPT)
            .min(SLOW_FRESH_AT_MOST);
        inner.entries.insert(
            key,
            Entry {
                value,
                at,
                fresh_for: self.ttl.max(compute_times),
                settle_for: compute_times.max(EVENT_REFRESH_EVERY.min(self.ttl)),
                generation,
                refreshing: false,
                churning,
            },
        );
    }

    fn refresh_failed(&self, key: &K) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.get_mut(key) {
            e.refreshing = false;
        }
    }
}

/// A running shared computation; dropped before [`FlightGuard::end`] (its request went
/// away), it is abandoned and those waiting compute their own.
struct FlightGuard<'a, K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Send + Sync + 'static,
{
    cache: &'a ReportCache<K, V>,
    key: Option<K>,
    id: u64,
    outcome: watch::Sender<Option<Outcome<V>>>,
}

impl<K, V> FlightGuard<'_, K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Send + Sync + 'static,
{
    /// Keeps the answer (if any) and tells those waiting, in one step: a request arriving
    /// after finds the answer, not the finished computation.
    fn end(mut self, value: Outcome<V>, generation: Generation, at: Instant, churning: bool) {
        let Some(key) = self.key.take() else { return };
        let mut inner = self.cache.lock();
        remove_flight(&mut inner, &key, self.id);
        if let Some(v) = &value {
            self.cache
                .store_locked(&mut inner, key, v.clone(), generation, at, churning);
        }
        self.outcome.send_replace(Some(value));
    }
}

impl<K, V> Drop for FlightGuard<'_, K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Send + Sync + 'static,
{
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut inner = self.cache.lock();
            remove_flight(&mut inner, &key, self.id);
            // The sender goes with the guard: the waiting see the channel closed.
        }
    }
}

/// Forgets flight `id` of `key` (a newer one, started after a change, stays).
fn remove_flight<K: Eq + Hash, V>(inner: &mut Inner<K, V>, key: &K, id: u64) {
    if inner.flights.get(key).is_some_and(|f| f.id == id) {
        inner.flights.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A computation that counts its runs and answers the run number.
    fn counter() -> (
        Arc<AtomicUsize>,
        impl Fn() -> std::future::Ready<Result<usize, ()>> + Clone + Send + 'static,
    ) {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        (runs, move || {
            std::future::ready(Ok(r.fetch_add(1, Ordering::SeqCst) + 1))
        })
    }

    #[tokio::test]
    async fn a_fresh_answer_is_reused_per_key_and_a_change_makes_it_stale() {
        let staleness = Staleness::default();
        let cache = ReportCache::new(Duration::from_secs(60), staleness.clone());
        let (runs, compute) = counter();
        assert_eq!(
            *cache.get("a", compute.clone()).await.unwrap_or_default(),
            1
        );
        assert_eq!(
            *cache.get("a", compute.clone()).await.unwrap_or_default(),
            1
        );
        assert_eq!(
            *cache.get("b", compute.clone()).await.unwrap_or_default(),
            2
        );
        staleness.bump();
        assert_eq!(
            *cache.get("a", compute.clone()).await.unwrap_or_default(),
            3
        );
        assert_eq!(*cache.get("a", compute).await.unwrap_or_default(), 3);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_slow_answer_is_kept_for_four_times_what_it_took() {
        let cache = ReportCache::new(Duration::from_millis(10), Staleness::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let slow = move || {
            let runs = counted.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok::<_, ()>(runs.fetch_add(1, Ordering::SeqCst) + 1)
            }
        };
        assert_eq!(*cache.get("a", slow.clone()).await.unwrap_or_default(), 1);
        // 250 ms after it started, far past the 10 ms TTL but within 4 × 200 ms: no refresh.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(*cache.get("a", slow).await.unwrap_or_default(), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn past_the_ttl_the_old_answer_is_served_while_one_refresh_runs() {
        let cache = ReportCache::new(Duration::from_millis(50), Staleness::default());
        let (runs, compute) = counter();
        assert_eq!(*cache.get((), compute.clone()).await.unwrap_or_default(), 1);
        tokio::time::sleep(Duration::from_millis(80)).await;
        // Stale: served at once, one refresh started.
        assert_eq!(*cache.get((), compute.clone()).await.unwrap_or_default(), 1);
        assert_eq!(*cache.get((), compute.clone()).await.unwrap_or_default(), 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(*cache.get((), compute.clone()).await.unwrap_or_default(), 2);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // Far past the TTL (ten times): computed now, not served.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(*cache.get((), compute).await.unwrap_or_default(), 3);
    }

    #[tokio::test]
    async fn a_ttl_of_zero_computes_every_time_and_errors_are_not_kept() {
        let cache = ReportCache::new(Duration::ZERO, Staleness::default());
        let (runs, compute) = counter();
        for expected in 1..=3 {
            assert_eq!(
                *cache.get(1, compute.clone()).await.unwrap_or_default(),
                expected
            );
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);

        let cache = ReportCache::<u8, usize>::new(Duration::from_secs(60), Staleness::default());
        let failed = cache
            .get(1, || std::future::ready(Err::<usize, _>("down")))
            .await;
        assert_eq!(failed.err(), Some("down"));
        let (_, compute) = counter();
        assert_eq!(*cache.get(1, compute).await.unwrap_or_default(), 1);
    }

    /// A computation that counts its runs, takes `took` and answers the run number.
    fn slow_counter(
        took: Duration,
    ) -> (
        Arc<AtomicUsize>,
        impl Fn() -> futures::future::BoxFuture<'static, Result<usize, ()>> + Clone + Send + 'static,
    ) {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        (runs, move || {
            let r = r.clone();
            Box::pin(async move {
                tokio::time::sleep(took).await;
                Ok(r.fetch_add(1, Ordering::SeqCst) + 1)
            })
        })
    }

    #[tokio::test]
    async fn concurrent_requests_for_a_missing_answer_share_one_computation() {
        let cache = ReportCache::new(Duration::from_secs(60), Staleness::default());
        let (runs, compute) = slow_counter(Duration::from_millis(100));
        let waiting: Vec<_> = (0..10)
            .map(|_| {
                let cache = cache.clone();
                let compute = compute.clone();
                tokio::spawn(async move { cache.get("a", compute).await })
            })
            .collect();
        for w in waiting {
            assert_eq!(w.await.ok().and_then(Result::ok).as_deref(), Some(&1));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // And the answer is kept for the next one.
        assert_eq!(cache.get("a", compute).await.as_deref(), Ok(&1));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_change_during_a_computation_is_not_answered_by_it() {
        let staleness = Staleness::default();
        let cache = ReportCache::new(Duration::from_secs(60), staleness.clone());
        let (runs, compute) = slow_counter(Duration::from_millis(100));
        let first = tokio::spawn({
            let (cache, compute) = (cache.clone(), compute.clone());
            async move { cache.get("a", compute).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        staleness.bump();
        // Started after the change: its own computation, not the running one's answer.
        let second = cache.get("a", compute.clone()).await;
        assert_eq!(first.await.ok().and_then(Result::ok).as_deref(), Some(&1));
        assert_eq!(second.as_deref(), Ok(&2));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(cache.get("a", compute).await.as_deref(), Ok(&2));
    }

    #[tokio::test]
    async fn when_the_shared_computation_fails_or_is_abandoned_one_of_the_waiting_leads_again() {
        let cache = ReportCache::<&str, usize>::new(Duration::from_secs(60), Staleness::default());
        let failing = tokio::spawn({
            let cache = cache.clone();
            async move {
                cache
                    .get("a", || async {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Err::<usize, _>("down")
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (runs, compute) = counter();
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let (cache, compute) = (cache.clone(), compute.clone());
                tokio::spawn(async move { cache.get("a", compute).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            0,
            "they wait for the running one"
        );
        assert_eq!(failing.await.ok().map(|r| r.err()), Some(Some("down")));
        for w in waiting {
            assert_eq!(w.await.ok().and_then(Result::ok).as_deref(), Some(&1));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "one of them computed again");

        // A leader whose request goes away mid-computation.
        let abandoned = tokio::time::timeout(
            Duration::from_millis(200),
            cache.get("b", || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<usize, &str>(0)
            }),
        );
        let waiting = tokio::spawn({
            let (cache, compute) = (cache.clone(), compute.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                cache.get("b", compute).await
            }
        });
        let check = {
            let runs = runs.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                runs.load(Ordering::SeqCst)
            })
        };
        assert!(abandoned.await.is_err(), "the leader timed out");
        assert_eq!(check.await.ok(), Some(1), "the other waited meanwhile");
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), waiting)
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(Result::ok)
                .as_deref(),
            Some(&2)
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn under_a_stream_of_status_events_concurrent_requests_still_share_a_computation() {
        let (staleness, cache) = by_organization(Duration::from_secs(60));
        let (runs, compute) = slow_counter(Duration::from_millis(200));
        let mut waiting = Vec::new();
        for _ in 0..10 {
            // Each request sees another generation: an event came since the previous one.
            staleness.bump_organization("a");
            let (cache, compute) = (cache.clone(), compute.clone());
            waiting.push(tokio::spawn(async move { cache.get(None, compute).await }));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for w in waiting {
            assert_eq!(w.await.ok().and_then(Result::ok).as_deref(), Some(&1));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    /// A cache whose keys are an organization or none, with its staleness.
    fn by_organization(
        ttl: Duration,
    ) -> (Staleness, Arc<ReportCache<Option<&'static str>, usize>>) {
        let staleness = Staleness::default();
        let cache = ReportCache::bounded(
            ttl,
            staleness.clone(),
            16,
            Follows::StatusEventsOf(|key| *key),
        );
        (staleness, cache)
    }

    #[tokio::test]
    async fn an_organization_s_change_refreshes_its_answers_and_leaves_the_others() {
        let (staleness, cache) = by_organization(Duration::from_secs(60));
        let (runs, compute) = counter();
        let get = |key| {
            let (cache, compute) = (cache.clone(), compute.clone());
            async move { *cache.get(key, compute).await.unwrap_or_default() }
        };
        // Older than `EVENT_REFRESH_EVERY` (and four times their instant computations).
        let settle = || tokio::time::sleep(Duration::from_millis(1_010));
        for (key, expected) in [(Some("a"), 1), (Some("b"), 2), (None, 3)] {
            assert_eq!(get(key).await, expected);
        }
        settle().await;
        staleness.bump_organization("a");
        // "a" and the unfiltered answer can count what changed: the first change after a
        // quiet spell is computed before answering. "b" cannot: kept.
        assert_eq!(get(Some("a")).await, 4);
        assert_eq!(get(None).await, 5);
        assert_eq!(get(Some("b")).await, 2);
        // While events keep coming: served once more and refreshed in the background.
        settle().await;
        staleness.bump_organization("a");
        assert_eq!(get(Some("a")).await, 4);
        settle().await;
        assert_eq!(get(Some("a")).await, 6);
        // A change of an organization nothing was cached for: only the unfiltered answer.
        staleness.bump_organization("c");
        assert_eq!(get(None).await, 5);
        settle().await;
        assert_eq!(get(None).await, 7);
        assert_eq!(get(Some("b")).await, 2);
        // A write: computed now, before answering.
        staleness.bump();
        assert_eq!(get(Some("b")).await, 8);
        assert_eq!(runs.load(Ordering::SeqCst), 8);
    }

    #[tokio::test]
    async fn a_stream_of_status_events_refreshes_an_answer_at_most_every_four_computations() {
        let (staleness, cache) = by_organization(Duration::from_millis(100));
        let (runs, compute) = slow_counter(Duration::from_millis(50));
        assert_eq!(cache.get(None, compute.clone()).await.as_deref(), Ok(&1));
        // Events every 5 ms and requests every millisecond for 700 ms: refreshed no more
        // often than every 200 ms (4 × 50 ms); after the first, in the background.
        let until = Instant::now() + Duration::from_millis(700);
        let mut waited = Vec::new();
        while Instant::now() < until {
            staleness.bump_organization("a");
            for _ in 0..5 {
                let started = Instant::now();
                assert!(cache.get(None, compute.clone()).await.is_ok());
                if started.elapsed() >= Duration::from_millis(40) {
                    waited.push(started.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let refreshes = runs.load(Ordering::SeqCst) - 1;
        assert!(
            (1..=3).contains(&refreshes),
            "{refreshes} refreshes in 700 ms"
        );
        assert!(waited.len() <= 1, "requests waited: {waited:?}");
    }
}
