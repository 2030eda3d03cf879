//! The server's own view of latency, from its Prometheus histograms: the time a `/verify`
//! request spent inside Twofold's handlers, and the time its code-check groups took, against
//! the load generator's end-to-end figure, which adds the kernel, the connection and the load
//! generator's own wait for a CPU. On two shared cores the difference tells whether a slow
//! p99 is the server's, its database's or the machine's.

use anyhow::{Context, Result};
use prometheus_parse::{Labels, Scrape, Value};

/// One scrape of `/metrics`.
pub struct Metrics(Scrape);

impl Metrics {
    pub async fn scrape(client: &reqwest::Client, base: &str) -> Result<Self> {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Self::parse(&text)
    }

    fn parse(text: &str) -> Result<Self> {
        // prometheus-parse 0.2 ends a label set at the first `}`, even inside a quoted value,
        // so the route pattern's `{subject}` is renamed before parsing.
        let lines = text.lines().map(|l| Ok(l.replace("{subject}", ":subject")));
        Ok(Self(Scrape::parse(lines).context("parse /metrics")?))
    }

    /// Successful `/verify` requests by time inside the server.
    pub fn verify(&self) -> Histogram {
        self.histogram("twofold_http_request_duration_seconds", |l| {
            l.get("route")
                .is_some_and(|r| r.ends_with("/subjects/:subject/verify"))
                && l.get("status") == Some("2xx")
        })
    }

    /// The code-check groups of one statement (`subject_state`, `step_claim` …) by time.
    pub fn group(&self, statement: &str) -> Histogram {
        self.histogram("twofold_code_check_group_seconds", |l| {
            l.get("statement") == Some(statement)
        })
    }

    /// Cumulative counts by upper bound in seconds, summed over the series `matches` keeps.
    fn histogram(&self, metric: &str, matches: impl Fn(&Labels) -> bool) -> Histogram {
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        for sample in self
            .0
            .samples
            .iter()
            .filter(|s| s.metric == metric && matches(&s.labels))
        {
            let Value::Histogram(counts) = &sample.value else {
                continue;
            };
            for b in counts {
                match buckets.iter_mut().find(|(le, _)| *le == b.less_than) {
                    Some((_, n)) => *n += b.count,
                    None => buckets.push((b.less_than, b.count)),
                }
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Histogram(buckets)
    }
}

/// Cumulative counts by upper bound in seconds.
#[derive(Debug, Clone, Default)]
pub struct Histogram(Vec<(f64, f64)>);

impl Histogram {
    /// What was counted since `before`.
    pub fn since(&self, before: &Self) -> Self {
        Self(
            self.0
                .iter()
                .map(|&(le, n)| {
                    let earlier = before
                        .0
                        .iter()
                        .find(|(l, _)| *l == le)
                        .map_or(0.0, |(_, m)| *m);
                    (le, n - earlier)
                })
                .collect(),
        )
    }

    /// The smallest bucket bound, in milliseconds, under which at least `q` of the counted
    /// finished: the quantile, to the histogram's resolution.
    pub fn quantile_bound_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0.0 {
            return None;
        }
        self.0
            .iter()
            .find(|&&(_, n)| n >= q * total)
            .map(|&(le, _)| le * 1000.0)
    }

    pub fn count(&self) -> f64 {
        self.0.iter().map(|&(_, n)| n).fold(0.0, f64::max)
    }

    /// "N …: p50 ≤ x ms, p99 ≤ y ms", or `None` when nothing was counted.
    pub fn summary(&self, what: &str) -> Option<String> {
        let (p50, p99) = (self.quantile_bound_ms(0.5)?, self.quantile_bound_ms(0.99)?);
        Some(format!(
            "{:.0} {what}: p50 ≤ {p50} ms, p99 ≤ {p99} ms",
            self.count()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{Histogram, Metrics};

    #[test]
    fn reads_the_verify_route_and_the_groups_of_the_exporter() {
        let route = "/api/v1/subjects/{subject}/verify";
        let mut text = String::from("# TYPE twofold_http_request_duration_seconds histogram\n");
        for (status, counts) in [("2xx", [3, 5, 6]), ("4xx", [1, 1, 1])] {
            for (le, n) in ["0.01", "0.05", "+Inf"].iter().zip(counts) {
                text.push_str(&format!(
                    "twofold_http_request_duration_seconds_bucket{{route=\"{route}\",method=\"POST\",status=\"{status}\",le=\"{le}\"}} {n}\n"
                ));
            }
        }
        text.push_str("# TYPE twofold_code_check_group_seconds histogram\n");
        for (le, n) in ["0.001", "0.01", "+Inf"].iter().zip([7, 9, 10]) {
            text.push_str(&format!(
                "twofold_code_check_group_seconds_bucket{{statement=\"step_claim\",le=\"{le}\"}} {n}\n"
            ));
        }
        let m = Metrics::parse(&text).unwrap();
        let verify = m.verify();
        assert_eq!(verify.count(), 6.0, "{verify:?}");
        assert_eq!(verify.quantile_bound_ms(0.5), Some(10.0));
        let claims = m.group("step_claim");
        assert_eq!(claims.count(), 10.0, "{claims:?}");
        assert_eq!(claims.quantile_bound_ms(0.9), Some(10.0));
        assert_eq!(m.group("subject_state").count(), 0.0);
    }

    #[test]
    fn quantile_is_the_first_bound_holding_enough() {
        let before = Histogram(vec![(0.01, 10.0), (0.05, 10.0), (f64::INFINITY, 10.0)]);
        let after = Histogram(vec![(0.01, 900.0), (0.05, 1000.0), (f64::INFINITY, 1010.0)]);
        let run = after.since(&before);
        assert_eq!(run.count(), 1000.0);
        assert_eq!(run.quantile_bound_ms(0.5), Some(10.0));
        assert_eq!(run.quantile_bound_ms(0.99), Some(50.0));
        assert_eq!(run.quantile_bound_ms(1.0), Some(f64::INFINITY));
        assert_eq!(Histogram::default().quantile_bound_ms(0.99), None);
        assert_eq!(Histogram::default().summary("requests"), None);
    }
}
