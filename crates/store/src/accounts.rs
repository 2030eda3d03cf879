use crate::SqlStore;
use crate::audit::insert_audit;
use crate::codec::{db_error, from_ms, get, ms, opt_from_ms, uuid};
use crate::devices::seen_from_row;
use crate::effects::bump_stamp;
use crate::outbox::insert_outbox;
use crate::tokens::insert_token;
use async_trait::async_trait;
use sqlx::any::AnyRow;
use twofold_core::model::*;
use twofold_core::ports::{AccountStore, LoginLookup, LoginRecords, StoreResult};

/// The account columns, as a macro so queries stay `&'static str` (sqlx refuses dynamic SQL).
macro_rules! account_columns {
    () => {
        "id, email, password_hash, email_verified_at, security_stamp, created_at, two_factor_required, ip_verification, operator, locked_at"
    };
}

pub(crate) fn account_from_row(row: &AnyRow) -> StoreResult<Account> {
    Ok(Account {
        id: uuid(&get::<String>(row, "id")?)?,
        email: get(row, "email")?,
        password_hash: get(row, "password_hash")?,
        email_verified_at: opt_from_ms(get(row, "email_verified_at")?)?,
        security_stamp: get(row, "security_stamp")?,
        created_at: from_ms(get(row, "created_at")?)?,
        two_factor_required: get::<i64>(row, "two_factor_required")? != 0,
        ip_verification: get::<i64>(row, "ip_verification")? != 0,
        operator: get::<i64>(row, "operator")? != 0,
        locked_at: opt_from_ms(get(row, "locked_at")?)?,
    })
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn set_operator(&self, id: AccountId, on: bool, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query("UPDATE accounts SET operator = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(i64::from(on))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn create_account(
        &self,
        account: &NewAccount,
        token: Option<&NewToken>,
        mail: Option<&NewOutboxItem>,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query(
            "INSERT INTO accounts (id, email, password_hash, email_verified_at, security_stamp,
                                   created_at, two_factor_required)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(account.id.to_string())
        .bind(&account.email)
        .bind(&account.password_hash)
        .bind(account.email_verified_at.map(ms))
        .bind(&account.security_stamp)
        .bind(ms(account.created_at))
        .bind(i64::from(account.two_factor_required))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if let Some(token) = token {
            insert_token(&mut tx, token).await?;
        }
        if let Some(mail) = mail {
            insert_outbox(&mut tx, mail).await?;
        }
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn account_by_email(&self, email: &str) -> StoreResult<Option<Account>> {
        sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(account_from_row)
        .transpose()
    }

    async fn login_lookup(&self, q: &LoginLookup<'_>) -> StoreResult<LoginRecords> {
        // One row whether or not the address has an account (the left joins), so an unknown
        // address costs the same round trip as a known one.
        let row = sqlx::query(concat!(
            "SELECT a.*,
               (SELECT d.last_seen_at FROM known_devices d
                 WHERE d.account_id = a.id AND d.device_hash = $2) AS device_seen_at,
               (SELECT n.last_seen_at FROM known_networks n
                 WHERE n.account_id = a.id AND n.network = $3) AS network_seen_at
             FROM (SELECT 1 AS one) x
             LEFT JOIN (SELECT ",
            account_columns!(),
            " FROM accounts WHERE email = $1) a ON 1 = 1"
        ))
        .bind(q.email)
        .bind(q.device_hash.to_vec())
        .bind(q.network.unwrap_or_default())
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        let account = match get::<Option<String>>(&row, "id")? {
            Some(_) => Some(account_from_row(&row)?),
            None => None,
        };
        Ok(LoginRecords {
            account,
            seen: seen_from_row(&row, q.network.is_some())?,
        })
    }

    async fn account_by_id(&self, id: AccountId) -> StoreResult<Option<Account>> {
        sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(account_from_row)
        .transpose()
    }

    async fn list_accounts(&self, limit: u32, offset: u32) -> StoreResult<Vec<Account>> {
        sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts ORDER BY created_at, id LIMIT $1 OFFSET $2"
        ))
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(account_from_row)
        .collect()
    }

    async fn upgrade_password_hash(&self, id: AccountId, old: &str, new: &str) -> StoreResult<()> {
        sqlx::query("UPDATE accounts SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
            .bind(id.to_string())
            .bind(old)
            .bind(new)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn change_password(
        &self,
        id: AccountId,
        new_hash: &str,
        new_stamp: &str,
        keep: Option<SessionId>,
        mail: &NewOutboxItem,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query("UPDATE accounts SET password_hash = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(new_hash)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let change = StampChange {
            account: id,
            stamp: new_stamp.to_owned(),
            keep_session: keep,
        };
        bump_stamp(&mut tx, &change).await?;
        // Outstanding reset links were issued for the old password; void them.
        sqlx::query(
            "UPDATE account_tokens SET used_at = created_at
             WHERE account_id = $1 AND purpose = 'password_reset' AND used_at IS NULL",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_outbox(&mut tx, mail).await?;
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)
    }
}
