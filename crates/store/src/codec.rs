//! Conversions between core types and the portable column types.

use sqlx::Row;
use sqlx::any::AnyRow;
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

/// Maps driver errors: unique violations are conflicts, connection trouble is "unavailable".
pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(d.to_string()),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        // PostgreSQL ending the connection (class 08, or 57P01–57P05: shutdown, restart,
        // terminated by an administrator): the database is going away, not the request wrong.
        sqlx::Error::Database(d)
            if d.code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
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
}
