use crate::SqlStore;
use crate::audit::insert_audit;
use crate::codec::{db_error, from_ms, get, ms, uuid};
use async_trait::async_trait;
use sqlx::{Any, Transaction};
use time::OffsetDateTime;
use twofold_core::model::*;
use twofold_core::ports::{MailSpacing, OutboxStore, StoreResult};
use uuid::Uuid;

pub(crate) async fn insert_outbox(
    tx: &mut Transaction<'_, Any>,
    item: &NewOutboxItem,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO outbox (id, kind, key_id, payload, created_at, attempts, next_attempt_at,
                             give_up_at)
         VALUES ($1, $2, $3, $4, $5, 0, $5, $6)",
    )
    .bind(item.id.to_string())
    .bind(item.kind)
    .bind(&item.key_id)
    .bind(item.payload.clone())
    .bind(ms(item.created_at))
    .bind(item.give_up_at.map(ms))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn enqueue(&self, item: &NewOutboxItem, audit: Option<&AuditEvent>) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        insert_outbox(&mut tx, item).await?;
        if let Some(audit) = audit {
            insert_audit(&mut *tx, audit).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn enqueue_spaced(
        &self,
        spacing: &MailSpacing,
        item: &NewOutboxItem,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // The statement that refuses: on PostgreSQL a parallel request waits for the row and
        // re-checks the condition against the new time; SQLite has one writer anyway.
        let taken = sqlx::query(
            "INSERT INTO mail_intervals (key, sent_at) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET sent_at = excluded.sent_at
             WHERE mail_intervals.sent_at <= $3
             RETURNING key",
        )
        .bind(&spacing.key)
        .bind(ms(spacing.now))
        .bind(ms(spacing.last_at_or_before))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if taken.is_none() {
            return Ok(false);
        }
        insert_outbox(&mut tx, item).await?;
        if let Some(audit) = audit {
            insert_audit(&mut *tx, audit).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn claim_outbox(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>> {
        // The availability test is repeated outside the subquery on purpose: on PostgreSQL a
        // row another node leased meanwhile is re-checked against it after the lock wait and
        // skipped, so two nodes never claim the same message (SQLite has one writer anyway).
        let rows = sqlx::query(
            "UPDATE outbox SET leased_until = $2, attempts = attempts + 1
             WHERE id IN (SELECT id FROM outbox
                          WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1
                            AND (leased_until IS NULL OR leased_until <= $1)
                          ORDER BY next_attempt_at LIMIT $3)
               AND sent_at IS NULL AND failed_at IS NULL
               AND (leased_until IS NULL OR leased_until <= $1)
             RETURNING id, kind, key_id, payload, attempts, created_at, give_up_at",
        )
        .bind(ms(now))
        .bind(ms(lease_until))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                Ok(OutboxItem {
                    id: uuid(&get::<String>(r, "id")?)?,
                    kind: get(r, "kind")?,
                    key_id: get(r, "key_id")?,
                    payload: get::<Option<Vec<u8>>>(r, "payload")?.unwrap_or_default(),
                    attempts: u32::try_from(get::<i64>(r, "attempts")?).unwrap_or(u32::MAX),
                    created_at: from_ms(get(r, "created_at")?)?,
                    give_up_at: get::<Option<i64>>(r, "give_up_at")?
                        .map(from_ms)
                        .transpose()?,
                })
            })
            .collect()
    }

    async fn mark_sent(&self, id: Uuid, now: OffsetDateTime) -> StoreResult<()> {
        sqlx::query(
            "UPDATE outbox SET sent_at = $2, payload = NULL, leased_until = NULL, last_error = NULL
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn mark_failed(
        &self,
        id: Uuid,
        error: &str,
        retry_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let error: String = error.chars().take(1000).collect();
        let query = match retry_at {
            Some(at) => sqlx::query(
                "UPDATE outbox SET next_attempt_at = $3, leased_until = NULL, last_error = $2
                 WHERE id = $1",
            )
            .bind(id.to_string())
            .bind(error)
            .bind(ms(at)),
            None => sqlx::query(
                "UPDATE outbox SET failed_at = $3, payload = NULL, leased_until = NULL, last_error = $2
                 WHERE id = $1",
            )
            .bind(id.to_string())
            .bind(error)
            .bind(ms(now)),
        };
        query.execute(&self.pool).await.map_err(db_error)?;
        Ok(())
    }

    async fn pending_outbox(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
