use crate::SqlStore;
use crate::code_failures::CodeFailure;
use crate::codec::{db_error, from_ms, get, ms};
use async_trait::async_trait;
use time::OffsetDateTime;
use twofold_core::model::{AttemptRecord, AuditEvent};
use twofold_core::ports::{AttemptStore, StoreResult};

#[async_trait]
impl AttemptStore for SqlStore {
    async fn attempts(&self, key: &str) -> StoreResult<Option<AttemptRecord>> {
        let row =
            sqlx::query("SELECT failures, last_failure_at FROM attempt_budgets WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        row.map(|r| {
            Ok(AttemptRecord {
                failures: u32::try_from(get::<i64>(&r, "failures")?).unwrap_or(u32::MAX),
                last_failure_at: from_ms(get(&r, "last_failure_at")?)?,
            })
        })
        .transpose()
    }

    async fn attempts_of(&self, keys: &[&str]) -> StoreResult<Vec<Option<AttemptRecord>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // Only placeholders are formatted into the statement; the keys are bound.
        let placeholders: Vec<String> = (1..=keys.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT key, failures, last_failure_at FROM attempt_budgets WHERE key IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for key in keys {
            query = query.bind(*key);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db_error)?;
        let mut found = vec![None; keys.len()];
        for row in &rows {
            let key: String = get(row, "key")?;
            let record = AttemptRecord {
                failures: u32::try_from(get::<i64>(row, "failures")?).unwrap_or(u32::MAX),
                last_failure_at: from_ms(get(row, "last_failure_at")?)?,
            };
            for (slot, k) in found.iter_mut().zip(keys) {
                if *k == key {
                    *slot = Some(record);
                }
            }
        }
        Ok(found)
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
        Ok(AttemptRecord {
            failures: u32::try_from(get::<i64>(&row, "failures")?).unwrap_or(u32::MAX),
            last_failure_at: from_ms(get(&row, "last_failure_at")?)?,
        })
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
