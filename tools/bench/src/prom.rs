//! Reading the services' Prometheus text: counters, and histogram quantiles from the bucket
//! deltas between two scrapes.

use anyhow::Context;

/// One scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// (name, labels as `k="v",…`, value)
    samples: Vec<(String, String, f64)>,
}

/// # Errors
/// When the metrics listener does not answer.
pub async fn scrape(http: &reqwest::Client, port: u16) -> anyhow::Result<Scrape> {
    let text = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .with_context(|| format!("scraping metrics on port {port}"))?
        .error_for_status()?
        .text()
        .await?;
    Ok(Scrape::parse(&text))
}

impl Scrape {
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some((s, v)) => (s.trim(), v.trim()),
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            samples.push((name.to_owned(), labels.to_owned(), value));
        }
        Self { samples }
    }

    /// Sum of every series of `name` whose labels contain `label_filter` (`""`: all).
    #[must_use]
    pub fn sum(&self, name: &str, label_filter: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| n == name && l.contains(label_filter))
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Cumulative buckets `(le, count)` of histogram `name`, sorted by `le`.
    #[must_use]
    pub fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let bucket = format!("{name}_bucket");
        let mut out: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|(n, _, _)| *n == bucket)
            .filter_map(|(_, l, v)| {
                let le = l.split("le=\"").nth(1)?.split('"').next()?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, *v))
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// A quantile read from bucket deltas: the bucket it falls in and a linear interpolation.
#[derive(Debug, Clone, Copy)]
pub struct Quantile {
    pub lower: f64,
    pub upper: f64,
    pub interpolated: f64,
}

impl std::fmt::Display for Quantile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.upper.is_infinite() {
            write!(f, "> {} s", fmt_secs(self.lower))
        } else {
            write!(
                f,
                "≈{} ({}–{})",
                fmt_secs(self.interpolated),
                fmt_secs(self.lower),
                fmt_secs(self.upper)
            )
        }
    }
}

/// `0.0123` → `12.3 ms`, `1.5` → `1.50 s`.
#[must_use]
pub fn fmt_secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

/// Observations between two scrapes of histogram `name`.
#[must_use]
pub fn delta_buckets(before: &Scrape, after: &Scrape, name: &str) -> Vec<(f64, f64)> {
    let b = before.buckets(name);
    after
        .buckets(name)
        .into_iter()
        .map(|(le, v)| {
            let prev = b
                .iter()
                .find(|(l, _)| (*l - le).abs() < 1e-12 || (l.is_infinite() && le.is_infinite()))
                .map_or(0.0, |(_, v)| *v);
            (le, v - prev)
        })
        .collect()
}

/// The `q` quantile of cumulative buckets (Prometheus' `histogram_quantile` rule: linear
/// inside the bucket).
#[must_use]
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<Quantile> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = 0.0;
    let mut below = 0.0;
    for &(le, count) in buckets {
        if count >= rank {
            let interpolated = if le.is_infinite() {
                lower
            } else {
                let inside = count - below;
                if inside > 0.0 {
                    lower + (le - lower) * (rank - below) / inside
                } else {
                    le
                }
            };
            return Some(Quantile {
                lower,
                upper: le,
                interpolated,
            });
        }
        lower = le;
        below = count;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_reads_quantiles_from_deltas() {
        let before = Scrape::parse(
            "# TYPE h histogram\nh_bucket{le=\"0.1\"} 10\nh_bucket{le=\"1\"} 10\nh_bucket{le=\"+Inf\"} 10\nc{x=\"a\"} 5\nc{x=\"b\"} 2\n",
        );
        let after = Scrape::parse(
            "h_bucket{le=\"0.1\"} 60\nh_bucket{le=\"1\"} 110\nh_bucket{le=\"+Inf\"} 110\n",
        );
        assert!((before.sum("c", "") - 7.0).abs() < 1e-9);
        assert!((before.sum("c", "x=\"a\"") - 5.0).abs() < 1e-9);
        let d = delta_buckets(&before, &after, "h");
        assert_eq!(d, vec![(0.1, 50.0), (1.0, 100.0), (f64::INFINITY, 100.0)]);
        let p50 = quantile(&d, 0.5).expect("p50");
        assert!((p50.interpolated - 0.1).abs() < 1e-9);
        let p99 = quantile(&d, 0.99).expect("p99");
        assert!((p99.upper - 1.0).abs() < 1e-9);
        assert!(p99.interpolated > 0.9 && p99.interpolated <= 1.0);
        assert!(quantile(&[(1.0, 0.0)], 0.5).is_none());
    }
}
