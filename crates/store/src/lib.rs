//! SQLite and PostgreSQL implementations of the core's store ports.
//!
//! Both backends run the same SQL through sqlx's `Any` driver: `$n` placeholders, Unix
//! milliseconds as integers, UUIDs as text, hashes as blobs. What differs between them —
//! connection setup and the migration sets — lives in [`backend`], and nowhere else.

mod accounts;
mod api;
mod attempts;
mod audit;
pub mod backend;
mod batch;
mod challenges;
mod code_checks;
mod codec;
mod console;
mod devices;
mod effects;
mod email_changes;
mod factors;
mod oidc;
mod outbox;
mod policy;
mod sessions;
mod tokens;
mod trusted_browsers;
mod webauthn;

pub use backend::{Backend, ConnectOptions};

use sqlx::AnyPool;
use twofold_core::ports::{HealthStore, StoreError, StoreResult};

/// The one store type: an `Any` pool plus which backend it talks to.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    /// The code checks' own connections (see [`backend::CODE_CHECK_CONNECTIONS`]).
    group_pool: AnyPool,
    backend: Backend,
    checks: std::sync::Arc<code_checks::CodeChecks>,
    /// Dropped with the last clone of the store, which ends its background tasks.
    _tasks: std::sync::Arc<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Connects without migrating; `serve` and `migrate` call [`SqlStore::migrate`] next.
    pub async fn connect(url: &str, options: &ConnectOptions) -> StoreResult<Self> {
        let (pool, backend) = backend::connect(url, options).await?;
        let group_pool = backend::connect_code_checks(url, backend, options).await?;
        let checks =
            std::sync::Arc::new(code_checks::CodeChecks::spawn(&pool, &group_pool, backend));
        let tasks = match backend {
            Backend::Sqlite => {
                let (stop, stopped) = tokio::sync::oneshot::channel();
                backend::checkpoints(pool.clone(), stopped);
                Some(stop)
            }
            Backend::Postgres => None,
        };
        Ok(Self {
            pool,
            group_pool,
            backend,
            checks,
            _tasks: std::sync::Arc::new(tasks),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies the embedded forward-only migrations of this backend. Returns how many ran.
    pub async fn migrate(&self) -> StoreResult<usize> {
        let before = self.applied_version().await.unwrap_or(None);
        let migrator = self.backend.migrator();
        let mut conn = self.pool.acquire().await.map_err(codec::db_error)?;
        if self.backend == Backend::Postgres {
            // A migration may rewrite a large table: no statement or lock limit for it. The
            // connection is closed afterwards, so no request ever runs without them.
            conn.close_on_drop();
            sqlx::Executor::execute(
                &mut *conn,
                "SET statement_timeout = 0; SET lock_timeout = 0;",
            )
            .await
            .map_err(codec::db_error)?;
        }
        migrator
            .run(&mut *conn)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        drop(conn);
        Ok(migrator
            .iter()
            .filter(|m| before.is_none_or(|v| m.version > v))
            .count())
    }

    async fn applied_version(&self) -> StoreResult<Option<i64>> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await
                .map_err(codec::db_error)?;
        Ok(v)
    }

    pub async fn close(&self) {
        self.group_pool.close().await;
        self.pool.close().await;
    }
}

#[async_trait::async_trait]
impl HealthStore for SqlStore {
    fn pool_use(&self) -> (u32, u32) {
        let pools = [&self.pool, &self.group_pool];
        (
            pools.iter().map(|p| p.size()).sum(),
            pools.iter().map(|p| p.num_idle() as u32).sum(),
        )
    }

    async fn ready(&self) -> StoreResult<()> {
        let latest = self.backend.migrator().iter().map(|m| m.version).max();
        let applied = self.applied_version().await?;
        if applied < latest {
            return Err(StoreError::Unavailable(format!(
                "migrations pending: database at {applied:?}, binary expects {latest:?}; run `twofold migrate`"
            )));
        }
        Ok(())
    }

    async fn heartbeat(&self, now: time::OffsetDateTime) -> StoreResult<()> {
        let done = sqlx::query("UPDATE heartbeat SET beat_at = $1 WHERE id = 1")
            .bind(codec::ms(now))
            .execute(&self.pool)
            .await
            .map_err(codec::db_error)?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Other("the heartbeat row is missing".into()));
        }
        Ok(())
    }
}
