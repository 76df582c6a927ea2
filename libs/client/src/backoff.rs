//! Reconnect delays: exponential backoff with full jitter.
//!
//! A fleet that loses its controller at the same instant must not come back at the same
//! instant. Every delay is drawn uniformly from `[0, ceiling]` ("full jitter"), where the
//! ceiling grows exponentially with the attempt number up to a cap. Two failure modes seen in
//! the field are ruled out here (see `LESSONS.md`):
//!
//! - the ceiling is computed in floating point and saturates at the cap, so a long outage can
//!   never overflow it to zero (which would make every client retry in a tight loop);
//! - the jitter is applied *after* the cap, so clients that have all reached the cap still
//!   spread over `[0, cap]` instead of retrying in lockstep every `cap` seconds.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with full jitter: `sleep = rand(0, min(max, initial × multiplier^attempt))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Ceiling of the first retry (attempt 0).
    pub initial: Duration,
    /// Cap of the ceiling; delays are drawn from `[0, max]` once it is reached.
    pub max: Duration,
    /// Growth of the ceiling per failed attempt (at least 1).
    pub multiplier: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2.0,
        }
    }
}

/// Longest wait a server's `Retry-After` / `retry_after_sec` hint can impose; a larger (buggy or
/// hostile) value would park the client for days.
pub const MAX_RETRY_HINT: Duration = Duration::from_secs(3600);

impl Backoff {
    /// Upper bound of the delay before retry number `attempt` (0-based):
    /// `min(max, initial × multiplier^attempt)`, saturating at `max` (never wrapping to zero).
    #[must_use]
    pub fn ceiling(&self, attempt: u32) -> Duration {
        // Past 1024 doublings every f64 is infinite anyway; powi takes an i32.
        let exponent = i32::try_from(attempt.min(1024)).unwrap_or(1024);
        let seconds = self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        if !seconds.is_finite() || seconds >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(seconds)
        }
    }

    /// The delay before retry number `attempt`: uniform in `[0, ceiling(attempt)]`.
    #[must_use]
    pub fn delay<R: Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> Duration {
        uniform(self.ceiling(attempt), rng)
    }

    /// The delay when the server said how long to wait (`Retry-After` on a 503 upgrade, or
    /// `retry_after_sec` in an `error` frame): `hint` plus jitter drawn from
    /// `[0, clamp(hint / 4, 1 s, hint)]`. The hint replaces the exponential backoff rather
    /// than adding to it: a server that answers is alive and pacing its crowd (the edge tells
    /// the k-th refused client of a crowd about k ÷ rate seconds), and a client sleeping
    /// longer than asked leaves capacity idle in a reconnect storm. The jitter keeps a fleet
    /// told the same hint from coming back in the same instant.
    #[must_use]
    pub fn delay_after_hint<R: Rng + ?Sized>(&self, hint: Duration, rng: &mut R) -> Duration {
        let hint = hint.min(MAX_RETRY_HINT);
        let span = (hint / 4).max(Duration::from_secs(1)).min(hint);
        hint + uniform(span, rng)
    }
}

fn uniform<R: Rng + ?Sized>(ceiling: Duration, rng: &mut R) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn samples(backoff: &Backoff, attempt: u32, n: usize) -> Vec<Duration> {
        let mut rng = StdRng::seed_from_u64(u64::from(attempt) + 7);
        (0..n).map(|_| backoff.delay(attempt, &mut rng)).collect()
    }

    #[test]
    fn ceiling_grows_then_caps() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(0), Duration::from_secs(1));
        assert_eq!(b.ceiling(1), Duration::from_secs(2));
        assert_eq!(b.ceiling(5), Duration::from_secs(32));
        assert_eq!(b.ceiling(6), Duration::from_secs(60));
        for attempt in [7, 30, 64, 65, 1000, 1025, u32::MAX] {
            assert_eq!(b.ceiling(attempt), b.max, "attempt {attempt}");
        }
    }

    #[test]
    fn full_jitter_spreads_over_the_whole_range() {
        let b = Backoff::default();
        let attempt = 3; // ceiling 8 s
        let cap = b.ceiling(attempt);
        let delays = samples(&b, attempt, 1000);
        let max = delays.iter().max().copied().unwrap_or_default();
        let min = delays.iter().min().copied().unwrap_or_default();
        assert!(max <= cap, "{max:?} > {cap:?}");
        assert!(min < cap / 10, "nothing near 0: min {min:?}");
        assert!(max > cap * 9 / 10, "nothing near the ceiling: max {max:?}");
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 990, "delays repeat: {}", distinct.len());
        // Each tenth of the range gets a fair share (uniform: ~100 each).
        let mut deciles = [0usize; 10];
        for d in &delays {
            let i = (d.as_secs_f64() / cap.as_secs_f64() * 10.0) as usize;
            deciles[i.min(9)] += 1;
        }
        assert!(deciles.iter().all(|&n| n > 50), "{deciles:?}");
    }

    #[test]
    fn the_cap_keeps_its_jitter_and_is_never_zero() {
        let b = Backoff::default();
        for attempt in [6, 40, 100, 5000, u32::MAX] {
            let delays = samples(&b, attempt, 1000);
            let max = delays.iter().max().copied().unwrap_or_default();
            let mean = delays.iter().sum::<Duration>() / 1000;
            assert!(max <= b.max, "attempt {attempt}: {max:?} beyond the cap");
            assert!(
                max > Duration::from_secs(55),
                "attempt {attempt}: max {max:?}"
            );
            // Uniform over [0, 60 s]: mean ~30 s, never collapsed to zero or to the cap.
            assert!(
                (Duration::from_secs(25)..Duration::from_secs(35)).contains(&mean),
                "attempt {attempt}: mean {mean:?}"
            );
            let zeros = delays.iter().filter(|d| d.is_zero()).count();
            assert!(zeros <= 1, "attempt {attempt}: {zeros} zero delays");
        }
    }

    #[test]
    fn a_retry_hint_is_a_floor_with_jitter_on_top() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
        };
        let mut rng = StdRng::seed_from_u64(1);
        let hint = Duration::from_secs(2);
        let delays: Vec<_> = (0..1000)
            .map(|_| b.delay_after_hint(hint, &mut rng))
            .collect();
        // Short hints: one second of jitter.
        assert!(
            delays
                .iter()
                .all(|d| *d >= hint && *d <= hint + Duration::from_secs(1))
        );
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 990);
        // Long hints: a quarter of the hint, never the exponential ceiling.
        let hint = Duration::from_secs(40);
        for _ in 0..1000 {
            let d = b.delay_after_hint(hint, &mut rng);
            assert!(d >= hint && d <= Duration::from_secs(50), "{d:?}");
        }
        // An absurd hint is bounded.
        let d = b.delay_after_hint(Duration::from_secs(10_000_000), &mut rng);
        assert!(d <= MAX_RETRY_HINT + MAX_RETRY_HINT / 4);
    }
}
