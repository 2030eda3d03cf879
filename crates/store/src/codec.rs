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
        _ => StoreError::Other(e.to_string()),
    }
}
