//! Orchestrator records as JSON, kept by row version, for listing pages
//! (`API_ROW_CACHE_MB`).
//!
//! A page of 50 orchestrators read by id was ~0.5 ms of database work (50 rows of 24 columns,
//! three of them JSON documents turned to text) and as much again in the api (decoding the
//! rows, building the documents, writing the JSON). A page now first asks the store for the
//! rows' versions and derived statuses ([`Store::orchestrator_versions_in_order`]), which
//! reads the same rows but sends three columns, and reads in full only the orchestrators
//! whose version or status differs from what is kept. Every record shown is then as current
//! as the versions: a row written since it was kept has another version, and a status that
//! changed with time alone (an orchestrator that went quiet) another status.
//!
//! What is kept under a version is never older than that version: the records are read after
//! their versions, so a row written in between is kept under the older version with the
//! newer content and read again on its next use (versions only move forward).
//!
//! With the fleet view ([`crate::fleet_view`]) the versions come from memory instead, read
//! up to an interval earlier, so a record shown can be that much older (see there).
//!
//! [`Store::orchestrator_versions_in_order`]: moolai_store::Store::orchestrator_versions_in_order

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moolai_protocol::Status;
use moolai_store::OrchestratorVersion;

/// Shards of the map, so concurrent pages rarely wait for one another.
const SHARDS: usize = 16;
/// A kept record is not used past this age when the page's versions were read from the
/// database: versions are transaction ids, which a database restored to an earlier point or
/// a promoted asynchronous standby can hand out again (see the README).
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// Nor past this age when they came from the fleet view, whose reads notice a database whose
/// transaction ids went back and forget every kept record ([`RowCache::clear`]). Past it an
/// entry is no longer worth its memory.
pub const MAX_AGE_CHECKED: Duration = Duration::from_secs(600);
/// Bytes counted per entry besides its JSON and id (map slot, `Bytes` header, the entry).
const ENTRY_OVERHEAD: usize = 128;

struct Entry {
    version: i64,
    status: Status,
    json: Bytes,
    at: Instant,
}

impl Entry {
    fn bytes(&self, orchestrator_id: &str) -> usize {
        self.json.len() + orchestrator_id.len() + ENTRY_OVERHEAD
    }
}

#[derive(Default)]
struct Shard {
    entries: HashMap<String, Entry>,
    bytes: usize,
}

impl Shard {
    fn remove(&mut self, orchestrator_id: &str) {
        if let Some(old) = self.entries.remove(orchestrator_id) {
            self.bytes -= old.bytes(orchestrator_id);
        }
    }
}

pub struct RowCache {
    shards: Box<[Mutex<Shard>]>,
    /// Bytes each shard may hold.
    shard_bytes: usize,
    hasher: std::hash::RandomState,
}

impl RowCache {
    /// Keeps records up to about `bytes` of memory; 0 keeps none (pages read every record).
    #[must_use]
    pub fn new(bytes: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_bytes: bytes / SHARDS,
            hasher: std::hash::RandomState::new(),
        }
    }

    #[must_use]
    pub fn enabled(&self) -> bool {
        self.shard_bytes > 0
    }

    fn shard(&self, orchestrator_id: &str) -> std::sync::MutexGuard<'_, Shard> {
        let index = usize::try_from(self.hasher.hash_one(orchestrator_id) % SHARDS as u64)
            .unwrap_or_default();
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The record kept for exactly this version and status, unless kept longer than
    /// `max_age` ago ([`MAX_AGE`] or [`MAX_AGE_CHECKED`]).
    pub fn get(&self, v: &OrchestratorVersion, max_age: Duration) -> Option<Bytes> {
        self.shard(&v.orchestrator_id)
            .entries
            .get(&v.orchestrator_id)
            .filter(|e| e.version == v.version && e.status == v.status)
            .filter(|e| e.at.elapsed() < max_age)
            .map(|e| e.json.clone())
    }

    /// Forgets every record kept.
    pub fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            shard.entries = HashMap::new();
            shard.bytes = 0;
        }
    }

    /// Keeps `json` (a record read at `version` or later, whose status was `status`). A
    /// record larger than a sixty-fourth of a shard is not kept (it would crowd out many).
    pub fn put(&self, orchestrator_id: &str, version: i64, status: Status, json: Bytes) {
        if !self.enabled() {
            return;
        }
        let entry = Entry {
            version,
            status,
            json,
            at: Instant::now(),
        };
        let size = entry.bytes(orchestrator_id);
        let mut shard = self.shard(orchestrator_id);
        shard.remove(orchestrator_id);
        if size > self.shard_bytes / 64 {
            return;
        }
        if shard.bytes + size > self.shard_bytes {
            shard
                .entries
                .retain(|_, e| e.at.elapsed() < MAX_AGE_CHECKED);
            shard.bytes = shard.entries.iter().map(|(id, e)| e.bytes(id)).sum();
            if shard.bytes + size > self.shard_bytes {
                // Full of recent records: start this shard over rather than track use order
                // on every read.
                shard.entries.clear();
                shard.bytes = 0;
            }
        }
        shard.bytes += size;
        shard.entries.insert(orchestrator_id.to_owned(), entry);
    }

    /// Records kept (for tests and metrics).
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entries
                    .len()
            })
            .sum()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, version: i64, status: Status) -> OrchestratorVersion {
        OrchestratorVersion {
            orchestrator_id: id.into(),
            version,
            status,
        }
    }

    #[test]
    fn a_record_is_found_only_at_its_version_and_status() {
        let cache = RowCache::new(1 << 20);
        cache.put("o1", 7, Status::Active, Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(
            cache.get(&v("o1", 7, Status::Active), MAX_AGE).as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert!(cache.get(&v("o1", 8, Status::Active), MAX_AGE).is_none());
        assert!(cache.get(&v("o1", 7, Status::Inactive), MAX_AGE).is_none());
        assert!(cache.get(&v("o2", 7, Status::Active), MAX_AGE).is_none());
        cache.put("o1", 8, Status::Active, Bytes::from_static(b"{\"a\":2}"));
        assert_eq!(
            cache.get(&v("o1", 8, Status::Active), MAX_AGE).as_deref(),
            Some(&b"{\"a\":2}"[..])
        );
        assert!(cache.get(&v("o1", 7, Status::Active), MAX_AGE).is_none());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_cache_stays_within_its_memory() {
        // 16 shards of 64 KiB: about 330 records of ~200 bytes each.
        let cache = RowCache::new(1 << 20);
        let json = Bytes::from(vec![b' '; 64]);
        for i in 0..10_000 {
            cache.put(&format!("o{i}"), 1, Status::Active, json.clone());
            let held: usize = cache
                .shards
                .iter()
                .map(|s| {
                    let s = s.lock().expect("shard");
                    assert_eq!(
                        s.bytes,
                        s.entries.iter().map(|(id, e)| e.bytes(id)).sum::<usize>()
                    );
                    s.bytes
                })
                .sum();
            assert!(held <= 1 << 20, "{held} bytes held after {i}");
        }
        // The last one written is always there.
        assert!(cache.get(&v("o9999", 1, Status::Active), MAX_AGE).is_some());
        // Rewriting one record does not count it twice.
        cache.put("o9999", 2, Status::Active, json.clone());
        cache.put("o9999", 3, Status::Active, json);
        assert!(cache.get(&v("o9999", 3, Status::Active), MAX_AGE).is_some());
        // A record larger than a sixty-fourth of a shard is not kept.
        cache.put("big", 1, Status::Active, Bytes::from(vec![b' '; 1_000]));
        assert!(cache.get(&v("big", 1, Status::Active), MAX_AGE).is_none());
    }

    #[test]
    fn a_cache_of_no_entries_keeps_nothing() {
        let cache = RowCache::new(0);
        assert!(!cache.enabled());
        cache.put("o1", 1, Status::Active, Bytes::from_static(b"{}"));
        assert!(cache.is_empty());
        assert!(cache.get(&v("o1", 1, Status::Active), MAX_AGE).is_none());
    }

    #[test]
    fn a_record_is_not_used_past_the_age_given_and_clear_forgets_all() {
        let cache = RowCache::new(1 << 20);
        cache.put("o1", 1, Status::Active, Bytes::from_static(b"{}"));
        cache.put("o2", 1, Status::Active, Bytes::from_static(b"{}"));
        std::thread::sleep(Duration::from_millis(20));
        assert!(cache.get(&v("o1", 1, Status::Active), MAX_AGE).is_some());
        assert!(
            cache
                .get(&v("o1", 1, Status::Active), Duration::from_millis(10))
                .is_none()
        );
        cache.clear();
        assert!(cache.is_empty());
        assert!(cache.get(&v("o2", 1, Status::Active), MAX_AGE).is_none());
        cache.put("o1", 2, Status::Active, Bytes::from_static(b"{}"));
        assert_eq!(cache.len(), 1);
    }
}
