//! Attempt budgets. An attempt is paid for before its guess is evaluated: one conditional
//! upsert counts it, and the same statement refuses it (writing nothing) once the budget is
//! spent, so requests that arrive together are counted one after another by the database,
//! never all let through by one earlier read.
//!
//! Reservations run in groups (see [`crate::batch`]) like the code checks they precede: one
//! statement reserves for every key of a group. A key may appear only once in a statement, so
//! a group in which one key repeats (a burst against one account) runs one round per
//! repetition, in arrival order, until the key is refused. Clearing a key after a success
//! runs in the same groups.
//!
//! The backoff rule ([`delay_ms`]) is written here once, in SQL that both backends run.

use crate::Backend;
use crate::SqlStore;
use crate::audit::audit_insert;
use crate::batch::Conn;
use crate::code_checks::audit_json;
use crate::codec::{db_error, get, ms};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::HashMap;
use time::OffsetDateTime;
use twofold_core::model::AuditEvent;
use twofold_core::ports::{AttemptStore, StoreError, StoreResult};
use twofold_core::throttle::{AttemptKey, Budget, Reservation};

/// One attempt to pay for.
#[derive(Debug, Clone)]
pub(crate) struct ReserveInput {
    pub key: String,
    pub budget: Budget,
    pub now: OffsetDateTime,
}

/// What the attempts group does for one input: pay for an attempt, forget a key's attempts
/// after a success, or write an audit row (most of which record attempts: a wrong code's
/// row follows its reservation). Successes and failures are as frequent as checks, so their
/// writes run grouped too: one statement per group instead of a write transaction each.
#[derive(Debug, Clone)]
pub(crate) enum AttemptOp {
    Reserve(ReserveInput),
    Clear(String),
    Audit(Box<AuditEvent>),
}

/// The answer to an [`AttemptOp`]: a reservation, or `Written` (a clear or an audit row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptDone {
    Reserved(Reservation),
    Written,
}

/// Milliseconds to wait after `count` attempts, in SQL over the budget parameters `$2` (free
/// attempts), `$3` (base delay), `$4` (max delay): none up to the free ones, then the base
/// delay doubling with each further attempt, capped. `CASE` and `<<` mean the same on both
/// backends.
fn delay_ms(count: &str) -> String {
    let past_free = format!("({count} - $2 - 1)");
    let doubled = format!("($3 << CAST({past_free} AS INTEGER))");
    format!(
        "(CASE WHEN {count} <= $2 THEN 0
               WHEN {past_free} >= 30 THEN $4
               WHEN {doubled} > $4 THEN $4
               ELSE {doubled} END)"
    )
}

/// The reservation over rows `(key, 1, now)`: a new key starts at one; a key whose last
/// attempt is older than the window (`$5`, milliseconds) starts again at one; any other key
/// counts one more, but only while its wait after the attempts on record has passed. Returns
/// the keys it counted.
fn reserve_sql(backend: Backend) -> String {
    let rows = match backend {
        // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT.
        Backend::Sqlite => {
            "SELECT json_extract(value, '$.key'), 1, json_extract(value, '$.now')
             FROM json_each($1) WHERE true"
        }
        Backend::Postgres => {
            "SELECT key, 1, now FROM jsonb_to_recordset($1::jsonb) AS x(key text, now bigint)"
        }
    };
    format!(
        "INSERT INTO attempt_budgets (key, failures, last_failure_at) {rows}
         ON CONFLICT (key) DO UPDATE SET
            failures = CASE WHEN attempt_budgets.last_failure_at < excluded.last_failure_at - $5
                            THEN 1 ELSE attempt_budgets.failures + 1 END,
            last_failure_at = CASE WHEN attempt_budgets.last_failure_at > excluded.last_failure_at
                                   THEN attempt_budgets.last_failure_at
                                   ELSE excluded.last_failure_at END
         WHERE attempt_budgets.last_failure_at < excluded.last_failure_at - $5
            OR attempt_budgets.last_failure_at + {} <= excluded.last_failure_at
         RETURNING key, failures",
        delay_ms("attempt_budgets.failures")
    )
}

/// When a spent key opens again, in Unix milliseconds.
fn open_at_sql() -> String {
    format!(
        "SELECT last_failure_at + {} AS open_at FROM attempt_budgets WHERE key = $1",
        delay_ms("failures")
    )
}

fn millis(d: time::Duration) -> i64 {
    i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX)
}

/// Runs a group: the clears in one statement first, then the audit rows in one statement,
/// then the reservations, one statement per round of distinct keys sharing a budget. A
/// clear and a reservation of the same key in one group are taken as if the clear came
/// first (it only ever follows a success).
pub(crate) async fn attempt_group(
    conn: &mut Conn,
    backend: Backend,
    batch: Vec<AttemptOp>,
) -> StoreResult<Vec<AttemptDone>> {
    let clears: Vec<&str> = batch
        .iter()
        .filter_map(|op| match op {
            AttemptOp::Clear(key) => Some(key.as_str()),
            _ => None,
        })
        .collect();
    if !clears.is_empty() {
        clear_keys(conn, backend, &clears).await?;
    }
    let audits: Vec<Value> = batch
        .iter()
        .filter_map(|op| match op {
            AttemptOp::Audit(audit) => Some(audit_json(audit)),
            _ => None,
        })
        .collect();
    if !audits.is_empty() {
        insert_audits(conn, backend, audits).await?;
    }
    let reserves: Vec<(usize, &ReserveInput)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            AttemptOp::Reserve(input) => Some((i, input)),
            _ => None,
        })
        .collect();
    let reserved = reserve_group(conn, backend, &reserves).await?;
    let mut answers = vec![AttemptDone::Written; batch.len()];
    for ((i, _), reservation) in reserves.iter().zip(reserved) {
        answers[*i] = AttemptDone::Reserved(reservation);
    }
    Ok(answers)
}

async fn clear_keys(conn: &mut Conn, backend: Backend, keys: &[&str]) -> StoreResult<()> {
    let keys_sql = match backend {
        Backend::Sqlite => "SELECT value FROM json_each($1)",
        Backend::Postgres => "SELECT jsonb_array_elements_text($1::jsonb)",
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM attempt_budgets WHERE key IN ({keys_sql})"
    )))
    .bind(json!(keys).to_string())
    .execute(&mut **conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

async fn insert_audits(conn: &mut Conn, backend: Backend, audits: Vec<Value>) -> StoreResult<()> {
    let rows = match backend {
        Backend::Sqlite => {
            "SELECT json_extract(value, '$.id'), json_extract(value, '$.at'),
                    json_extract(value, '$.account_id'), json_extract(value, '$.event'),
                    json_extract(value, '$.ip'), json_extract(value, '$.user_agent'),
                    json_extract(value, '$.detail')
             FROM json_each($1)"
        }
        Backend::Postgres => {
            "SELECT a->>'id', (a->>'at')::bigint, a->>'account_id', a->>'event', a->>'ip',
                    a->>'user_agent', a->>'detail'
             FROM jsonb_array_elements($1::jsonb) AS a"
        }
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {} {rows}",
        audit_insert!()
    )))
    .bind(Value::Array(audits).to_string())
    .execute(&mut **conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The reservations of a group, in order. A key refused in one round is refused for the rest
/// of the group as well, with the same wait: a burst against one account or address costs
/// the rounds its budget allows, not one statement per request.
async fn reserve_group(
    conn: &mut Conn,
    backend: Backend,
    batch: &[(usize, &ReserveInput)],
) -> StoreResult<Vec<Reservation>> {
    let mut answers: Vec<Option<Reservation>> = vec![None; batch.len()];
    let mut refused: HashMap<&str, u64> = HashMap::new();
    let mut pending: Vec<usize> = (0..batch.len()).collect();
    while !pending.is_empty() {
        // This round: the first waiting input of each key, with the first input's budget.
        let budget = batch[pending[0]].1.budget;
        let mut taken: HashMap<&str, usize> = HashMap::new();
        let mut later = Vec::new();
        for &i in &pending {
            let input = batch[i].1;
            if let Some(&retry_after_secs) = refused.get(input.key.as_str()) {
                answers[i] = Some(Reservation::Refused { retry_after_secs });
            } else if input.budget == budget && !taken.contains_key(input.key.as_str()) {
                taken.insert(input.key.as_str(), i);
            } else {
                later.push(i);
            }
        }
        if !taken.is_empty() {
            let counted = reserve_round(conn, backend, &budget, batch, &taken).await?;
            for (key, &i) in &taken {
                answers[i] = Some(match counted.get(*key) {
                    Some(&count) => Reservation::Granted { count },
                    None => {
                        let wait = retry_after(conn, key, &budget, batch[i].1.now).await?;
                        refused.insert(key, wait);
                        Reservation::Refused {
                            retry_after_secs: wait,
                        }
                    }
                });
            }
        }
        pending = later;
    }
    Ok(answers
        .into_iter()
        .map(|a| {
            a.unwrap_or(Reservation::Refused {
                retry_after_secs: 1,
            })
        })
        .collect())
}

/// One reservation statement; the keys it counted, with their counts.
async fn reserve_round(
    conn: &mut Conn,
    backend: Backend,
    budget: &Budget,
    batch: &[(usize, &ReserveInput)],
    round: &HashMap<&str, usize>,
) -> StoreResult<HashMap<String, u32>> {
    let input: Vec<Value> = round
        .values()
        .map(|&i| json!({ "key": batch[i].1.key, "now": ms(batch[i].1.now) }))
        .collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(reserve_sql(backend)))
        .bind(Value::Array(input).to_string())
        .bind(i64::from(budget.free_failures))
        .bind(millis(budget.base_delay))
        .bind(millis(budget.max_delay))
        .bind(millis(budget.window))
        .fetch_all(&mut **conn)
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|row| {
            let count = get::<i64>(row, "failures")?;
            Ok((get(row, "key")?, u32::try_from(count).unwrap_or(u32::MAX)))
        })
        .collect()
}

/// Whole seconds until a refused key opens again (at least one).
async fn retry_after(
    conn: &mut Conn,
    key: &str,
    budget: &Budget,
    now: OffsetDateTime,
) -> StoreResult<u64> {
    let open_at: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(open_at_sql()))
        .bind(key)
        .bind(i64::from(budget.free_failures))
        .bind(millis(budget.base_delay))
        .bind(millis(budget.max_delay))
        .fetch_optional(&mut **conn)
        .await
        .map_err(db_error)?;
    let wait_ms = u64::try_from(open_at.map_or(0, |at| at - ms(now))).unwrap_or(0);
    Ok(wait_ms.div_ceil(1000).max(1))
}

#[async_trait]
impl AttemptStore for SqlStore {
    async fn reserve_attempt(
        &self,
        key: &AttemptKey,
        budget: &Budget,
        now: OffsetDateTime,
    ) -> StoreResult<Reservation> {
        match self
            .checks
            .attempt(AttemptOp::Reserve(ReserveInput {
                key: key.to_string(),
                budget: *budget,
                now,
            }))
            .await?
        {
            AttemptDone::Reserved(reservation) => Ok(reservation),
            AttemptDone::Written => Err(StoreError::Other(
                "a reservation was answered as a write".into(),
            )),
        }
    }

    async fn give_back_attempt(&self, key: &AttemptKey) -> StoreResult<()> {
        sqlx::query(
            "UPDATE attempt_budgets SET failures = failures - 1 WHERE key = $1 AND failures > 0",
        )
        .bind(key.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// Queued, not awaited: the success it follows is answered without waiting for it.
    /// Later attempts of this node queue behind it; should it fail, the key keeps one attempt
    /// too many until its window ends, the strict side.
    async fn clear_attempts(&self, key: &AttemptKey) -> StoreResult<()> {
        self.checks.attempt_later(AttemptOp::Clear(key.to_string()))
    }
}
