//! The server's own view of `/verify` latency, from its Prometheus histogram: the time a
//! request spent inside Twofold's handlers, against the load generator's end-to-end figure,
//! which adds the kernel, the connection and the load generator's own wait for a CPU. On two
//! shared cores the difference tells whether a slow p99 is the server's or the machine's.

use anyhow::{Context, Result};
use prometheus_parse::{Scrape, Value};

/// Cumulative counts of successful `/verify` requests by upper bound in seconds, summed
/// over every series of the route.
#[derive(Debug, Clone, Default)]
pub struct VerifyHistogram(Vec<(f64, f64)>);

impl VerifyHistogram {
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
        let scrape = Scrape::parse(lines).context("parse /metrics")?;
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        for sample in scrape.samples.iter().filter(|s| {
            s.metric == "twofold_http_request_duration_seconds"
                && s.labels
                    .get("route")
                    .is_some_and(|r| r.ends_with("/subjects/:subject/verify"))
                && s.labels.get("status") == Some("2xx")
        }) {
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
        Ok(Self(buckets))
    }

    /// The requests counted since `before`.
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

    /// The smallest bucket bound, in milliseconds, under which at least `q` of the requests
    /// finished: the server-side quantile, to the histogram's resolution.
    pub fn quantile_bound_ms(&self, q: f64) -> Option<f64> {
        let total = self.0.iter().map(|&(_, n)| n).fold(0.0, f64::max);
        if total <= 0.0 {
            return None;
        }
        self.0
            .iter()
            .find(|&&(_, n)| n >= q * total)
            .map(|&(le, _)| le * 1000.0)
    }

    pub fn requests(&self) -> f64 {
        self.0.iter().map(|&(_, n)| n).fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::VerifyHistogram;

    #[test]
    fn reads_the_verify_route_of_the_exporter() {
        let mut text = String::from("# TYPE twofold_http_request_duration_seconds histogram\n");
        for (status, counts) in [("2xx", [3, 5, 6]), ("4xx", [1, 1, 1])] {
            for (le, n) in ["0.01", "0.05", "+Inf"].iter().zip(counts) {
                text.push_str(&format!(
                    "twofold_http_request_duration_seconds_bucket{{route=\"/api/v1/subjects/{{subject}}/verify\",method=\"POST\",status=\"{status}\",le=\"{le}\"}} {n}\n"
                ));
            }
            text.push_str(&format!("twofold_http_request_duration_seconds_count{{route=\"/api/v1/subjects/{{subject}}/verify\",method=\"POST\",status=\"{status}\"}} {}\n", counts[2]));
        }
        let h = VerifyHistogram::parse(&text).unwrap();
        assert_eq!(h.requests(), 6.0, "{h:?}");
        assert_eq!(h.quantile_bound_ms(0.5), Some(10.0));
    }

    #[test]
    fn quantile_is_the_first_bound_holding_enough_requests() {
        let before = VerifyHistogram(vec![(0.01, 10.0), (0.05, 10.0), (f64::INFINITY, 10.0)]);
        let after = VerifyHistogram(vec![(0.01, 900.0), (0.05, 1000.0), (f64::INFINITY, 1010.0)]);
        let run = after.since(&before);
        assert_eq!(run.requests(), 1000.0);
        assert_eq!(run.quantile_bound_ms(0.5), Some(10.0));
        assert_eq!(run.quantile_bound_ms(0.99), Some(50.0));
        assert_eq!(run.quantile_bound_ms(1.0), Some(f64::INFINITY));
        assert_eq!(VerifyHistogram::default().quantile_bound_ms(0.99), None);
    }
}
