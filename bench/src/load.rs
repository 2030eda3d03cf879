//! A closed-loop load generator: `concurrency` workers, each sending its next request as soon
//! as the previous one answers, until the time is up or the work runs out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub requests: usize,
    pub ok: usize,
    pub shed: usize,
    pub errors: usize,
    pub seconds: f64,
    pub latencies_us: Vec<u64>,
}

impl Stats {
    pub fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ok as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let idx = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[idx] as f64 / 1000.0
    }

    pub fn p50_ms(&self) -> f64 {
        self.percentile(0.50)
    }

    pub fn p99_ms(&self) -> f64 {
        self.percentile(0.99)
    }

    pub fn max_ms(&self) -> f64 {
        self.latencies_us
            .last()
            .map(|v| *v as f64 / 1000.0)
            .unwrap_or(0.0)
    }
}

/// What one request turned out to be.
pub enum Outcome {
    Ok,
    /// An intended refusal (503 with Retry-After under overload).
    Shed,
    Error,
}

/// Runs `job(i)` for i = 0, 1, 2 … (each index once) on `concurrency` workers for `duration`
/// or until `limit` jobs were started.
pub async fn run<F, Fut>(concurrency: usize, duration: Duration, limit: usize, job: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Outcome> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let job = job.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut s = Stats::default();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                let t = Instant::now();
                let outcome = job(i).await;
                s.latencies_us.push(t.elapsed().as_micros() as u64);
                s.requests += 1;
                match outcome {
                    Outcome::Ok => s.ok += 1,
                    Outcome::Shed => s.shed += 1,
                    Outcome::Error => s.errors += 1,
                }
            }
            s
        }));
    }
    let mut total = Stats::default();
    for w in workers {
        if let Ok(s) = w.await {
            total.requests += s.requests;
            total.ok += s.ok;
            total.shed += s.shed;
            total.errors += s.errors;
            total.latencies_us.extend(s.latencies_us);
        }
    }
    total.seconds = start
        .elapsed()
        .as_secs_f64()
        .min(duration.as_secs_f64().max(start.elapsed().as_secs_f64()));
    total.latencies_us.sort_unstable();
    total
}
