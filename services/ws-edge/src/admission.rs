//! Admission control for reconnect storms: a cap on new handshakes per second across the
//! edge. Past it, upgrades are answered with 503 and `Retry-After`, before any socket or
//! hello work is spent, so a storm is spread over time instead of queued in memory.
//!
//! The `Retry-After` a refused client gets is a place in a virtual queue: each refusal
//! reserves the next free second of admission capacity (at the admitted rate), so the k-th
//! client of a crowd is told about k ÷ rate seconds (at least 1, at most
//! [`MAX_RETRY_AFTER_SECS`]). The reference client comes back then, plus a jitter of a quarter
//! of that, so a crowd returns at about the rate the edge admits, instead of every second
//! (refusals for nothing) or after an exponential backoff (capacity idle while clients sleep).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Longest `Retry-After` the limiter hands out.
pub const MAX_RETRY_AFTER_SECS: u64 = 60;

/// A token bucket refilled at `rate` per second, holding at most one second's worth, and
/// the end of the capacity already promised to refused clients.
pub struct HandshakeLimiter {
    rate: f64,
    state: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
    /// Refused clients were told to come back before this instant.
    promised_until: Instant,
}

impl HandshakeLimiter {
    #[must_use]
    pub fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        let now = Instant::now();
        Self {
            rate,
            state: Mutex::new(Bucket {
                tokens: rate,
                refilled: now,
                promised_until: now,
            }),
        }
    }

    /// Takes one handshake slot, or says in how many seconds to come back.
    ///
    /// # Errors
    /// `Err(retry_after_secs)` when the edge is at its rate.
    pub fn try_acquire(&self) -> Result<(), u64> {
        self.try_acquire_at(Instant::now())
    }

    fn try_acquire_at(&self, now: Instant) -> Result<(), u64> {
        let mut b = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.rate);
        b.refilled = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        // Reserve the next slot after those already promised; a queue longer than the cap is
        // told the cap (and reserves nothing further out: it will be refused again anyway).
        let horizon = now + Duration::from_secs(MAX_RETRY_AFTER_SECS);
        let slot =
            (b.promised_until.max(now) + Duration::from_secs_f64(1.0 / self.rate)).min(horizon);
        b.promised_until = slot;
        let wait = slot.saturating_duration_since(now).as_secs_f64();
        // Whole seconds (the header's unit), rounded up: never earlier than the slot.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let seconds = wait.ceil() as u64;
        Err(seconds.clamp(1, MAX_RETRY_AFTER_SECS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_second_worth_then_refuses() {
        let l = HandshakeLimiter::new(10);
        let granted = (0..50).filter(|_| l.try_acquire().is_ok()).count();
        // 10 in the bucket, plus whatever refilled during the loop (microseconds).
        assert!((10..=11).contains(&granted), "{granted}");
        std::thread::sleep(std::time::Duration::from_millis(120));
        assert!(l.try_acquire().is_ok(), "refilled after 100 ms at 10/s");
    }

    #[test]
    fn a_crowd_is_given_successive_seconds_of_capacity() {
        let l = HandshakeLimiter::new(100);
        let t0 = Instant::now();
        let mut hints = Vec::new();
        // 100 admitted, then 2,900 refused within the same instant.
        for _ in 0..3000 {
            if let Err(h) = l.try_acquire_at(t0) {
                hints.push(h);
            }
        }
        assert_eq!(hints.len(), 2900);
        assert_eq!(hints[0], 1);
        assert_eq!(hints[99], 1, "the first 100 refused share the next second");
        assert_eq!(hints[100], 2);
        assert_eq!(
            *hints.last().unwrap_or(&0),
            29,
            "2,900 refused at 100/s: 29 s"
        );
        assert!(hints.windows(2).all(|w| w[0] <= w[1]), "{hints:?}");

        // 1.5 s later the bucket refilled (100 admitted); the next refused queues behind the
        // 2,900 already promised: 29 s from t0 is 27.5 s from now.
        let t1 = t0 + Duration::from_millis(1500);
        let admitted = (0..100).filter(|_| l.try_acquire_at(t1).is_ok()).count();
        assert_eq!(admitted, 100);
        assert_eq!(l.try_acquire_at(t1), Err(28));

        // Once the promised time has passed, a refusal is told 1 s again.
        let t2 = t0 + Duration::from_secs(40);
        for _ in 0..100 {
            let _ = l.try_acquire_at(t2);
        }
        assert_eq!(l.try_acquire_at(t2), Err(1));

        // A crowd beyond the cap is told the cap.
        let slow = HandshakeLimiter::new(1);
        let t = Instant::now();
        let last = (0..1000)
            .filter_map(|_| slow.try_acquire_at(t).err())
            .last();
        assert_eq!(last, Some(MAX_RETRY_AFTER_SECS));
    }
}
