use crate::SqlStore;
use crate::codec::{db_error, from_ms, get, ms, uuid};
use async_trait::async_trait;
use sqlx::{Any, Executor};
use twofold_core::model::*;
use twofold_core::ports::{AuditStore, StoreError, StoreResult};

pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// The audit table and its columns, for statements that insert a row among other writes.
macro_rules! audit_insert {
    () => {
        "audit_log (id, at, account_id, event, ip, user_agent, detail)"
    };
}
pub(crate) use audit_insert;

/// Binds an audit row's seven values, in [`audit_insert!`]'s column order.
pub(crate) fn bind_audit<'q>(q: AnyQuery<'q>, e: &AuditEvent) -> AnyQuery<'q> {
    q.bind(e.id.to_string())
        .bind(ms(e.at))
        .bind(e.account_id.map(|a| a.to_string()))
        .bind(e.event)
        .bind(e.ip.clone())
        .bind(e.user_agent.clone())
        .bind(e.detail.to_string())
}

/// As [`bind_audit`], or seven typed NULLs for a statement that writes no audit row then.
pub(crate) fn bind_audit_or_nulls<'q>(q: AnyQuery<'q>, e: Option<&AuditEvent>) -> AnyQuery<'q> {
    match e {
        Some(e) => bind_audit(q, e),
        None => q
            .bind(None::<String>)
            .bind(None::<i64>)
            .bind(None::<String>)
            .bind(None::<String>)
            .bind(None::<String>)
            .bind(None::<String>)
            .bind(None::<String>),
    }
}

pub(crate) async fn insert_audit<'e, E>(executor: E, e: &AuditEvent) -> StoreResult<()>
where
    E: Executor<'e, Database = Any>,
{
    bind_audit(
        sqlx::query(concat!(
            "INSERT INTO ",
            audit_insert!(),
            " VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )),
        e,
    )
    .execute(executor)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub(crate) fn audit_from_row(r: &sqlx::any::AnyRow) -> StoreResult<AuditRecord> {
    let detail: String = get(r, "detail")?;
    Ok(AuditRecord {
        id: uuid(&get::<String>(r, "id")?)?,
        at: from_ms(get(r, "at")?)?,
        account_id: get::<Option<String>>(r, "account_id")?
            .map(|s| uuid(&s))
            .transpose()?,
        event: get(r, "event")?,
        ip: get(r, "ip")?,
        user_agent: get(r, "user_agent")?,
        detail: serde_json::from_str(&detail)
            .map_err(|e| StoreError::Other(format!("audit detail: {e}")))?,
    })
}

#[async_trait]
impl AuditStore for SqlStore {
    /// Grouped with the attempt writes (see `attempts`): one INSERT per group.
    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.checks
            .attempt(crate::attempts::AttemptOp::Audit(Box::new(event.clone())))
            .await
            .map(|_| ())
    }

    async fn audit_for_account(
        &self,
        account: AccountId,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT id, at, account_id, event, ip, user_agent, detail FROM audit_log
             WHERE account_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(account.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(audit_from_row).collect()
    }
}
