//! The only place that knows which database it is talking to.

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Connection, Executor};
use std::time::Duration;
use twofold_core::ports::{StoreError, StoreResult};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl Backend {
    pub fn from_url(url: &str) -> StoreResult<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::Other(
                "database.url must start with sqlite: or postgres://".into(),
            ))
        }
    }

    pub(crate) fn migrator(self) -> &'static Migrator {
        match self {
            Self::Sqlite => &SQLITE_MIGRATIONS,
            Self::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

pub(crate) async fn connect(
    url: &str,
    options: &ConnectOptions,
) -> StoreResult<(AnyPool, Backend)> {
    sqlx::any::install_default_drivers();
    let backend = Backend::from_url(url)?;
    // The pool retries a failed connection until its acquire timeout and then says only
    // "pool timed out"; one direct attempt first says why (refused, unknown host, password).
    match sqlx::AnyConnection::connect(url).await {
        Ok(conn) => {
            let _ = conn.close().await;
        }
        Err(e) => return Err(StoreError::Unavailable(why_not_connected(url, &e))),
    }
    let max = match backend {
        // SQLite has one writer at a time; a few connections serve reads while one writes.
        Backend::Sqlite => options.max_connections.clamp(1, 4),
        Backend::Postgres => options.max_connections.max(1),
    };
    Ok((
        open_pool(url, backend, max, options, "twofold").await?,
        backend,
    ))
}

/// What to tell an operator about a failed first connection.
fn why_not_connected(url: &str, e: &sqlx::Error) -> String {
    let at = url::Url::parse(url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port().unwrap_or(5432))));
    let io = match e {
        sqlx::Error::Io(io) => Some(io.kind()),
        _ => None,
    };
    match (io, at) {
        (Some(std::io::ErrorKind::ConnectionRefused), Some(at)) => {
            format!("connection refused to {at} (is the database running there?)")
        }
        (Some(std::io::ErrorKind::TimedOut), Some(at)) => format!("connecting to {at} timed out"),
        _ => format!("cannot connect to the database: {e}"),
    }
}

/// The code checks' own connections: one held by each of its four group workers
/// (`batch`). On the main pool a group waited up to 215 ms for a connection during the login
/// flood on PostgreSQL, with 13 of 16 idle (measured): sqlx tests every connection with a
/// round trip when it hands it out and again, in a task of its own, when it comes back, and
/// under load that task and the idle backend first have to be scheduled — while every check
/// in the group waits.
pub(crate) const CODE_CHECK_CONNECTIONS: u32 = 4;
/// How PostgreSQL's `pg_stat_activity` names them.
pub const CODE_CHECK_APPLICATION: &str = "twofold-code-checks";

/// Every statement on the code checks' connections looks up the few rows of a group by key,
/// driven by a JSON array the planner guesses at 100 rows. With that guess, and the
/// statistics a bulk import leaves (or a table that grew since its last ANALYZE), PostgreSQL
/// chose a hash join over a full scan of `factors` instead of index lookups: at 20,000
/// factors each consumed step read all of them (`/verify` at c=1 332/s and 2.4 ms of
/// PostgreSQL CPU per check, against 988/s and 0.46 ms with this; `EXPLAIN ANALYZE` of the
/// group read, even after ANALYZE: 3.6 ms against 0.08 ms). Without hash and merge joins only
/// a nested loop is left, which takes the indexes. (The trap `code_checks::budget_join`
/// sidesteps for `attempt_budgets`, which also holds on the main pool's one-at-a-time retry.)
const CODE_CHECK_PLANNER: &str = "SET enable_hashjoin = off; SET enable_mergejoin = off;";

pub(crate) async fn connect_code_checks(
    url: &str,
    backend: Backend,
    options: &ConnectOptions,
) -> StoreResult<AnyPool> {
    open_pool(
        url,
        backend,
        CODE_CHECK_CONNECTIONS,
        options,
        CODE_CHECK_APPLICATION,
    )
    .await
}

/// Every PostgreSQL session's limits: a statement runs at most 15 s (a request's deadline is
/// 30 s), waits for a lock at most 10 s, and a transaction idle for 30 s is ended by the
/// server. Migrations lift the first two on the connection they run on (see
/// `SqlStore::migrate`).
pub(crate) const POSTGRES_SESSION_LIMITS: &str = "SET statement_timeout = '15s'; \
     SET lock_timeout = '10s'; SET idle_in_transaction_session_timeout = '30s';";

/// sqlx tests a connection with a round trip each time it hands it out, and again when it
/// comes back. A connection back within the last second was just tested on its way in, so
/// only one idle for longer is tested again before it is handed out (one the server or the
/// network dropped while it waited is then replaced before a statement fails on it). Under
/// load this spares one round trip per checkout — eight per password + TOTP login.
const TEST_AFTER_IDLE: Duration = Duration::from_secs(1);

async fn open_pool(
    url: &str,
    backend: Backend,
    max: u32,
    options: &ConnectOptions,
    application: &'static str,
) -> StoreResult<AnyPool> {
    let pool_options = AnyPoolOptions::new()
        .acquire_timeout(options.acquire_timeout)
        .max_connections(max);
    let pool_options = pool_options
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= TEST_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .after_release(|conn, _meta| Box::pin(async move { left_clean(conn).await }));
    let pool_options = match backend {
        // WAL lets readers run beside the writer; NORMAL sync is safe with WAL. Checkpoints
        // run in the background (see `checkpoints`), not inside whichever write commits.
        Backend::Sqlite => pool_options.after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
                     PRAGMA wal_autocheckpoint = 0;",
                )
                .await?;
                for ddl in crate::sessions::sqlite_step_sign_in_schema() {
                    conn.execute(sqlx::AssertSqlSafe(ddl)).await?;
                }
                Ok(())
            })
        }),
        // Named, so an operator can tell them apart in `pg_stat_activity`; bounded, so a
        // statement stuck on a lock or a transaction left open cannot hold a connection (and
        // what it locked) past the request that wanted it.
        Backend::Postgres => pool_options.after_connect(move |conn, _meta| {
            Box::pin(async move {
                let planner = if application == CODE_CHECK_APPLICATION {
                    CODE_CHECK_PLANNER
                } else {
                    ""
                };
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "SET application_name = '{application}'; {POSTGRES_SESSION_LIMITS} {planner}"
                )))
                .await?;
                Ok(())
            })
        }),
    };
    pool_options
        .connect(url)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to the database: {e}")))
}

/// Whether a connection coming back to the pool may serve again: not if it still counts an
/// open transaction once its queued rollback has run.
///
/// sqlx-sqlite 0.9.0 keeps its own transaction depth beside SQLite's. When a statement fails
/// with `SQLITE_FULL` (also `SQLITE_IOERR`, `SQLITE_NOMEM`, and `SQLITE_BUSY` in some cases),
/// SQLite rolls the transaction back itself; sqlx's `ROLLBACK` then fails with "no transaction
/// is active" and its depth stays at 1. The next `begin()` on that connection would issue a
/// `SAVEPOINT`, which opens a real transaction that no later "commit" (a `RELEASE`) ever
/// commits: the connection would hold SQLite's write lock for good, and whoever else used it
/// would read rows that never reach the file. Such a connection is closed instead; the pool
/// opens a fresh one. Nothing sqlx does wrong on PostgreSQL is known, but the same check
/// costs nothing there unless a transaction was dropped without commit.
async fn left_clean(conn: &mut sqlx::AnyConnection) -> Result<bool, sqlx::Error> {
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    // A dropped transaction's rollback is only queued; a round trip lets it run first.
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!(
            "a database connection came back inside a transaction it cannot leave; closing it"
        );
        return Ok(false);
    }
    Ok(true)
}

/// How often the background checkpoint copies the SQLite write-ahead log into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// SQLite's automatic checkpoint runs inside the statement whose commit fills the log past
/// 1,000 pages — most often a code check, the most frequent write — and under load it took
/// 0.3–1.8 s (measured during the benchmark's login flood), stalling every check queued
/// behind it. Connections therefore never checkpoint (`wal_autocheckpoint = 0`) and this task
/// does, once a second, without blocking writers (PASSIVE). It ends with the store: when
/// `stop` is dropped or the pool is closed.
pub(crate) fn checkpoints(pool: AnyPool, mut stop: tokio::sync::oneshot::Receiver<()>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stop => return,
                () = tokio::time::sleep(CHECKPOINT_EVERY) => {}
            }
            if pool.is_closed() {
                return;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_all(&pool)
                .await
            {
                tracing::warn!(error = %e, "SQLite checkpoint failed");
            }
        }
    });
}
