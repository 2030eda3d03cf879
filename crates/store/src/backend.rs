//! The only place that knows which database it is talking to.

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
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
    let pool_options = AnyPoolOptions::new().acquire_timeout(options.acquire_timeout);
    let pool_options = match backend {
        // SQLite has one writer at a time; a few connections serve reads while one writes.
        // WAL lets readers run beside the writer; NORMAL sync is safe with WAL.
        Backend::Sqlite => pool_options
            .max_connections(options.max_connections.clamp(1, 4))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            }),
        Backend::Postgres => pool_options.max_connections(options.max_connections.max(1)),
    };
    let pool = pool_options
        .connect(url)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to the database: {e}")))?;
    Ok((pool, backend))
}
