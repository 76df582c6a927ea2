//! Admission control for reconnect storms: a cap on new handshakes per second across the
//! edge. Past it, upgrades are answered with 503 and `Retry-After`, before any socket or
//! hello work is spent, so a storm is spread over time instead of queued in memory.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// A token bucket refilled at `rate` per second, holding at most one second's worth.
pub struct HandshakeLimiter {
    rate: f64,
    bucket: Mutex<(f64, Instant)>,
}

impl HandshakeLimiter {
    #[must_use]
    pub fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        Self {
            rate,
            bucket: Mutex::new((rate, Instant::now())),
        }
    }

    /// Takes one handshake slot; `false` when the edge is at its rate.
    pub fn try_acquire(&self) -> bool {
        let mut b = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let (tokens, last) = *b;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.rate);
        if tokens >= 1.0 {
            *b = (tokens - 1.0, now);
            true
        } else {
            *b = (tokens, now);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_second_worth_then_refuses() {
        let l = HandshakeLimiter::new(10);
        let granted = (0..50).filter(|_| l.try_acquire()).count();
        // 10 in the bucket, plus whatever refilled during the loop (microseconds).
        assert!((10..=11).contains(&granted), "{granted}");
        std::thread::sleep(std::time::Duration::from_millis(120));
        assert!(l.try_acquire(), "refilled after 100 ms at 10/s");
    }
}
