//! What the operator console needs: account search, locking, and the audit-log viewer.

use crate::SqlStore;
use crate::accounts::account_from_row;
use crate::audit::audit_from_row;
use crate::codec::{db_error, get, ms};
use crate::effects::apply_effects;
use async_trait::async_trait;
use time::Date;
use time::OffsetDateTime;
use twofold_core::model::{Account, AccountId, AuditFilter, AuditRecord, Effects};
use twofold_core::ports::{ConsoleStore, StoreError, StoreResult};
use twofold_core::stats::{Snapshot, StatRow};

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

    async fn stats_snapshot(&self) -> StoreResult<Snapshot> {
        let active = count(
            &self.pool,
            "SELECT COUNT(*) FROM accounts a WHERE a.email_verified_at IS NOT NULL AND a.locked_at IS NULL",
        )
        .await?;
        let with_two_factor = count(
            &self.pool,
            "SELECT COUNT(*) FROM accounts a WHERE a.email_verified_at IS NOT NULL AND a.locked_at IS NULL
               AND EXISTS (SELECT 1 FROM factors f WHERE f.owner = 'account:' || a.id AND f.status = 'active')",
        )
        .await?;
        let without_two_factor_not_required = count(
            &self.pool,
            "SELECT COUNT(*) FROM accounts a WHERE a.email_verified_at IS NOT NULL AND a.locked_at IS NULL
               AND a.two_factor_required = 0
               AND NOT EXISTS (SELECT 1 FROM factors f WHERE f.owner = 'account:' || a.id AND f.status = 'active')",
        )
        .await?;
        let rows = sqlx::query(
            "SELECT f.kind AS kind, COUNT(DISTINCT a.id) AS n FROM accounts a
               JOIN factors f ON f.owner = 'account:' || a.id AND f.status = 'active'
             WHERE a.email_verified_at IS NOT NULL AND a.locked_at IS NULL
             GROUP BY f.kind ORDER BY f.kind",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let by_method = rows
            .iter()
            .map(|r| Ok((get::<String>(r, "kind")?, get::<i64>(r, "n")?)))
            .collect::<StoreResult<_>>()?;
        Ok(Snapshot {
            active,
            with_two_factor,
            by_method,
            without_two_factor_not_required,
        })
    }

    async fn tallied_events(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<Vec<(String, serde_json::Value)>> {
        let rows = sqlx::query(
            "SELECT event, detail FROM audit_log WHERE at >= $1 AND at < $2 AND event IN (
               'factor_enrollment_started', 'factor_added', 'login_succeeded', 'backup_code_used',
               'second_factor_failed', 'second_step_abandoned', 'second_step_voided', 'code_sent')",
        )
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                let detail: String = get(r, "detail")?;
                Ok((
                    get(r, "event")?,
                    serde_json::from_str(&detail)
                        .map_err(|e| StoreError::Other(format!("audit detail: {e}")))?,
                ))
            })
            .collect()
    }

    async fn replace_stats(&self, day: Date, names: &[&str], rows: &[StatRow]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        for name in names {
            sqlx::query("DELETE FROM stats_daily WHERE day = $1 AND name = $2")
                .bind(day_text(day))
                .bind(*name)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        for r in rows {
            sqlx::query(
                "INSERT INTO stats_daily (day, name, label, value) VALUES ($1, $2, $3, $4)",
            )
            .bind(day_text(r.day))
            .bind(&r.name)
            .bind(&r.label)
            .bind(r.value)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn stats_since(&self, day: Date) -> StoreResult<Vec<StatRow>> {
        let rows = sqlx::query(
            "SELECT day, name, label, value FROM stats_daily WHERE day >= $1 ORDER BY day, name, label",
        )
        .bind(day_text(day))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                Ok(StatRow {
                    day: parse_day(&get::<String>(r, "day")?)?,
                    name: get(r, "name")?,
                    label: get(r, "label")?,
                    value: get(r, "value")?,
                })
            })
            .collect()
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

fn day_text(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn parse_day(s: &str) -> StoreResult<Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &fmt).map_err(|e| StoreError::Other(format!("stats day {s}: {e}")))
}

async fn count(pool: &sqlx::AnyPool, sql: &'static str) -> StoreResult<i64> {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .map_err(db_error)
}

#[cfg(test)]
mod tests {
    #[test]
    fn search_patterns_are_literal() {
        assert_eq!(super::like_pattern("A_b%"), "%a\\_b\\%%");
    }
}
