use crate::SqlStore;
use crate::code_failures::CodeFailure;
use crate::codec::{db_error, from_ms, get, ms};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use twofold_core::model::{AttemptRecord, AuditEvent};
use twofold_core::ports::{AttemptStore, StoreError, StoreResult};

/// A budget record from two columns of `row`; `None` where they are NULL (no failure on
/// record, or no row on the far side of a LEFT JOIN).
pub(crate) fn attempt_record(
    row: &AnyRow,
    failures: &str,
    last_failure_at: &str,
) -> StoreResult<Option<AttemptRecord>> {
    let (Some(count), Some(at)) = (
        get::<Option<i64>>(row, failures)?,
        get::<Option<i64>>(row, last_failure_at)?,
    ) else {
        return Ok(None);
    };
    Ok(Some(AttemptRecord {
        failures: u32::try_from(count).unwrap_or(u32::MAX),
        last_failure_at: from_ms(at)?,
    }))
}

#[async_trait]
impl AttemptStore for SqlStore {
    async fn attempts(&self, key: &str) -> StoreResult<Option<AttemptRecord>> {
        let row =
            sqlx::query("SELECT failures, last_failure_at FROM attempt_budgets WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        match row {
            Some(r) => attempt_record(&r, "failures", "last_failure_at"),
            None => Ok(None),
        }
    }

    async fn record_failure(
        &self,
        key: &str,
        now: OffsetDateTime,
        window_start: OffsetDateTime,
    ) -> StoreResult<AttemptRecord> {
        // One statement, so concurrent failures on several nodes all count.
        let row = sqlx::query(
            "INSERT INTO attempt_budgets (key, failures, last_failure_at) VALUES ($1, 1, $2)
             ON CONFLICT (key) DO UPDATE SET
                failures = CASE WHEN attempt_budgets.last_failure_at < $3 THEN 1
                                ELSE attempt_budgets.failures + 1 END,
                last_failure_at = $2
             RETURNING failures, last_failure_at",
        )
        .bind(key)
        .bind(ms(now))
        .bind(ms(window_start))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        attempt_record(&row, "failures", "last_failure_at")?
            .ok_or_else(|| StoreError::Other("a counted failure came back empty".into()))
    }

    async fn record_code_failure(
        &self,
        key: &str,
        now: OffsetDateTime,
        window_start: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<AttemptRecord> {
        self.checks
            .failure(CodeFailure {
                key: key.to_owned(),
                now,
                window_start,
                audit: audit.clone(),
            })
            .await
    }

    async fn clear_attempts(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM attempt_budgets WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
