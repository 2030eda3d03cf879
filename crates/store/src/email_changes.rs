//! Changes of an account's address, confirmed from the new mailbox.

use crate::SqlStore;
use crate::audit::insert_audit;
use crate::codec::{db_error, from_ms, get, ms, uuid};
use crate::effects::bump_stamp;
use crate::outbox::insert_outbox;
use async_trait::async_trait;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use twofold_core::model::*;
use twofold_core::ports::{EmailChangeStore, StoreError, StoreResult};

fn from_row(row: &AnyRow) -> StoreResult<EmailChange> {
    Ok(EmailChange {
        id: uuid(&get::<String>(row, "id")?)?,
        account_id: uuid(&get::<String>(row, "account_id")?)?,
        new_email: get(row, "new_email")?,
        created_at: from_ms(get(row, "created_at")?)?,
        expires_at: from_ms(get(row, "expires_at")?)?,
    })
}

#[async_trait]
impl EmailChangeStore for SqlStore {
    async fn start_email_change(
        &self,
        c: &EmailChange,
        token_hash: &[u8],
        mails: &[NewOutboxItem],
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // Only the latest request counts: an older link must not change the address later.
        sqlx::query("DELETE FROM email_changes WHERE account_id = $1 AND used_at IS NULL")
            .bind(c.account_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO email_changes (id, account_id, new_email, token_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.id.to_string())
        .bind(c.account_id.to_string())
        .bind(&c.new_email)
        .bind(token_hash.to_vec())
        .bind(ms(c.created_at))
        .bind(ms(c.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        for mail in mails {
            insert_outbox(&mut tx, mail).await?;
        }
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn email_change(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<Option<EmailChange>> {
        sqlx::query(
            "SELECT id, account_id, new_email, created_at, expires_at FROM email_changes
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash.to_vec())
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    async fn complete_email_change(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
        stamp: &StampChange,
        mail: &NewOutboxItem,
        audit: &AuditEvent,
    ) -> StoreResult<EmailChangeOutcome> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let row = sqlx::query(
            "UPDATE email_changes SET used_at = $2
             WHERE token_hash = $1 AND account_id = $3 AND used_at IS NULL AND expires_at > $2
             RETURNING new_email",
        )
        .bind(token_hash.to_vec())
        .bind(ms(now))
        .bind(stamp.account.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(EmailChangeOutcome::Invalid);
        };
        let new_email: String = get(&row, "new_email")?;
        let changed = sqlx::query("UPDATE accounts SET email = $2 WHERE id = $1")
            .bind(stamp.account.to_string())
            .bind(&new_email)
            .execute(&mut *tx)
            .await;
        match changed {
            Ok(_) => {}
            // Dropping the transaction rolls the link's use back: it works once the address is free.
            Err(e) => {
                return match db_error(e) {
                    StoreError::Conflict(_) => Ok(EmailChangeOutcome::Taken),
                    other => Err(other),
                };
            }
        }
        // Links mailed to the old address (password reset, "this wasn't me", verification)
        // stop working with it.
        sqlx::query(
            "UPDATE account_tokens SET used_at = $2 WHERE account_id = $1 AND used_at IS NULL",
        )
        .bind(stamp.account.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        bump_stamp(&mut tx, stamp).await?;
        insert_outbox(&mut tx, mail).await?;
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(EmailChangeOutcome::Changed)
    }
}
