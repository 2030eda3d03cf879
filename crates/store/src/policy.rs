//! Settings operators change while servers run, and the policy's reminders.

use crate::SqlStore;
use crate::accounts::account_from_row;
use crate::audit::insert_audit;
use crate::codec::{db_error, ms};
use crate::outbox::insert_outbox;
use async_trait::async_trait;
use time::OffsetDateTime;
use twofold_core::model::*;
use twofold_core::ports::{PolicyStore, StoreResult};

#[async_trait]
impl PolicyStore for SqlStore {
    async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn put_setting(
        &self,
        key: &str,
        value: &str,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn reminder_candidates(
        &self,
        deadline: OffsetDateTime,
        days_before: i64,
        limit: u32,
    ) -> StoreResult<Vec<Account>> {
        let rows = sqlx::query(
            "SELECT a.id, a.email, a.password_hash, a.email_verified_at, a.security_stamp,
                    a.created_at, a.two_factor_required, a.ip_verification, a.operator, a.locked_at
             FROM accounts a
             WHERE a.email_verified_at IS NOT NULL
               AND a.two_factor_required = 0
               AND NOT EXISTS (SELECT 1 FROM factors f
                               WHERE f.owner = 'account:' || a.id AND f.status = 'active')
               AND NOT EXISTS (SELECT 1 FROM policy_reminders r
                               WHERE r.account_id = a.id AND r.deadline = $1
                                 AND r.days_before = $2)
             LIMIT $3",
        )
        .bind(ms(deadline))
        .bind(days_before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(account_from_row).collect()
    }

    async fn record_reminder(
        &self,
        account: AccountId,
        deadline: OffsetDateTime,
        days_before: i64,
        now: OffsetDateTime,
        mail: &NewOutboxItem,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let inserted = sqlx::query(
            "INSERT INTO policy_reminders (account_id, deadline, days_before, sent_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(account.to_string())
        .bind(ms(deadline))
        .bind(days_before)
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        insert_outbox(&mut tx, mail).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }
}
