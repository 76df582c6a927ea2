//! The one timestamp format of the database and the clock that writes it.
//!
//! Every time is stored as TEXT `YYYY-MM-DDTHH:MM:SS.ffffffZ`: RFC 3339, UTC, always six
//! fractional digits (the microseconds PostgreSQL keeps), always 27 characters for the years
//! 0000-9999. One shape for every value means comparing the strings compares the times, so
//! `last_seen > ?`, `ORDER BY created_at` and the time indexes work on the text, and the file
//! stays readable in the `sqlite3` shell. The schema checks the shape on every column.
//!
//! Times are never bound as `DateTime` (sqlx would write a variable number of digits and a
//! `+00:00` suffix, which does not sort): always through [`encode`] or [`encode_bound`].
//! Reading back goes through sqlx's RFC 3339 decoding.
//!
//! `now()` comes from this process's clock, not SQLite's (`'now'` only has milliseconds): the
//! database lives in this process, so its clock is this clock. One operation takes one `now`,
//! like PostgreSQL's transaction time.

use chrono::{DateTime, Datelike, DurationRound, TimeDelta, Utc};
use moolai_store::StoreError;

const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";
/// The earliest and latest times the format can hold.
const MIN: &str = "0000-01-01T00:00:00.000000Z";
const MAX: &str = "9999-12-31T23:59:59.999999Z";

/// Now, at the microsecond precision stored.
pub(crate) fn now() -> DateTime<Utc> {
    let t = Utc::now();
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

fn representable(t: DateTime<Utc>) -> bool {
    (0..=9999).contains(&t.year())
}

/// A time to store. Sub-microsecond digits are dropped (as PostgreSQL does); a year outside
/// 0000-9999 is refused rather than stored in a shape that would not sort.
pub(crate) fn encode(t: DateTime<Utc>) -> Result<String, StoreError> {
    if representable(t) {
        Ok(t.format(FORMAT).to_string())
    } else {
        Err(StoreError::Invalid(format!(
            "time {t} is outside the years 0000-9999 the database keeps"
        )))
    }
}

/// A time to compare with: clamped into the representable range, which changes no
/// comparison since no stored time lies outside it.
pub(crate) fn encode_bound(t: DateTime<Utc>) -> String {
    if representable(t) {
        t.format(FORMAT).to_string()
    } else if t.year() < 0 {
        MIN.to_owned()
    } else {
        MAX.to_owned()
    }
}

/// `now - ttl`, the exclusive lower bound of a `last_seen` that still counts as alive.
pub(crate) fn cutoff(now: DateTime<Utc>, ttl: TimeDelta) -> String {
    now.checked_sub_signed(ttl)
        .map_or_else(|| MIN.to_owned(), encode_bound)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, micros: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, 6, 2, 10, 0, 0)
            .single()
            .expect("valid")
            + TimeDelta::microseconds(micros)
    }

    #[test]
    fn every_time_has_one_shape_that_sorts() {
        let times = [
            at(1, 0),
            at(999, 5),
            at(2025, 0),
            at(2025, 1),
            at(2025, 999_999),
            at(9999, 0),
        ];
        let encoded: Vec<String> = times
            .iter()
            .map(|t| encode(*t).expect("in range"))
            .collect();
        assert_eq!(encoded[2], "2025-06-02T10:00:00.000000Z");
        assert_eq!(encoded[1], "0999-06-02T10:00:00.000005Z");
        assert!(encoded.iter().all(|s| s.len() == 27), "{encoded:?}");
        assert!(encoded.windows(2).all(|w| w[0] < w[1]), "{encoded:?}");
        for (t, s) in times.iter().zip(&encoded) {
            let back = DateTime::parse_from_rfc3339(s).expect("rfc 3339");
            assert_eq!(back, *t);
        }
    }

    #[test]
    fn drops_nanoseconds_and_refuses_unsortable_years() {
        let t = at(2025, 0) + TimeDelta::nanoseconds(1_999);
        assert_eq!(encode(t).expect("in range"), "2025-06-02T10:00:00.000001Z");
        assert!(matches!(encode(at(10_000, 0)), Err(StoreError::Invalid(_))));
        assert_eq!(encode_bound(at(10_000, 0)), MAX);
        assert_eq!(encode_bound(at(-1, 0)), MIN);
        assert_eq!(
            cutoff(at(2025, 0), TimeDelta::seconds(60)),
            "2025-06-02T09:59:00.000000Z"
        );
        assert_eq!(cutoff(at(2025, 0), TimeDelta::MAX), MIN);
    }
}
