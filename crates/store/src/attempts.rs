//! Attempt budgets. An attempt is paid for before its guess is evaluated: one conditional
//! upsert counts it, and the same statement refuses it (writing nothing) once the budget is
//! spent, so requests that arrive together are counted one after another by the database,
//! never all let through by one earlier read.
//!
//! Reservations run in groups (see [`crate::batch`]) like the code checks they precede: one
//! statement reserves for every key of a group. A key may appear only once in a statement, so
//! a group in which one key repeats (a burst against one account) runs one round per
//! repetition, in arrival order.
//!
//! The backoff rule ([`delay_ms`]) is written here once, in SQL that both backends run.

use crate::Backend;
use crate::SqlStore;
use crate::batch::Conn;
use crate::codec::{db_error, get, ms};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::HashMap;
use time::OffsetDateTime;
use twofold_core::ports::{AttemptStore, StoreResult};
use twofold_core::throttle::{AttemptKey, Budget, Reservation};

/// One attempt to pay for.
#[derive(Debug, Clone)]
pub(crate) struct ReserveInput {
    pub key: String,
    pub budget: Budget,
    pub now: OffsetDateTime,
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

/// Runs a group of reservations: one statement per round of distinct keys sharing a budget.
pub(crate) async fn reserve_group(
    conn: &mut Conn,
    backend: Backend,
    batch: Vec<ReserveInput>,
) -> StoreResult<Vec<Reservation>> {
    let mut answers: Vec<Option<Reservation>> = vec![None; batch.len()];
    let mut pending: Vec<usize> = (0..batch.len()).collect();
    while !pending.is_empty() {
        // This round: the first waiting input of each key, with the first input's budget.
        let budget = batch[pending[0]].budget;
        let mut taken: HashMap<&str, usize> = HashMap::new();
        let mut later = Vec::new();
        for &i in &pending {
            let input = &batch[i];
            if input.budget == budget && !taken.contains_key(input.key.as_str()) {
                taken.insert(input.key.as_str(), i);
            } else {
                later.push(i);
            }
        }
        let counted = reserve_round(conn, backend, &budget, &batch, &taken).await?;
        for (key, &i) in &taken {
            answers[i] = Some(match counted.get(*key) {
                Some(&count) => Reservation::Granted { count },
                None => Reservation::Refused {
                    retry_after_secs: retry_after(conn, key, &budget, batch[i].now).await?,
                },
            });
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
    batch: &[ReserveInput],
    round: &HashMap<&str, usize>,
) -> StoreResult<HashMap<String, u32>> {
    let input: Vec<Value> = round
        .values()
        .map(|&i| json!({ "key": batch[i].key, "now": ms(batch[i].now) }))
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
        self.checks
            .reserve(ReserveInput {
                key: key.to_string(),
                budget: *budget,
                now,
            })
            .await
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

    async fn clear_attempts(&self, key: &AttemptKey) -> StoreResult<()> {
        sqlx::query("DELETE FROM attempt_budgets WHERE key = $1")
            .bind(key.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
