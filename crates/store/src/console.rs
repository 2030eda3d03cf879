//! What the operator console needs: account search, locking, and the audit-log viewer.

use crate::SqlStore;
use crate::accounts::account_from_row;
use crate::audit::audit_from_row;
use crate::codec::{db_error, ms};
use crate::effects::apply_effects;
use async_trait::async_trait;
use time::OffsetDateTime;
use twofold_core::model::{Account, AccountId, AuditFilter, AuditRecord, Effects};
use twofold_core::ports::{ConsoleStore, StoreResult};

/// `%`, `_` and `\` in a search are literal characters, not patterns.
fn like_pattern(query: &str) -> String {
    let mut p = String::from("%");
    for c in query.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[async_trait]
impl ConsoleStore for SqlStore {
    async fn search_accounts(&self, query: &str, limit: u32) -> StoreResult<Vec<Account>> {
        let rows = sqlx::query(
            "SELECT id, email, password_hash, email_verified_at, security_stamp, created_at,
                    two_factor_required, ip_verification, operator, locked_at
             FROM accounts WHERE email LIKE $1 ESCAPE '\\' ORDER BY email LIMIT $2",
        )
        .bind(like_pattern(query))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(account_from_row).collect()
    }

    async fn set_locked(
        &self,
        id: AccountId,
        locked_at: Option<OffsetDateTime>,
        effects: &Effects,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let sql = if locked_at.is_some() {
            "UPDATE accounts SET locked_at = $2 WHERE id = $1 AND locked_at IS NULL"
        } else {
            "UPDATE accounts SET locked_at = $2 WHERE id = $1 AND locked_at IS NOT NULL"
        };
        let changed = sqlx::query(sql)
            .bind(id.to_string())
            .bind(locked_at.map(ms))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected()
            == 1;
        if changed {
            apply_effects(&mut tx, effects).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(changed)
    }

    async fn set_ip_verification_notified(
        &self,
        id: AccountId,
        on: bool,
        effects: &Effects,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query("UPDATE accounts SET ip_verification = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(i64::from(on))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        apply_effects(&mut tx, effects).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn record_effects(&self, effects: &Effects) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        apply_effects(&mut tx, effects).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn search_audit(
        &self,
        filter: &AuditFilter,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>> {
        // Only fixed fragments are joined; every value is a bound parameter.
        let mut sql = String::from(
            "SELECT id, at, account_id, event, ip, user_agent, detail FROM audit_log WHERE 1 = 1",
        );
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if filter.account.is_some() {
            sql.push_str(&format!(" AND account_id = ${}", next()));
        }
        if filter.event.is_some() {
            sql.push_str(&format!(" AND event = ${}", next()));
        }
        if filter.from.is_some() {
            sql.push_str(&format!(" AND at >= ${}", next()));
        }
        if filter.to.is_some() {
            sql.push_str(&format!(" AND at < ${}", next()));
        }
        if filter.before.is_some() {
            let (a, b) = (next(), next());
            sql.push_str(&format!(" AND (at < ${a} OR (at = ${a} AND id < ${b}))"));
        }
        sql.push_str(&format!(" ORDER BY at DESC, id DESC LIMIT ${}", next()));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(a) = filter.account {
            q = q.bind(a.to_string());
        }
        if let Some(e) = &filter.event {
            q = q.bind(e.clone());
        }
        if let Some(t) = filter.from {
            q = q.bind(ms(t));
        }
        if let Some(t) = filter.to {
            q = q.bind(ms(t));
        }
        if let Some((at, id)) = filter.before {
            q = q.bind(ms(at)).bind(id.to_string());
        }
        let rows = q
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter().map(audit_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn search_patterns_are_literal() {
        assert_eq!(super::like_pattern("A_b%"), "%a\\_b\\%%");
    }
}
