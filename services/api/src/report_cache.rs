//! A short-lived cache of the fleet-wide reports (`overview`, `costs`) and of the
//! orchestrator listings' totals.
//!
//! The reports aggregate the whole fleet on every request (100,000 orchestrators and a month
//! of usage: 50 ms to over a second), and a listing's total reads every match, while the
//! dashboard asks for them on every screen and after every status event. An answer is
//! reused for `API_REPORT_CACHE_MS` (default 1000; 0 turns the cache off), per caller scope
//! and query:
//! - every status event (from NATS, whichever replica caused it) and every successful write
//!   through this api process make all cached answers stale: the next request computes
//!   afresh, so the counts follow the live stream and an operator's own changes. Cost
//!   reports are the exception for status events: they count usage, which a status event
//!   does not change (their cache has its own [`Staleness`], bumped by writes only);
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

/// An answer stays fresh for at least this many times what it took to compute.
const COMPUTE_TIMES_KEPT: u32 = 4;
/// …but no longer than this for that reason (a computation that waited out a database stall
/// would otherwise keep its answer for minutes).
const SLOW_FRESH_AT_MOST: Duration = Duration::from_secs(60);

/// Cached answers per cache unless it says otherwise; past its number of distinct keys a
/// cache starts over.
const MAX_ENTRIES: usize = 1024;

/// The shared "something changed" counter: bumping it makes every cached answer stale.
#[derive(Debug, Clone, Default)]
pub struct Staleness(Arc<AtomicU64>);

impl Staleness {
    /// Everything cached so far is stale.
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

pub struct ReportCache<K, V> {
    ttl: Duration,
    max_entries: usize,
    staleness: Staleness,
    entries: Mutex<HashMap<K, Entry<V>>>,
}

struct Entry<V> {
    value: Arc<V>,
    /// When the computation that produced it started.
    at: Instant,
    /// How long it is served without a refresh: the TTL, or longer for a slow computation.
    fresh_for: Duration,
    generation: u64,
    refreshing: bool,
}

enum Plan<V> {
    Fresh(Arc<V>),
    /// Serve this and refresh in the background.
    Refresh(Arc<V>),
    Compute,
}

impl<K, V> ReportCache<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Send + Sync + 'static,
{
    #[must_use]
    pub fn new(ttl: Duration, staleness: Staleness) -> Arc<Self> {
        Self::bounded(ttl, staleness, MAX_ENTRIES)
    }

    /// A cache of at most `max_entries` keys (for answers larger than a report).
    #[must_use]
    pub fn bounded(ttl: Duration, staleness: Staleness, max_entries: usize) -> Arc<Self> {
        Arc::new(Self {
            ttl,
            max_entries,
            staleness,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// The answer for `key`: cached, or from `compute` (see the module docs).
    ///
    /// # Errors
    /// What `compute` returns when the answer had to be computed now.
    pub async fn get<F, Fut, E>(self: &Arc<Self>, key: K, compute: F) -> Result<Arc<V>, E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        if self.ttl.is_zero() {
            return compute().await.map(Arc::new);
        }
        let generation = self.staleness.current();
        let now = Instant::now();
        let plan = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            match entries.get_mut(&key) {
                Some(e) if e.generation == generation => {
                    let age = now.saturating_duration_since(e.at);
                    let served_until = e.fresh_for + self.ttl * 9;
                    if age < e.fresh_for || (e.refreshing && age < served_until) {
                        Plan::Fresh(e.value.clone())
                    } else if age < served_until {
                        e.refreshing = true;
                        Plan::Refresh(e.value.clone())
                    } else {
                        Plan::Compute
                    }
                }
                _ => Plan::Compute,
            }
        };
        match plan {
            Plan::Fresh(value) => Ok(value),
            Plan::Refresh(value) => {
                let cache = self.clone();
                tokio::spawn(async move {
                    match compute().await {
                        Ok(fresh) => cache.store(key, Arc::new(fresh), generation, now),
                        // Served stale a little longer; the next request past the TTL retries.
                        Err(_) => cache.refresh_failed(&key),
                    }
                });
                Ok(value)
            }
            Plan::Compute => {
                let value = Arc::new(compute().await?);
                self.store(key, value.clone(), generation, now);
                Ok(value)
            }
        }
    }

    /// Keeps `value`, computed from the state of `generation` starting at `at` (so a change
    /// during the computation leaves it stale).
    fn store(&self, key: K, value: Arc<V>, generation: u64, at: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.max_entries && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                value,
                at,
                fresh_for: self.ttl.max(
                    at.elapsed()
                        .saturating_mul(COMPUTE_TIMES_KEPT)
                        .min(SLOW_FRESH_AT_MOST),
                ),
                generation,
                refreshing: false,
            },
        );
    }

    fn refresh_failed(&self, key: &K) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = entries.get_mut(key) {
            e.refreshing = false;
        }
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
}
