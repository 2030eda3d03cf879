//! Counting wrong second-factor codes in groups (see [`crate::batch`]). A wrong code costs
//! a budget write and its audit row; one at a time on the main pool they were two
//! statements and two commits per check, and wrong codes are what a guessing attack sends.
//! A group is one transaction of two statements whatever its size: one upsert with a row per
//! budget key, counting every failure of the group on it, then the audit rows with the counts.
//!
//! Each failure still counts, under any concurrency: the upsert adds the group's failures to
//! what the row holds at that moment (`failures + n`), in the database, as the one-at-a-time
//! statement adds one.

use crate::Backend;
use crate::audit::audit_insert;
use crate::batch::Conn;
use crate::code_checks::audit_json;
use crate::codec::{db_error, from_ms, get, ms};
use serde_json::{Value, json};
use sqlx::Connection;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use twofold_core::model::{AttemptRecord, AuditEvent};
use twofold_core::ports::{StoreError, StoreResult};

/// One wrong code: the budget it counts against and the audit row it leaves, whose detail
/// gets the resulting count as `failures`.
#[derive(Debug, Clone)]
pub(crate) struct CodeFailure {
    pub key: String,
    pub now: OffsetDateTime,
    pub window_start: OffsetDateTime,
    pub audit: AuditEvent,
}

/// The failures of one key within a group.
struct KeyCount {
    n: i64,
    now: i64,
}

pub(crate) async fn record_code_failures(
    conn: &mut Conn,
    backend: Backend,
    batch: Vec<CodeFailure>,
) -> StoreResult<Vec<AttemptRecord>> {
    // In key order, so groups from two nodes lock shared rows in the same order.
    let mut keys: BTreeMap<&str, KeyCount> = BTreeMap::new();
    for f in &batch {
        let c = keys
            .entry(f.key.as_str())
            .or_insert(KeyCount { n: 0, now: 0 });
        c.n += 1;
        c.now = c.now.max(ms(f.now));
    }
    // Failures older than the window are forgotten first. Every caller passes `now - window`
    // of one budget; the widest window of the group is the one that forgets least.
    let window = batch
        .iter()
        .map(|f| ms(f.now) - ms(f.window_start))
        .max()
        .unwrap_or(0);
    let input: Vec<Value> = keys
        .iter()
        .map(|(key, c)| json!({ "key": key, "n": c.n, "now": c.now }))
        .collect();

    let mut tx = conn.begin().await.map_err(db_error)?;
    let rows = sqlx::query(upsert_sql(backend))
        .bind(Value::Array(input).to_string())
        .bind(window)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
    let mut totals: BTreeMap<String, AttemptRecord> = BTreeMap::new();
    for row in &rows {
        let failures = u32::try_from(get::<i64>(row, "failures")?).unwrap_or(u32::MAX);
        let last_failure_at = from_ms(get(row, "last_failure_at")?)?;
        totals.insert(
            get(row, "key")?,
            AttemptRecord {
                failures,
                last_failure_at,
            },
        );
    }

    // The group's failures on a key are numbered in arrival order, ending at the total.
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    let mut records = Vec::with_capacity(batch.len());
    let mut audits = Vec::with_capacity(batch.len());
    for f in &batch {
        let total = totals
            .get(&f.key)
            .ok_or_else(|| StoreError::Other("a budget key was not counted".into()))?;
        let n = keys.get(f.key.as_str()).map_or(1, |c| c.n);
        let k = seen.entry(f.key.as_str()).or_insert(0);
        *k += 1;
        let failures = total
            .failures
            .saturating_sub(u32::try_from(n).unwrap_or(u32::MAX))
            .saturating_add(*k);
        let mut audit = f.audit.clone();
        if let Value::Object(detail) = &mut audit.detail {
            detail.insert("failures".into(), json!(failures));
        }
        audits.push(audit_json(&audit));
        records.push(AttemptRecord {
            failures,
            last_failure_at: total.last_failure_at,
        });
    }
    sqlx::query(audit_sql(backend))
        .bind(Value::Array(audits).to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(records)
}

/// The upsert over rows `(key, n, now)` read from `$1` by `$rows`: a fresh key starts at `n`,
/// a key whose last failure is older than the window (`$2`, milliseconds) restarts at `n`,
/// any other adds `n`.
macro_rules! upsert {
    ($rows:literal) => {
        concat!(
            "INSERT INTO attempt_budgets (key, failures, last_failure_at) ",
            $rows,
            " ON CONFLICT (key) DO UPDATE SET
                failures = CASE WHEN attempt_budgets.last_failure_at < excluded.last_failure_at - $2
                                THEN excluded.failures
                                ELSE attempt_budgets.failures + excluded.failures END,
                last_failure_at = excluded.last_failure_at
             RETURNING key, failures, last_failure_at"
        )
    };
}

/// `$1` the keys as `[{key, n, now}]`, `$2` the window in milliseconds.
fn upsert_sql(backend: Backend) -> &'static str {
    match backend {
        // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT.
        Backend::Sqlite => upsert!(
            "SELECT json_extract(value, '$.key'), json_extract(value, '$.n'),
                    json_extract(value, '$.now')
             FROM json_each($1) WHERE true"
        ),
        Backend::Postgres => upsert!(
            "SELECT key, n, now FROM json_to_recordset($1::json) AS x(key text, n bigint, now bigint)"
        ),
    }
}

/// `$1` the audit rows as [`audit_json`] objects.
fn audit_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => concat!(
            "INSERT INTO ",
            audit_insert!(),
            " SELECT json_extract(value, '$.id'), json_extract(value, '$.at'),
                    json_extract(value, '$.account_id'), json_extract(value, '$.event'),
                    json_extract(value, '$.ip'), json_extract(value, '$.user_agent'),
                    json_extract(value, '$.detail')
             FROM json_each($1)"
        ),
        Backend::Postgres => concat!(
            "INSERT INTO ",
            audit_insert!(),
            " SELECT id, at, account_id, event, ip, user_agent, detail
             FROM json_to_recordset($1::json) AS x(id text, at bigint, account_id text,
                  event text, ip text, user_agent text, detail text)"
        ),
    }
}
