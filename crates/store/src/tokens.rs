use crate::SqlStore;
use crate::audit::insert_audit;
use crate::codec::{db_error, from_ms, get, ms, opt_from_ms, uuid};
use crate::outbox::insert_outbox;
use async_trait::async_trait;
use sqlx::{Any, Transaction};
use time::OffsetDateTime;
use twofold_core::model::*;
use twofold_core::ports::{StoreResult, TokenStore};

pub(crate) async fn insert_token(tx: &mut Transaction<'_, Any>, t: &NewToken) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO account_tokens (id, account_id, purpose, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(t.id.to_string())
    .bind(t.account_id.to_string())
    .bind(t.purpose)
    .bind(&t.token_hash)
    .bind(ms(t.created_at))
    .bind(ms(t.expires_at))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl TokenStore for SqlStore {
    async fn issue_token(
        &self,
        token: &NewToken,
        mail: &NewOutboxItem,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        insert_token(&mut tx, token).await?;
        insert_outbox(&mut tx, mail).await?;
        if let Some(audit) = audit {
            insert_audit(&mut *tx, audit).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn find_token(&self, purpose: &str, hash: &[u8]) -> StoreResult<Option<TokenRecord>> {
        let row = sqlx::query(
            "SELECT account_id, expires_at, used_at FROM account_tokens
             WHERE token_hash = $1 AND purpose = $2",
        )
        .bind(hash.to_vec())
        .bind(purpose)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|r| {
            Ok(TokenRecord {
                account_id: uuid(&get::<String>(&r, "account_id")?)?,
                expires_at: from_ms(get(&r, "expires_at")?)?,
                used_at: opt_from_ms(get(&r, "used_at")?)?,
            })
        })
        .transpose()
    }

    async fn latest_token_at(
        &self,
        account: AccountId,
        purpose: &str,
    ) -> StoreResult<Option<OffsetDateTime>> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(created_at) FROM account_tokens WHERE account_id = $1 AND purpose = $2",
        )
        .bind(account.to_string())
        .bind(purpose)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        opt_from_ms(v)
    }

    async fn verify_email(
        &self,
        hash: &[u8],
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Option<AccountId>> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // The conditional UPDATE is the single point of consumption: of N concurrent
        // requests with the same token exactly one gets a row back.
        let row = sqlx::query(
            "UPDATE account_tokens SET used_at = $2
             WHERE token_hash = $1 AND purpose = 'verify_email' AND used_at IS NULL AND expires_at > $2
             RETURNING account_id",
        )
        .bind(hash.to_vec())
        .bind(ms(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let account_id: String = get(&row, "account_id")?;
        sqlx::query(
            "UPDATE accounts SET email_verified_at = COALESCE(email_verified_at, $2) WHERE id = $1",
        )
        .bind(&account_id)
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut audit = audit.clone();
        let account = uuid(&account_id)?;
        audit.account_id = Some(account);
        insert_audit(&mut *tx, &audit).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(account))
    }

    async fn complete_password_reset(
        &self,
        hash: &[u8],
        account: AccountId,
        new_hash: &str,
        new_stamp: &str,
        now: OffsetDateTime,
        mail: &NewOutboxItem,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let consumed = sqlx::query(
            "UPDATE account_tokens SET used_at = $3
             WHERE token_hash = $1 AND account_id = $2 AND purpose = 'password_reset'
               AND used_at IS NULL AND expires_at > $3",
        )
        .bind(hash.to_vec())
        .bind(account.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if consumed != 1 {
            return Ok(false);
        }
        // The link proves control of the mailbox, so it verifies the address as well.
        sqlx::query(
            "UPDATE accounts SET password_hash = $2, security_stamp = $3,
                    email_verified_at = COALESCE(email_verified_at, $4)
             WHERE id = $1",
        )
        .bind(account.to_string())
        .bind(new_hash)
        .bind(new_stamp)
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "UPDATE account_tokens SET used_at = $2
             WHERE account_id = $1 AND purpose = 'password_reset' AND used_at IS NULL",
        )
        .bind(account.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query("DELETE FROM sessions WHERE account_id = $1")
            .bind(account.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_outbox(&mut tx, mail).await?;
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }
}
