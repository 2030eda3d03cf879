//! Browsers remembered at the second step.

use crate::SqlStore;
use crate::audit::insert_audit;
use crate::codec::{db_error, from_ms, get, ms, opt_from_ms, uuid};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use twofold_core::model::*;
use twofold_core::ports::{StoreResult, TrustedBrowserStore};
use uuid::Uuid;

macro_rules! columns {
    () => {
        "id, account_id, user_agent, ip, security_stamp, created_at, expires_at, last_used_at"
    };
}

fn from_row(row: &AnyRow) -> StoreResult<TrustedBrowser> {
    Ok(TrustedBrowser {
        id: uuid(&get::<String>(row, "id")?)?,
        account_id: uuid(&get::<String>(row, "account_id")?)?,
        user_agent: get(row, "user_agent")?,
        ip: get(row, "ip")?,
        security_stamp: get(row, "security_stamp")?,
        created_at: from_ms(get(row, "created_at")?)?,
        expires_at: from_ms(get(row, "expires_at")?)?,
        last_used_at: opt_from_ms(get(row, "last_used_at")?)?,
    })
}

#[async_trait]
impl TrustedBrowserStore for SqlStore {
    async fn add_trusted_browser(
        &self,
        b: &TrustedBrowser,
        token_hash: &[u8],
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query(
            "INSERT INTO trusted_browsers (id, account_id, token_hash, user_agent, ip,
                                           security_stamp, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(b.id.to_string())
        .bind(b.account_id.to_string())
        .bind(token_hash.to_vec())
        .bind(b.user_agent.clone())
        .bind(b.ip.clone())
        .bind(&b.security_stamp)
        .bind(ms(b.created_at))
        .bind(ms(b.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn trusted_browser(
        &self,
        account: AccountId,
        token_hash: &[u8],
    ) -> StoreResult<Option<TrustedBrowser>> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM trusted_browsers WHERE token_hash = $1 AND account_id = $2"
        ))
        .bind(token_hash.to_vec())
        .bind(account.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    async fn touch_trusted_browser(&self, id: Uuid, now: OffsetDateTime) -> StoreResult<()> {
        sqlx::query("UPDATE trusted_browsers SET last_used_at = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn trusted_browsers_of(&self, account: AccountId) -> StoreResult<Vec<TrustedBrowser>> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM trusted_browsers WHERE account_id = $1 ORDER BY created_at DESC"
        ))
        .bind(account.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(from_row)
        .collect()
    }

    async fn forget_trusted_browsers(
        &self,
        account: AccountId,
        id: Option<Uuid>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let n = match id {
            Some(id) => {
                sqlx::query("DELETE FROM trusted_browsers WHERE account_id = $1 AND id = $2")
                    .bind(account.to_string())
                    .bind(id.to_string())
            }
            None => sqlx::query("DELETE FROM trusted_browsers WHERE account_id = $1")
                .bind(account.to_string()),
        }
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if let Some(audit) = audit {
            insert_audit(&mut *tx, audit).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(n)
    }
}
