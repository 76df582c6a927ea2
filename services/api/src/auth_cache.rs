//! Authenticated callers remembered for `API_AUTH_CACHE_MS` (default 1000; 0 turns it off).
//!
//! Every request presents a token, and looking it up was a database round trip per request:
//! at thousands of requests per second (the dashboards' cached reports) those lookups were
//! most of the database's work. A token that resolved is reused for the TTL, keyed by its
//! SHA-256 (never the token itself):
//! - every successful write through this api process (a logout, a user changed or deleted,
//!   a token revoked, …) forgets everything remembered, so this process never serves a
//!   revoked credential;
//! - a change made through another api replica applies here after at most the TTL;
//! - the session's or token's own expiry is checked on every use;
//! - unknown tokens are not remembered: each one is looked up.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::auth::Principal;
use crate::report_cache::{Generation, Staleness};

/// Remembered callers; past this many distinct tokens the cache starts over.
const MAX_ENTRIES: usize = 10_000;

pub struct AuthCache {
    ttl: Duration,
    /// Bumped by every write through this process; entries of older generations are unused.
    generation: Staleness,
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    principal: Principal,
    /// When the lookup that produced it started.
    at: Instant,
    generation: Generation,
}

/// Where a lookup started: what [`AuthCache::remember`] needs to tell whether anything
/// changed while it ran.
#[derive(Debug, Clone, Copy)]
pub struct Lookup {
    at: Instant,
    generation: Generation,
}

impl AuthCache {
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            generation: Staleness::default(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The caller `token_hash` resolved to, if remembered, current and not expired.
    #[must_use]
    pub fn get(&self, token_hash: &str) -> Option<Principal> {
        if self.ttl.is_zero() {
            return None;
        }
        let generation = self.generation.writes();
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let e = entries.get(token_hash)?;
        (e.generation == generation
            && e.at.elapsed() < self.ttl
            && !e.principal.credential.expired(Utc::now()))
        .then(|| e.principal.clone())
    }

    /// Call before looking a token up in the store.
    #[must_use]
    pub fn start_lookup(&self) -> Lookup {
        Lookup {
            at: Instant::now(),
            generation: self.generation.writes(),
        }
    }

    /// Remembers what the lookup started at `lookup` found; a write through this process
    /// since then leaves it unremembered.
    pub fn remember(&self, token_hash: &str, principal: &Principal, lookup: Lookup) {
        if self.ttl.is_zero() || lookup.generation != self.generation.writes() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(token_hash) {
            entries.clear();
        }
        entries.insert(
            token_hash.to_owned(),
            Entry {
                principal: Principal {
                    client_addr: None,
                    ..principal.clone()
                },
                at: lookup.at,
                generation: lookup.generation,
            },
        );
    }

    /// Something may have changed who a token is (a write went through): forget everyone.
    pub fn forget_all(&self) {
        self.generation.bump();
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta};
    use moolai_store::Role;

    use super::*;
    use crate::auth::Credential;

    fn session(expires_at: DateTime<Utc>) -> Principal {
        Principal {
            username: "ops".into(),
            role: Role::Viewer,
            organization_ids: vec!["org-a".into()],
            credential: Credential::Session {
                token_hash: "h".into(),
                expires_at,
            },
            client_addr: Some("192.0.2.1".into()),
        }
    }

    fn later() -> DateTime<Utc> {
        Utc::now() + TimeDelta::hours(1)
    }

    #[test]
    fn a_resolved_token_is_reused_without_its_client_address() {
        let cache = AuthCache::new(Duration::from_secs(60));
        assert!(cache.get("h").is_none());
        let lookup = cache.start_lookup();
        cache.remember("h", &session(later()), lookup);
        let p = cache.get("h").expect("remembered");
        assert_eq!((p.username.as_str(), p.client_addr), ("ops", None));
        assert!(cache.get("other").is_none());
    }

    #[test]
    fn a_write_forgets_everyone_and_a_lookup_it_overlapped() {
        let cache = AuthCache::new(Duration::from_secs(60));
        cache.remember("h", &session(later()), cache.start_lookup());
        let overlapped = cache.start_lookup();
        cache.forget_all();
        assert!(cache.get("h").is_none());
        // A lookup that started before the write may have read the old state.
        cache.remember("h", &session(later()), overlapped);
        assert!(cache.get("h").is_none());
        cache.remember("h", &session(later()), cache.start_lookup());
        assert!(cache.get("h").is_some());
    }

    #[test]
    fn entries_end_with_the_ttl_or_the_credential() {
        let cache = AuthCache::new(Duration::from_millis(30));
        cache.remember("h", &session(later()), cache.start_lookup());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get("h").is_none());

        let cache = AuthCache::new(Duration::from_secs(60));
        let soon = Utc::now() + TimeDelta::milliseconds(20);
        cache.remember("h", &session(soon), cache.start_lookup());
        assert!(cache.get("h").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(cache.get("h").is_none());
    }

    #[test]
    fn a_zero_ttl_remembers_nothing() {
        let cache = AuthCache::new(Duration::ZERO);
        cache.remember("h", &session(later()), cache.start_lookup());
        assert!(cache.get("h").is_none());
    }
}
