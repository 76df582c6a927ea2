//! Login throttling: failed logins are counted per user name and per client address; past a
//! limit, that name or address is locked out for `LOGIN_LOCKOUT_SEC`.
//!
//! Names are counted whether or not they exist, and a locked-out attempt gets the same answer
//! for both, so the throttle says nothing about which accounts exist. A successful login
//! clears its name's count (not its address's: a spray from one address that hits one good
//! password is still a spray).
//!
//! State is per api process (replicas count separately: N replicas allow N times the
//! attempts), bounded in memory, and forgotten on restart. Argon2id's cost per attempt is the
//! second line of defence.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Entries kept at most; past it, stale ones are dropped and then, if still full, new keys
/// are not tracked (the per-address limit of the already tracked keys still holds).
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    first_failure: Instant,
    locked_until: Option<Instant>,
}

/// Failed-login counters.
#[derive(Debug)]
pub struct LoginThrottle {
    entries: Mutex<HashMap<String, Entry>>,
    max_per_user: u32,
    max_per_address: u32,
    lockout: Duration,
}

/// The keys one attempt counts against.
#[derive(Debug, Clone)]
pub struct AttemptKeys {
    user: String,
    address: Option<String>,
}

impl AttemptKeys {
    #[must_use]
    pub fn new(username: &str, client_addr: Option<&str>) -> Self {
        Self {
            user: format!("user:{}", username.to_lowercase()),
            address: client_addr.map(|a| format!("addr:{a}")),
        }
    }
}

impl LoginThrottle {
    #[must_use]
    pub fn new(max_per_user: u32, max_per_address: u32, lockout: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_per_user: max_per_user.max(1),
            max_per_address: max_per_address.max(1),
            lockout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long the attempt must wait, when its name or address is locked out.
    #[must_use]
    pub fn locked_for(&self, keys: &AttemptKeys) -> Option<Duration> {
        let now = Instant::now();
        let entries = self.lock();
        [Some(&keys.user), keys.address.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|k| entries.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Counts a failed attempt; returns true when it started a lockout.
    pub fn failed(&self, keys: &AttemptKeys) -> bool {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            let lockout = self.lockout;
            entries.retain(|_, e| {
                e.locked_until.is_some_and(|u| u > now) || now - e.first_failure < lockout
            });
        }
        let mut locked = false;
        let limits = [
            (Some(&keys.user), self.max_per_user),
            (keys.address.as_ref(), self.max_per_address),
        ];
        for (key, limit) in limits {
            let Some(key) = key else { continue };
            if !entries.contains_key(key) && entries.len() >= MAX_ENTRIES {
                continue;
            }
            let entry = entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                first_failure: now,
                locked_until: None,
            });
            // A window that ended (and no lockout running) starts over.
            if now - entry.first_failure >= self.lockout
                && entry.locked_until.is_none_or(|u| u <= now)
            {
                *entry = Entry {
                    failures: 0,
                    first_failure: now,
                    locked_until: None,
                };
            }
            entry.failures += 1;
            if entry.failures >= limit && entry.locked_until.is_none_or(|u| u <= now) {
                entry.locked_until = Some(now + self.lockout);
                locked = true;
            }
        }
        locked
    }

    /// A successful login: forget the name's failures.
    pub fn succeeded(&self, keys: &AttemptKeys) {
        self.lock().remove(&keys.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_a_name_after_its_limit_and_a_success_clears_it() {
        let t = LoginThrottle::new(3, 100, Duration::from_secs(60));
        let alice = AttemptKeys::new("Alice", Some("192.0.2.1"));
        assert!(!t.failed(&alice));
        assert!(!t.failed(&alice));
        assert!(t.locked_for(&alice).is_none());
        t.succeeded(&alice);
        assert!(!t.failed(&alice));
        assert!(!t.failed(&alice));
        assert!(t.failed(&alice), "the third failure locks");
        let wait = t.locked_for(&alice).expect("locked");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        // The same name in another case, from elsewhere: still locked.
        assert!(
            t.locked_for(&AttemptKeys::new("alice", Some("192.0.2.99")))
                .is_some()
        );
        // Another name from the same address: not locked (address limit is 100).
        assert!(
            t.locked_for(&AttemptKeys::new("bob", Some("192.0.2.1")))
                .is_none()
        );
    }

    #[test]
    fn locks_an_address_spraying_names() {
        let t = LoginThrottle::new(100, 4, Duration::from_secs(60));
        for i in 0..3 {
            assert!(!t.failed(&AttemptKeys::new(&format!("u{i}"), Some("198.51.100.7"))));
        }
        assert!(t.failed(&AttemptKeys::new("u3", Some("198.51.100.7"))));
        assert!(
            t.locked_for(&AttemptKeys::new("anyone", Some("198.51.100.7")))
                .is_some()
        );
        assert!(
            t.locked_for(&AttemptKeys::new("anyone", Some("198.51.100.8")))
                .is_none()
        );
        assert!(t.locked_for(&AttemptKeys::new("anyone", None)).is_none());
    }

    #[test]
    fn lockouts_end() {
        let t = LoginThrottle::new(1, 100, Duration::from_millis(30));
        let k = AttemptKeys::new("carol", None);
        assert!(t.failed(&k));
        assert!(t.locked_for(&k).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(t.locked_for(&k).is_none());
    }
}
