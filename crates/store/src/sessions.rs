use crate::Backend;
use crate::SqlStore;
use crate::accounts::account_from_row;
use crate::audit::{AnyQuery, audit_insert, bind_audit, insert_audit};
use crate::code_checks::{StepClaim, claim_json, pg_consumed, sqlite_claim_update};
use crate::codec::{db_error, from_ms, get, ms, opt_from_ms, uuid};
use crate::devices::{bind_device, bind_no_device, pg_device_tail, write_device};
use crate::effects::apply_effects;
use async_trait::async_trait;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use std::sync::LazyLock;
use time::OffsetDateTime;
use twofold_core::model::*;
use twofold_core::ports::{DeviceRecord, SessionStore, SessionSwap, StoreError, StoreResult};

fn session_from_row(row: &AnyRow) -> StoreResult<Session> {
    let amr: String = get(row, "amr")?;
    Ok(Session {
        id: uuid(&get::<String>(row, "s_id")?)?,
        account_id: uuid(&get::<String>(row, "account_id")?)?,
        kind: SessionKind::parse(&get::<String>(row, "kind")?),
        factor_failures: u32::try_from(get::<i64>(row, "factor_failures")?).unwrap_or(u32::MAX),
        step_up_at: opt_from_ms(get(row, "step_up_at")?)?,
        amr: serde_json::from_str(&amr).map_err(|e| StoreError::Other(format!("amr: {e}")))?,
        auth_time: from_ms(get(row, "auth_time")?)?,
        created_at: from_ms(get(row, "s_created_at")?)?,
        last_seen_at: from_ms(get(row, "last_seen_at")?)?,
        expires_at: from_ms(get(row, "expires_at")?)?,
        ip: get(row, "ip")?,
        user_agent: get(row, "user_agent")?,
        security_stamp: get(row, "s_security_stamp")?,
    })
}

macro_rules! session_columns {
    () => {
        "s.id AS s_id, s.account_id, s.amr, s.auth_time, s.created_at AS s_created_at, \
         s.last_seen_at, s.expires_at, s.ip, s.user_agent, s.security_stamp AS s_security_stamp, \
         s.kind, s.factor_failures, s.step_up_at"
    };
}

/// The sessions table and the columns a new session fills.
macro_rules! session_insert {
    () => {
        "sessions (id, account_id, token_hash, amr, auth_time, created_at, last_seen_at, \
         expires_at, ip, user_agent, security_stamp, kind, step_up_at)"
    };
}

/// Binds a new session's thirteen values, in [`session_insert!`]'s column order.
fn bind_session<'q>(q: AnyQuery<'q>, new: &NewSession) -> StoreResult<AnyQuery<'q>> {
    let s = &new.session;
    let amr = serde_json::to_string(&s.amr).map_err(|e| StoreError::Other(e.to_string()))?;
    Ok(q.bind(s.id.to_string())
        .bind(s.account_id.to_string())
        .bind(new.token_hash.clone())
        .bind(amr)
        .bind(ms(s.auth_time))
        .bind(ms(s.created_at))
        .bind(ms(s.last_seen_at))
        .bind(ms(s.expires_at))
        .bind(s.ip.clone())
        .bind(s.user_agent.clone())
        .bind(s.security_stamp.clone())
        .bind(s.kind.as_str())
        .bind(s.step_up_at.map(ms)))
}

async fn insert_session(tx: &mut Transaction<'_, Any>, new: &NewSession) -> StoreResult<()> {
    bind_session(
        sqlx::query(concat!(
            "INSERT INTO ",
            session_insert!(),
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )),
        new,
    )?
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

// Every sign-in writes a session and its audit row together, and a second step also removes
// the partial session it completes. On PostgreSQL each of those is one statement (the writes
// as data-modifying CTEs, atomic as any statement is) instead of BEGIN, two or three
// statements and COMMIT: a round trip and a backend wake-up each, on the CPU the password
// hashing needs. SQLite has no data-modifying CTEs: a new session is one INSERT into a view
// whose trigger writes the rows (`SQLITE_CREATE_SESSION`), and so is a TOTP second step
// (`sqlite_step_sign_in_schema`); the swap of other second steps keeps its transaction.

/// A new session with its audit row (session $1-$13, audit $14-$20).
const PG_CREATE_SESSION: &str = concat!(
    "WITH s AS (INSERT INTO ",
    session_insert!(),
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)) \
     INSERT INTO ",
    audit_insert!(),
    " VALUES ($14, $15, $16, $17, $18, $19, $20)"
);

/// As [`PG_CREATE_SESSION`], with a sign-in's device record ($21-$34, see [`pg_device_tail!`]).
const PG_CREATE_SESSION_WITH_DEVICE: &str = concat!(
    "WITH s AS (INSERT INTO ",
    session_insert!(),
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)), \
     a AS (INSERT INTO ",
    audit_insert!(),
    " VALUES ($14, $15, $16, $17, $18, $19, $20)), ",
    pg_device_tail!()
);

/// SQLite's [`PG_CREATE_SESSION_WITH_DEVICE`]: the same 34 values into the view
/// `session_writes`, whose trigger writes the rows within the one statement (migration
/// `20261203000003_session_writes`); without a device record its 14 values are NULL.
const SQLITE_CREATE_SESSION: &str = "INSERT INTO session_writes VALUES ($1, $2, $3, $4, $5, $6, \
     $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, \
     $26, $27, $28, $29, $30, $31, $32, $33, $34)";

/// The writes of a completed second step after `gone` (the partial session $1, deleted): the
/// full session ($2-$14) and its audit row ($15-$21), neither when `gone` is empty.
macro_rules! pg_swap_writes {
    () => {
        concat!(
            "s AS (INSERT INTO ",
            session_insert!(),
            " SELECT $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 \
               WHERE EXISTS (SELECT 1 FROM gone)), \
             a AS (INSERT INTO ",
            audit_insert!(),
            " SELECT $15, $16, $17, $18, $19, $20, $21 WHERE EXISTS (SELECT 1 FROM gone)) "
        )
    };
}

/// Replaces partial session $1 with a full one and its audit row, and writes neither when the
/// partial one is gone already; answers how many it removed.
const PG_COMPLETE_PARTIAL: &str = concat!(
    "WITH gone AS (DELETE FROM sessions WHERE id = $1 AND kind <> 'full' RETURNING id), ",
    pg_swap_writes!(),
    "SELECT COUNT(*) AS gone FROM gone"
);

/// [`PG_COMPLETE_PARTIAL`] that first consumes a TOTP step (the claim in $22), and swaps only
/// if it did. The step stays consumed when the partial session is gone.
static PG_SIGN_IN_WITH_STEP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {}, \
         gone AS (DELETE FROM sessions WHERE id = $1 AND kind <> 'full' \
                  AND EXISTS (SELECT 1 FROM consumed) RETURNING id), {}\
         SELECT (SELECT COUNT(*) FROM consumed) AS consumed, (SELECT COUNT(*) FROM gone) AS gone",
        pg_consumed(22),
        pg_swap_writes!(),
    )
});

/// A login's second step with a TOTP code: the step `claim` and the session swap in one
/// commit (see [`twofold_core::ports::FactorStore::sign_in_with_totp_step`]).
pub(crate) async fn sign_in_with_step(
    store: &SqlStore,
    claim: &StepClaim,
    swap: &SessionSwap,
) -> StoreResult<Option<bool>> {
    let input = Value::Array(vec![claim_json(claim)]).to_string();
    if store.backend == Backend::Postgres {
        let q = sqlx::query(sqlx::AssertSqlSafe(PG_SIGN_IN_WITH_STEP.as_str()))
            .bind(swap.partial.to_string());
        let row = bind_audit(bind_session(q, &swap.full)?, &swap.audit)
            .bind(input)
            .fetch_one(&store.pool)
            .await
            .map_err(db_error)?;
        let (consumed, gone): (i64, i64) = (get(&row, "consumed")?, get(&row, "gone")?);
        return Ok((consumed == 1).then_some(gone == 1));
    }
    let q = sqlx::query(SQLITE_SIGN_IN_WITH_STEP)
        .bind(input)
        .bind(swap.partial.to_string());
    let row = bind_audit(bind_session(q, &swap.full)?, &swap.audit)
        .fetch_optional(&store.pool)
        .await
        .map_err(db_error)?;
    // No row: the trigger found the step used and wrote nothing.
    row.map(|row| get::<i64>(&row, "swapped").map(|n| n == 1))
        .transpose()
}

/// The session columns (`s1`-`s13`, [`session_insert!`]'s order) and audit columns
/// (`a1`-`a7`, [`audit_insert!`]'s) of the view `step_sign_ins`.
fn step_sign_in_columns() -> impl Iterator<Item = String> {
    (1..=13)
        .map(|i| format!("s{i}"))
        .chain((1..=7).map(|i| format!("a{i}")))
}

/// SQLite's [`PG_SIGN_IN_WITH_STEP`]: an INSERT into the view `step_sign_ins` (the claims, the
/// partial session, the full session, its audit row), whose trigger consumes the step and
/// swaps the sessions inside that one statement, all or nothing. It answers no row when the
/// step was not consumed, else whether the full session was written (the partial one was
/// there to give way); the RETURNING clause is evaluated after the trigger has run.
const SQLITE_SIGN_IN_WITH_STEP: &str = "INSERT INTO step_sign_ins VALUES ($1, $2, $3, $4, $5, \
     $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) \
     RETURNING (SELECT COUNT(*) FROM sessions WHERE id = $3) AS swapped";

/// The view and trigger [`SQLITE_SIGN_IN_WITH_STEP`] writes through, created on each SQLite
/// connection as TEMP objects: built here from the claim's own statement
/// ([`sqlite_claim_update`]), so the budget and replay rules exist once, where a migration
/// would have to copy them. The trigger stops (`RAISE(IGNORE)`: nothing written, no row
/// returned) unless the claim changed its factor; the session and audit inserts then run
/// only if the DELETE removed the partial session.
pub(crate) fn sqlite_step_sign_in_schema() -> [String; 2] {
    let nulls: Vec<String> = step_sign_in_columns()
        .map(|c| format!("NULL AS {c}"))
        .collect();
    let view = format!(
        "CREATE TEMP VIEW IF NOT EXISTS step_sign_ins AS \
         SELECT NULL AS claims, NULL AS partial, {} WHERE 0",
        nulls.join(", ")
    );
    let new: Vec<String> = step_sign_in_columns().map(|c| format!("NEW.{c}")).collect();
    let (session, audit) = new.split_at(13);
    let trigger = format!(
        "CREATE TEMP TRIGGER IF NOT EXISTS step_sign_ins_insert \
         INSTEAD OF INSERT ON step_sign_ins BEGIN
             {claim};
             SELECT RAISE(IGNORE) WHERE changes() = 0;
             DELETE FROM sessions WHERE id = NEW.partial AND kind <> 'full';
             INSERT INTO {session_table} SELECT {session} WHERE changes() = 1;
             INSERT INTO {audit_table} SELECT {audit} WHERE changes() = 1;
         END",
        claim = sqlite_claim_update("NEW.claims"),
        session_table = session_insert!(),
        audit_table = audit_insert!(),
        session = session.join(", "),
        audit = audit.join(", "),
    );
    [view, trigger]
}

/// Removes a session that is not signed in yet (second step, forced enrollment); `false` if it
/// was already gone (used, voided or expired away).
async fn delete_partial(tx: &mut Transaction<'_, Any>, id: SessionId) -> StoreResult<bool> {
    let gone = sqlx::query("DELETE FROM sessions WHERE id = $1 AND kind <> 'full'")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(gone == 1)
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn create_session(
        &self,
        new: &NewSession,
        audit: &AuditEvent,
        device: Option<&DeviceRecord>,
    ) -> StoreResult<()> {
        // A new browser's mail and report token go in a transaction; they are rare.
        if device.is_none_or(|d| d.notice.is_none()) {
            let sql = match (self.backend, device) {
                (Backend::Postgres, None) => PG_CREATE_SESSION,
                (Backend::Postgres, Some(_)) => PG_CREATE_SESSION_WITH_DEVICE,
                (Backend::Sqlite, _) => SQLITE_CREATE_SESSION,
            };
            let q = bind_audit(bind_session(sqlx::query(sql), new)?, audit);
            let q = match device {
                Some(d) => bind_device(q, d),
                None if self.backend == Backend::Sqlite => bind_no_device(q),
                None => q,
            };
            q.execute(&self.pool).await.map_err(db_error)?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        insert_session(&mut tx, new).await?;
        insert_audit(&mut *tx, audit).await?;
        if let Some(d) = device {
            write_device(&mut tx, d).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn session_by_token_hash(&self, hash: &[u8]) -> StoreResult<Option<(Session, Account)>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            ", a.id, a.email, a.password_hash, a.email_verified_at, a.security_stamp, a.created_at,
              a.two_factor_required, a.ip_verification, a.operator, a.locked_at
             FROM sessions s JOIN accounts a ON a.id = s.account_id
             WHERE s.token_hash = $1"
        ))
        .bind(hash.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|r| Ok((session_from_row(&r)?, account_from_row(&r)?)))
            .transpose()
    }

    async fn touch_session(&self, id: SessionId, now: OffsetDateTime) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2")
            .bind(id.to_string())
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn list_sessions(&self, account: AccountId) -> StoreResult<Vec<Session>> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions s WHERE s.account_id = $1 ORDER BY s.last_seen_at DESC"
        ))
        .bind(account.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(session_from_row)
        .collect()
    }

    async fn delete_session(
        &self,
        account: AccountId,
        id: SessionId,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let deleted = sqlx::query("DELETE FROM sessions WHERE id = $1 AND account_id = $2")
            .bind(id.to_string())
            .bind(account.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        if deleted == 0 {
            return Ok(false);
        }
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn delete_expired_sessions(
        &self,
        idle_cutoff: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        Ok(
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
                .bind(ms(now))
                .bind(ms(idle_cutoff))
                .execute(&self.pool)
                .await
                .map_err(db_error)?
                .rows_affected(),
        )
    }

    async fn reserve_session_attempt(&self, id: SessionId, limit: u32) -> StoreResult<Option<u32>> {
        let n: Option<i64> = sqlx::query_scalar(
            "UPDATE sessions SET factor_failures = factor_failures + 1
             WHERE id = $1 AND factor_failures < $2
             RETURNING factor_failures",
        )
        .bind(id.to_string())
        .bind(i64::from(limit))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(n.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
    }

    async fn give_back_session_attempt(&self, id: SessionId) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sessions SET factor_failures = factor_failures - 1
             WHERE id = $1 AND factor_failures > 0",
        )
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn complete_partial_session(&self, swap: &SessionSwap) -> StoreResult<bool> {
        let (partial, full, audit) = (swap.partial, &swap.full, &swap.audit);
        if self.backend == Backend::Postgres {
            let q = sqlx::query(PG_COMPLETE_PARTIAL).bind(partial.to_string());
            let gone: i64 = bind_audit(bind_session(q, full)?, audit)
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)
                .and_then(|row| get(&row, "gone"))?;
            return Ok(gone == 1);
        }
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        if !delete_partial(&mut tx, partial).await? {
            return Ok(false);
        }
        insert_session(&mut tx, full).await?;
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn mark_step_up(
        &self,
        id: SessionId,
        at: OffsetDateTime,
        amr: &[String],
    ) -> StoreResult<()> {
        let amr = serde_json::to_string(amr).map_err(|e| StoreError::Other(e.to_string()))?;
        sqlx::query("UPDATE sessions SET step_up_at = $2, amr = $3 WHERE id = $1")
            .bind(id.to_string())
            .bind(ms(at))
            .bind(amr)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn take_expired_partial_sessions(
        &self,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<AccountId>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "DELETE FROM sessions WHERE kind = 'partial' AND expires_at <= $1 RETURNING account_id",
        )
        .bind(ms(now))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(|r| uuid(r)).collect()
    }

    async fn void_partial_session(&self, id: SessionId, effects: &Effects) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        if !delete_partial(&mut tx, id).await? {
            return Ok(false);
        }
        apply_effects(&mut tx, effects).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }
}
