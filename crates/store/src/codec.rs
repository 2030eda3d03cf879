//! Conversions between core types and the portable column types.

use sqlx::Row;
use sqlx::any::AnyRow;
use sqlx::sqlite::SqliteError;
use time::OffsetDateTime;
use twofold_core::ports::StoreError;
use uuid::Uuid;

pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_ms(v: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1_000_000)
        .map_err(|e| StoreError::Other(format!("bad timestamp {v}: {e}")))
}

pub(crate) fn opt_from_ms(v: Option<i64>) -> StoreResult<Option<OffsetDateTime>> {
    v.map(from_ms).transpose()
}

pub(crate) fn uuid(v: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(v).map_err(|e| StoreError::Other(format!("bad uuid {v}: {e}")))
}

pub(crate) fn get<'r, T>(row: &'r AnyRow, col: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(col)
        .map_err(|e| StoreError::Other(format!("column {col}: {e}")))
}

pub(crate) type StoreResult<T> = Result<T, StoreError>;

/// Maps driver errors: unique violations are conflicts; trouble of the database rather than
/// of the request (connections, a full disk, a lock held too long) is "unavailable", which
/// callers answer with 503 and `Retry-After`.
pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(d.to_string()),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(d) if d.try_downcast_ref::<SqliteError>().is_some() => {
            match d.code().and_then(|c| c.parse().ok()) {
                Some(code) if sqlite_unavailable(code) => StoreError::Unavailable(e.to_string()),
                _ => StoreError::Other(e.to_string()),
            }
        }
        sqlx::Error::Database(d) if d.code().is_some_and(|c| postgres_unavailable(&c)) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

/// SQLite result codes (extended ones included) that say the database cannot take the
/// statement now: busy or locked past `busy_timeout`, read-only, disk full, I/O failing, out
/// of memory. The request itself was fine, and the same request can succeed later.
fn sqlite_unavailable(code: i32) -> bool {
    const BUSY: i32 = 5;
    const LOCKED: i32 = 6;
    const NOMEM: i32 = 7;
    const READONLY: i32 = 8;
    const IOERR: i32 = 10;
    const FULL: i32 = 13;
    const CANTOPEN: i32 = 14;
    matches!(
        code & 0xff,
        BUSY | LOCKED | NOMEM | READONLY | IOERR | FULL | CANTOPEN
    )
}

/// PostgreSQL SQLSTATEs of the same kind: the connection ends (class 08, or 57P01–57P05:
/// shutdown, restart, terminated by an administrator), the server lacks resources (class 53:
/// disk full, out of memory, too many connections), a statement or lock waited past its
/// timeout (57014, 55P03), or a transaction lost a conflict and may simply be retried
/// (class 40: serialization failure, deadlock).
fn postgres_unavailable(code: &str) -> bool {
    ["08", "57P", "53", "40"]
        .iter()
        .any(|class| code.starts_with(class))
        || code == "57014"
        || code == "55P03"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[derive(Debug)]
    struct PgError(&'static str);

    impl std::fmt::Display for PgError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error {}", self.0)
        }
    }

    impl std::error::Error for PgError {}

    impl sqlx::error::DatabaseError for PgError {
        fn message(&self) -> &str {
            "error"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn mapped(code: &'static str) -> StoreError {
        db_error(sqlx::Error::Database(Box::new(PgError(code))))
    }

    #[test]
    fn a_connection_the_server_ends_is_unavailable_not_internal() {
        // admin_shutdown (pg_terminate_backend), crash_shutdown, cannot_connect_now,
        // connection_failure.
        for code in ["57P01", "57P02", "57P03", "08006"] {
            assert!(matches!(mapped(code), StoreError::Unavailable(_)), "{code}");
        }
        // A statement's own failure stays an internal error (here: division by zero).
        assert!(matches!(mapped("22012"), StoreError::Other(_)));
    }

    #[test]
    fn a_database_out_of_resources_is_unavailable_not_internal() {
        // disk_full, out_of_memory, too_many_connections, query_canceled (statement_timeout),
        // lock_not_available, serialization_failure, deadlock_detected.
        for code in [
            "53100", "53200", "53300", "57014", "55P03", "40001", "40P01",
        ] {
            assert!(matches!(mapped(code), StoreError::Unavailable(_)), "{code}");
        }
        // Bad data from a request stays internal: it will not succeed later either.
        for code in ["22001", "23503", "42P01"] {
            assert!(matches!(mapped(code), StoreError::Other(_)), "{code}");
        }
    }

    #[test]
    fn sqlite_codes_of_a_database_that_cannot_write_now() {
        // SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT, SQLITE_LOCKED, SQLITE_READONLY,
        // SQLITE_READONLY_DBMOVED, SQLITE_IOERR_WRITE, SQLITE_FULL, SQLITE_NOMEM.
        for code in [5, 517, 6, 8, 1032, 778, 13, 7] {
            assert!(sqlite_unavailable(code), "{code}");
        }
        // SQLITE_ERROR, SQLITE_CONSTRAINT_FOREIGNKEY, SQLITE_MISMATCH, SQLITE_TOOBIG.
        for code in [1, 787, 20, 18] {
            assert!(!sqlite_unavailable(code), "{code}");
        }
    }
}
