//! Group execution of the statements every code check runs.
//!
//! On SQLite each statement is a hand-off to sqlx's connection thread and back (two thread
//! wake-ups); at a few thousand checks per second that overhead, not the SQL, is the cost. Concurrent callers of
//! one kind of statement therefore queue here, and a worker runs whatever has queued as one
//! statement over a JSON array of inputs. A caller waits for its own answer only; nothing
//! waits for a batch to fill, and a caller with nobody beside it runs its statement itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Mutex, mpsc, oneshot};
use twofold_core::ports::{StoreError, StoreResult};

type Reply<R> = oneshot::Sender<StoreResult<R>>;
/// The waiting inputs, shared by the workers: whoever holds the lock gathers the next group.
type Queue<Q, R> = Arc<Mutex<mpsc::UnboundedReceiver<(Q, Reply<R>)>>>;
type Run<Q, R> =
    Arc<dyn Fn(Vec<Q>) -> Pin<Box<dyn Future<Output = StoreResult<Vec<R>>> + Send>> + Send + Sync>;

pub(crate) struct Batcher<Q, R> {
    name: &'static str,
    queue: mpsc::UnboundedSender<(Q, Reply<R>)>,
    run: Run<Q, R>,
    /// Callers inside [`Batcher::call`]; a caller that finds none runs its input itself.
    callers: AtomicUsize,
    /// `false` when spawned without workers: every caller runs its own input.
    grouped: bool,
}

impl<Q, R> std::fmt::Debug for Batcher<Q, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<Q: Clone + Send + 'static, R: Send + 'static> Batcher<Q, R> {
    /// `run` answers a batch in order, one answer per input. `workers` batches may be in
    /// flight at once (one for SQLite's single writer; none, so ungrouped, for PostgreSQL —
    /// see `code_checks`). A batch that
    /// fails as a whole is retried one input at a time, so one bad input (or a deadlock
    /// between nodes) fails only itself.
    pub(crate) fn spawn<F, Fut>(
        name: &'static str,
        workers: usize,
        max_batch: usize,
        run: F,
    ) -> Self
    where
        F: Fn(Vec<Q>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = StoreResult<Vec<R>>> + Send + 'static,
    {
        let (queue, rx) = mpsc::unbounded_channel::<(Q, Reply<R>)>();
        let rx = Arc::new(Mutex::new(rx));
        let run: Run<Q, R> = Arc::new(move |batch| Box::pin(run(batch)));
        // Without workers every caller runs its own input, ungrouped.
        for _ in 0..workers {
            tokio::spawn(work(name, rx.clone(), run.clone(), max_batch.max(1)));
        }
        Self {
            name,
            queue,
            run,
            callers: AtomicUsize::new(0),
            grouped: workers > 0,
        }
    }

    pub(crate) async fn call(&self, input: Q) -> StoreResult<R> {
        let caller = Caller::enter(&self.callers);
        if caller.alone || !self.grouped {
            // Nobody to group with: skip the hop to a worker and back.
            return run_one(self.name, &self.run, input).await;
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((input, reply))
            .map_err(|_| StoreError::Unavailable("the store is shutting down".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the store is shutting down".into()))?
    }
}

async fn work<Q: Clone, R>(name: &'static str, rx: Queue<Q, R>, run: Run<Q, R>, max_batch: usize) {
    loop {
        let mut batch = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            batch.push(first);
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
        }
        let (inputs, replies): (Vec<Q>, Vec<Reply<R>>) = batch.into_iter().unzip();
        let started = std::time::Instant::now();
        let answer = run(inputs.clone()).await;
        note_slow(name, inputs.len(), started);
        let answers = match answer {
            Ok(answers) if answers.len() == inputs.len() => {
                answers.into_iter().map(Ok).collect::<Vec<_>>()
            }
            Ok(_) => {
                let e = StoreError::Other("a batch answered the wrong number of inputs".into());
                inputs.iter().map(|_| Err(e.clone())).collect()
            }
            Err(e) if inputs.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(error = %e, size = inputs.len(), "a group of statements failed; retrying one at a time");
                let mut answers = Vec::with_capacity(inputs.len());
                for input in inputs {
                    answers.push(run_one(name, &run, input).await);
                }
                answers
            }
        };
        for (reply, answer) in replies.into_iter().zip(answers) {
            // A caller that gave up (its request was cancelled) no longer listens.
            let _ = reply.send(answer);
        }
    }
}

/// A statement every code check waits for should take milliseconds; say so when it does not.
fn note_slow(name: &'static str, size: usize, started: std::time::Instant) {
    let took = started.elapsed();
    if took > std::time::Duration::from_millis(250) {
        tracing::warn!(
            statement = name,
            size,
            took_ms = took.as_millis() as u64,
            "slow code-check statement"
        );
    }
}

/// Counts a caller in, and out again when dropped (also when its request is cancelled).
struct Caller<'a> {
    count: &'a AtomicUsize,
    alone: bool,
}

impl<'a> Caller<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        let alone = count.fetch_add(1, Ordering::SeqCst) == 0;
        Self { count, alone }
    }
}

impl Drop for Caller<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs one input as a group of its own.
async fn run_one<Q, R>(name: &'static str, run: &Run<Q, R>, input: Q) -> StoreResult<R> {
    let started = std::time::Instant::now();
    let answer = run(vec![input]).await;
    note_slow(name, 1, started);
    answer.and_then(|mut one| {
        one.pop()
            .ok_or_else(|| StoreError::Other("a batch answered nothing".into()))
    })
}
