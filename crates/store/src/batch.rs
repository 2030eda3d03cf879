//! Group execution of the statements every code check runs.
//!
//! Each statement costs a round trip besides its work — on SQLite a hand-off to sqlx's
//! connection thread and back, on PostgreSQL a network round trip and a backend process
//! woken — and at thousands of checks per second that overhead, not the SQL, is the cost.
//! Concurrent callers of one kind of statement therefore queue here, and a worker runs
//! whatever has queued as one statement over a JSON array of inputs. A caller waits for its
//! own answer only; nothing waits for a batch to fill: a caller with nobody beside it is a
//! group of one. (It used to run its statement itself, on a connection from the main pool;
//! under the login flood that connection took up to 215 ms to come, more than the hop to the
//! worker and back costs.)

use crate::codec::db_error;
use sqlx::AnyPool;
use sqlx::any::Any;
use sqlx::pool::PoolConnection;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use twofold_core::ports::{StoreError, StoreResult};

pub(crate) type Conn = PoolConnection<Any>;
type Reply<R> = oneshot::Sender<StoreResult<R>>;
/// Runs a batch on the connection it is given and hands the connection back.
type Run<Q, R> = Arc<
    dyn Fn(Conn, Vec<Q>) -> Pin<Box<dyn Future<Output = (Conn, StoreResult<Vec<R>>)> + Send>>
        + Send
        + Sync,
>;

pub(crate) struct Batcher<Q, R> {
    queue: mpsc::UnboundedSender<(Q, Reply<R>)>,
}

impl<Q, R> std::fmt::Debug for Batcher<Q, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<Q: Clone + Send + 'static, R: Send + 'static> Batcher<Q, R> {
    /// `run` answers a batch in order, one answer per input. One worker runs the groups, one
    /// at a time (SQLite has one writer; on PostgreSQL one stream of groups outran the bare
    /// UPDATE at c=64 in the benchmark; two workers per statement were 12–15 % slower), on a
    /// connection it takes from `group_pool` and keeps: a connection checked out of a pool
    /// and back costs a test round trip on its way back (and one on its way out after a
    /// second idle, `backend::TEST_AFTER_IDLE`), and under load it waits for the task that
    /// returns it. A batch
    /// that fails as a whole is retried one input at a time on `pool`, so one bad input (or
    /// a deadlock between nodes, or a connection that broke) fails only itself.
    pub(crate) fn spawn<F, Fut>(
        name: &'static str,
        pool: AnyPool,
        group_pool: AnyPool,
        max_batch: usize,
        run: F,
    ) -> Self
    where
        F: Fn(Conn, Vec<Q>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = (Conn, StoreResult<Vec<R>>)> + Send + 'static,
    {
        let (queue, rx) = mpsc::unbounded_channel::<(Q, Reply<R>)>();
        let run: Run<Q, R> = Arc::new(move |conn, batch| Box::pin(run(conn, batch)));
        tokio::spawn(work(
            Worker {
                name,
                run,
                pool,
                group_pool,
                max_batch: max_batch.max(1),
            },
            rx,
        ));
        Self { queue }
    }

    /// Queues `input` without waiting for its answer. For writes whose outcome the caller
    /// does not act on: they still run in queue order, before anything queued after them.
    pub(crate) fn send(&self, input: Q) -> StoreResult<()> {
        let (reply, _) = oneshot::channel();
        self.queue
            .send((input, reply))
            .map_err(|_| StoreError::Unavailable("the store is shutting down".into()))
    }

    pub(crate) async fn call(&self, input: Q) -> StoreResult<R> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((input, reply))
            .map_err(|_| StoreError::Unavailable("the store is shutting down".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the store is shutting down".into()))?
    }
}

struct Worker<Q, R> {
    name: &'static str,
    run: Run<Q, R>,
    pool: AnyPool,
    group_pool: AnyPool,
    max_batch: usize,
}

async fn work<Q: Clone, R>(w: Worker<Q, R>, mut rx: mpsc::UnboundedReceiver<(Q, Reply<R>)>) {
    let mut held: Option<Conn> = None;
    // Closing a pool waits for its connections, so the held one goes back when it closes.
    let mut closing = std::pin::pin!(w.group_pool.close_event());
    loop {
        let first = tokio::select! {
            next = rx.recv() => next,
            () = &mut closing => None,
        };
        let Some(first) = first else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < w.max_batch {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (inputs, replies): (Vec<Q>, Vec<Reply<R>>) = batch.into_iter().unzip();
        let started = std::time::Instant::now();
        let conn = match held.take() {
            Some(conn) => Ok(conn),
            None => w.group_pool.acquire().await.map_err(db_error),
        };
        let answer = match conn {
            // No connection to be had: the retry one at a time would wait as long again for
            // each input, so the whole group is answered with it.
            Err(e) => Ok(inputs.iter().map(|_| Err(e.clone())).collect()),
            Ok(conn) => {
                let (conn, answer) = (w.run)(conn, inputs.clone()).await;
                // After an error the connection goes back to its pool, which tests it and
                // drops it if it broke; the next group takes a fresh one.
                if answer.is_ok() {
                    held = Some(conn);
                }
                answer.map(|answers| answers.into_iter().map(Ok).collect::<Vec<_>>())
            }
        };
        note_slow(w.name, inputs.len(), started);
        let answers = match answer {
            Ok(answers) if answers.len() == inputs.len() => answers,
            Ok(_) => {
                let e = StoreError::Other("a batch answered the wrong number of inputs".into());
                inputs.iter().map(|_| Err(e.clone())).collect()
            }
            Err(e) => {
                tracing::warn!(error = %e, size = inputs.len(), statement = w.name, "a group of statements failed; retrying one at a time");
                retry_one_at_a_time(&w, inputs).await
            }
        };
        for (reply, answer) in replies.into_iter().zip(answers) {
            // A caller that gave up (its request was cancelled) no longer listens.
            let _ = reply.send(answer);
        }
    }
}

/// A statement every code check waits for should take milliseconds: its time goes to
/// `twofold_code_check_group_seconds{statement}`, and a slow one to the log.
fn note_slow(name: &'static str, size: usize, started: std::time::Instant) {
    let took = started.elapsed();
    metrics::histogram!("twofold_code_check_group_seconds", "statement" => name)
        .record(took.as_secs_f64());
    if took > std::time::Duration::from_millis(250) {
        tracing::warn!(
            statement = name,
            size,
            took_ms = took.as_millis() as u64,
            "slow code-check statement"
        );
    }
}

/// Each input as a group of its own on the main pool; once the database is out of reach,
/// the rest get that answer without waiting for it again.
async fn retry_one_at_a_time<Q, R>(w: &Worker<Q, R>, inputs: Vec<Q>) -> Vec<StoreResult<R>> {
    let mut answers = Vec::with_capacity(inputs.len());
    let mut unreachable: Option<StoreError> = None;
    for input in inputs {
        let answer = match &unreachable {
            Some(e) => Err(e.clone()),
            None => run_one(w.name, &w.run, &w.pool, input).await,
        };
        if let Err(e @ StoreError::Unavailable(_)) = &answer {
            unreachable = Some(e.clone());
        }
        answers.push(answer);
    }
    answers
}

/// Runs one input as a group of its own, on a connection checked out of `pool` for it.
async fn run_one<Q, R>(
    name: &'static str,
    run: &Run<Q, R>,
    pool: &AnyPool,
    input: Q,
) -> StoreResult<R> {
    let started = std::time::Instant::now();
    let conn = pool.acquire().await.map_err(db_error)?;
    let (_, answer) = run(conn, vec![input]).await;
    note_slow(name, 1, started);
    answer.and_then(|mut one| {
        one.pop()
            .ok_or_else(|| StoreError::Other("a batch answered nothing".into()))
    })
}
