//! The statements of a code check, run in groups (see [`crate::batch`]): finding an API
//! subject, reading an owner's active factors with its attempt budget, consuming a TOTP
//! step, and counting a wrong code (`code_failures`). Each takes a JSON array of inputs, so
//! a group is one statement with one parameter (two, in one transaction, for a wrong code).
//!
//! Consuming stays one conditional UPDATE per factor (`last_step < step`), now also
//! conditional on the owner's second-factor budget being open at that moment, so neither
//! replay protection nor the budget depends on what was read before.
//!
//! The SQL strings are assembled from this module's constants only (`AssertSqlSafe`); every
//! input travels in the one bound JSON parameter.

use crate::Backend;
use crate::attempts::attempt_record;
use crate::audit::audit_insert;
use crate::batch::{Batcher, Conn};
use crate::code_failures::{CodeFailure, record_code_failures};
use crate::codec::{db_error, get, ms, uuid};
use crate::factors::factor_from_row;
use serde_json::{Value, json};
use sqlx::AnyPool;
use std::collections::HashMap;
use time::OffsetDateTime;
use twofold_core::model::{AttemptRecord, AuditEvent, Factor};
use twofold_core::ports::StoreResult;
use twofold_core::throttle::BudgetGuard;
use uuid::Uuid;

/// Inputs per group: enough to absorb the concurrency of a busy node, small enough that one
/// statement stays short.
const MAX_BATCH: usize = 64;

pub(crate) type CheckState = (Vec<Factor>, Option<AttemptRecord>);

/// A verification-API subject by (tenant, external id), with the prefixes that make its owner
/// key (`owner_prefix` + id) and its budget key (`budget_prefix` + owner key).
#[derive(Debug, Clone)]
pub(crate) struct SubjectQuery {
    pub tenant: Uuid,
    pub external_id: String,
    pub owner_prefix: String,
    pub budget_prefix: String,
}

#[derive(Debug, Clone)]
pub(crate) struct StepClaim {
    pub id: Uuid,
    pub step: i64,
    pub drift: i64,
    pub now: OffsetDateTime,
    pub guard: BudgetGuard,
    pub audit: Option<AuditEvent>,
}

#[derive(Debug)]
pub(crate) struct CodeChecks {
    subject_states: Batcher<SubjectQuery, Option<(Uuid, CheckState)>>,
    states: Batcher<(String, String), CheckState>,
    claims: Batcher<StepClaim, bool>,
    failures: Batcher<CodeFailure, AttemptRecord>,
}

impl CodeChecks {
    /// `group_pool` is the checks' own: its connections are held by the four workers.
    pub(crate) fn spawn(pool: &AnyPool, group_pool: &AnyPool, backend: Backend) -> Self {
        // Both backends group. PostgreSQL ran each caller's statements alone until groups
        // had connections of their own: groups on the main pool waited for a connection
        // during the login flood (/verify p99 450-550 ms, against 60-75 ms alone), on their
        // own connections they did not (`git show df4d184:BENCHMARKS.md`, run of 2026-12-01
        // 22:08 UTC).
        // Each group runs `$run(&mut conn, backend, batch)` on its worker's held connection.
        macro_rules! group {
            ($name:literal, $run:ident) => {
                Batcher::spawn(
                    $name,
                    pool.clone(),
                    group_pool.clone(),
                    MAX_BATCH,
                    move |mut conn, batch| async move {
                        let answer = $run(&mut conn, backend, batch).await;
                        (conn, answer)
                    },
                )
            };
        }
        let subject_states = group!("subject_state", read_subject_states);
        let states = group!("check_state", read_states);
        let claims = group!("step_claim", claim_steps);
        let failures = group!("code_failure", record_code_failures);
        Self {
            subject_states,
            states,
            claims,
            failures,
        }
    }

    pub(crate) async fn subject_state(
        &self,
        query: SubjectQuery,
    ) -> StoreResult<Option<(Uuid, CheckState)>> {
        self.subject_states.call(query).await
    }

    pub(crate) async fn state(&self, owner: &str, budget_key: &str) -> StoreResult<CheckState> {
        self.states
            .call((owner.to_owned(), budget_key.to_owned()))
            .await
    }

    pub(crate) async fn claim(&self, claim: StepClaim) -> StoreResult<bool> {
        self.claims.call(claim).await
    }

    pub(crate) async fn failure(&self, failure: CodeFailure) -> StoreResult<AttemptRecord> {
        self.failures.call(failure).await
    }
}

/// The JSON array's elements as rows `(slot, v)`, `slot` counting from 0.
fn elements(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "(SELECT key AS slot, value AS v FROM json_each($1))",
        Backend::Postgres => {
            "(SELECT (i - 1) AS slot, v FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(v, i))"
        }
    }
}

/// Element `n` of a JSON array `v`, as text.
fn nth(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => format!("json_extract(j.v, '$[{n}]')"),
        Backend::Postgres => format!("(j.v->>{n})"),
    }
}

/// Joins the budget row `b` under key `key`. PostgreSQL plans these statements once per
/// connection and keeps the plan; planned while `attempt_budgets` was young (never analyzed,
/// so its size is guessed), the plain join became a hash join over a scan of the whole table,
/// which grew to milliseconds per statement as failures accumulated. A `LIMIT 1` lateral
/// lookup is always a primary-key probe per input.
fn budget_join(backend: Backend, key: &str) -> String {
    match backend {
        Backend::Sqlite => format!("LEFT JOIN attempt_budgets b ON b.key = {key}"),
        Backend::Postgres => format!(
            "LEFT JOIN LATERAL (SELECT failures, last_failure_at FROM attempt_budgets
                                WHERE key = {key} LIMIT 1) b ON true"
        ),
    }
}

fn slot_of(row: &sqlx::any::AnyRow) -> StoreResult<usize> {
    Ok(usize::try_from(get::<i64>(row, "slot")?).unwrap_or(usize::MAX))
}

const FACTOR_COLUMNS: &str = "f.id, f.owner, f.kind, f.label, f.status, f.key_id, f.secret,
    f.algorithm, f.digits, f.period, f.last_step, f.last_drift, f.drift_matches, f.created_at,
    f.expires_at, f.confirmed_at, f.last_used_at, f.hint,
    b.failures AS b_failures, b.last_failure_at AS b_last_failure_at";

/// Adds a row of the factors-and-budget join to its input's state.
fn add_to_state(row: &sqlx::any::AnyRow, (factors, budget): &mut CheckState) -> StoreResult<()> {
    if let Some(record) = attempt_record(row, "b_failures", "b_last_failure_at")? {
        *budget = Some(record);
    }
    if get::<Option<String>>(row, "id")?.is_some() {
        factors.push(factor_from_row(row)?);
    }
    Ok(())
}

async fn read_subject_states(
    conn: &mut Conn,
    backend: Backend,
    batch: Vec<SubjectQuery>,
) -> StoreResult<Vec<Option<(Uuid, CheckState)>>> {
    let input: Vec<Value> = batch
        .iter()
        .map(|q| {
            json!([
                q.tenant.to_string(),
                q.external_id,
                q.owner_prefix,
                q.budget_prefix
            ])
        })
        .collect();
    // LEFT JOINs keep SQLite's loop over the inputs outermost, so each input finds its rows
    // through the (tenant_id, external_id) and (owner, status) indexes.
    let sql = format!(
        "SELECT j.slot AS slot, s.id AS subject_id, {FACTOR_COLUMNS}
         FROM {} j
         LEFT JOIN subjects s ON s.tenant_id = {} AND s.external_id = {}
         LEFT JOIN factors f ON f.owner = {owner} || s.id AND f.status = 'active'
         {}
         ORDER BY j.slot, f.created_at, f.id",
        elements(backend),
        nth(backend, 0),
        nth(backend, 1),
        budget_join(
            backend,
            &format!("{} || {} || s.id", nth(backend, 3), nth(backend, 2))
        ),
        owner = nth(backend, 2),
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(Value::Array(input).to_string())
        .fetch_all(&mut **conn)
        .await
        .map_err(db_error)?;
    let mut found: Vec<Option<(Uuid, CheckState)>> = vec![None; batch.len()];
    for row in &rows {
        let Some(subject) = get::<Option<String>>(row, "subject_id")? else {
            continue;
        };
        let Some(place) = found.get_mut(slot_of(row)?) else {
            continue;
        };
        let id = uuid(&subject)?;
        let (_, state) = place.get_or_insert_with(|| (id, (Vec::new(), None)));
        add_to_state(row, state)?;
    }
    Ok(found)
}

async fn read_states(
    conn: &mut Conn,
    backend: Backend,
    batch: Vec<(String, String)>,
) -> StoreResult<Vec<CheckState>> {
    let input: Vec<Value> = batch
        .iter()
        .map(|(owner, budget_key)| json!([owner, budget_key]))
        .collect();
    let sql = format!(
        "SELECT j.slot AS slot, {FACTOR_COLUMNS}
         FROM {} j
         LEFT JOIN factors f ON f.owner = {} AND f.status = 'active'
         {}
         ORDER BY j.slot, f.created_at, f.id",
        elements(backend),
        nth(backend, 0),
        budget_join(backend, &nth(backend, 1)),
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(Value::Array(input).to_string())
        .fetch_all(&mut **conn)
        .await
        .map_err(db_error)?;
    let mut states: Vec<CheckState> = batch.iter().map(|_| (Vec::new(), None)).collect();
    for row in &rows {
        if let Some(state) = states.get_mut(slot_of(row)?) {
            add_to_state(row, state)?;
        }
    }
    Ok(states)
}

/// SQL true when the budget row `b` is spent at `c.now`: the same rule as
/// [`twofold_core::throttle::Budget::blocked_for`], over the claim's own budget columns.
pub(crate) fn budget_spent(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "b.last_failure_at >= c.window_start AND b.failures > c.free
             AND b.last_failure_at
                 + min(c.max_delay, c.base_delay << max(0, min(30, b.failures - c.free - 1)))
                 > c.now"
        }
        Backend::Postgres => {
            "b.last_failure_at >= c.window_start AND b.failures > c.free
             AND b.last_failure_at
                 + LEAST(c.max_delay,
                         c.base_delay << GREATEST(0, LEAST(30, b.failures - c.free - 1))::int)
                 > c.now"
        }
    }
}

/// SQL true when claim `c`'s budget is open. A scalar subquery with `LIMIT 1` stays a
/// primary-key probe per claim (see [`budget_join`]); `NOT EXISTS` would be planned as a join.
fn budget_open(backend: Backend) -> String {
    format!(
        "NOT COALESCE((SELECT true FROM attempt_budgets b
                       WHERE b.key = c.budget_key AND {} LIMIT 1), false)",
        budget_spent(backend)
    )
}

/// A guard as the columns [`budget_spent`] reads from `c`, in milliseconds.
pub(crate) struct GuardColumns {
    pub budget_key: String,
    pub now: i64,
    pub free: i64,
    pub base_delay: i64,
    pub max_delay: i64,
    pub window_start: i64,
}

impl GuardColumns {
    pub(crate) fn new(guard: &BudgetGuard, now: OffsetDateTime) -> Self {
        let b = guard.budget;
        Self {
            budget_key: guard.key.clone(),
            now: ms(now),
            free: i64::from(b.free_failures),
            base_delay: i64::try_from(b.base_delay.whole_milliseconds()).unwrap_or(i64::MAX),
            max_delay: i64::try_from(b.max_delay.whole_milliseconds()).unwrap_or(i64::MAX),
            window_start: ms(now - b.window),
        }
    }

    fn json(&self) -> Value {
        json!({
            "budget_key": self.budget_key,
            "now": self.now,
            "free": self.free,
            "base_delay": self.base_delay,
            "max_delay": self.max_delay,
            "window_start": self.window_start,
        })
    }
}

pub(crate) fn audit_json(audit: &AuditEvent) -> Value {
    json!({
        "id": audit.id.to_string(),
        "at": ms(audit.at),
        "account_id": audit.account_id.map(|a| a.to_string()),
        "event": audit.event,
        "ip": audit.ip,
        "user_agent": audit.user_agent,
        "detail": audit.detail.to_string(),
    })
}

/// A claim as an element of the JSON array the claim statements take.
pub(crate) fn claim_json(c: &StepClaim) -> Value {
    let mut v = GuardColumns::new(&c.guard, c.now).json();
    v["id"] = json!(c.id.to_string());
    v["step"] = json!(c.step);
    v["drift"] = json!(c.drift);
    v["audit"] = c.audit.as_ref().map(audit_json).unwrap_or(Value::Null);
    v
}

/// PostgreSQL's claims `c` from the JSON array in parameter `$n`, and `consumed`: the
/// conditional UPDATE of their factors, returning each consumed factor's id and audit.
pub(crate) fn pg_consumed(n: usize) -> String {
    format!(
        "c AS (
             SELECT * FROM json_to_recordset(${n}::json) AS x(
                 id text, step bigint, drift bigint, now bigint, budget_key text, free bigint,
                 base_delay bigint, max_delay bigint, window_start bigint, audit jsonb)
         ), consumed AS (
             UPDATE factors f SET last_step = c.step, last_drift = c.drift, last_used_at = c.now,
                    drift_matches = f.drift_matches + CASE WHEN c.drift = 0 THEN 0 ELSE 1 END
             FROM c
             WHERE f.id = c.id AND f.status = 'active' AND f.last_step < c.step
               AND {}
             RETURNING f.id, c.audit
         )",
        budget_open(Backend::Postgres)
    )
}

/// SQLite's claim statement over the JSON array in `$1`, returning each consumed factor's id.
/// SQLite has no data-modifying CTE: the audit row rides along in `pending_audit` and the
/// trigger `factors_step_audit` writes it inside this statement.
pub(crate) fn sqlite_claim() -> String {
    format!("{} RETURNING factors.id AS id", sqlite_claim_update("$1"))
}

/// [`sqlite_claim`] without its RETURNING, over the JSON array in `input` (a parameter, or a
/// column of the row a trigger fires for).
pub(crate) fn sqlite_claim_update(input: &str) -> String {
    format!(
        "UPDATE factors SET last_step = c.step, last_drift = c.drift, last_used_at = c.now,
                drift_matches = drift_matches + CASE WHEN c.drift = 0 THEN 0 ELSE 1 END,
                pending_audit = c.audit
         FROM (SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.step') AS step,
                      json_extract(value, '$.drift') AS drift, json_extract(value, '$.now') AS now,
                      json_extract(value, '$.budget_key') AS budget_key,
                      json_extract(value, '$.free') AS free,
                      json_extract(value, '$.base_delay') AS base_delay,
                      json_extract(value, '$.max_delay') AS max_delay,
                      json_extract(value, '$.window_start') AS window_start,
                      json(json_extract(value, '$.audit')) AS audit
               FROM json_each({input})) AS c
         WHERE factors.id = c.id AND factors.status = 'active' AND factors.last_step < c.step
           AND {}",
        budget_open(Backend::Sqlite)
    )
}

async fn claim_steps(
    conn: &mut Conn,
    backend: Backend,
    batch: Vec<StepClaim>,
) -> StoreResult<Vec<bool>> {
    // Claims on the same factor in one group: the latest step goes first (as if it had
    // arrived first), and the others then find it used, exactly as one at a time would.
    let mut winner: HashMap<Uuid, usize> = HashMap::new();
    for (i, c) in batch.iter().enumerate() {
        winner
            .entry(c.id)
            .and_modify(|w| {
                if batch[*w].step < c.step {
                    *w = i;
                }
            })
            .or_insert(i);
    }
    let mut claimed: Vec<usize> = winner.values().copied().collect();
    // In id order, so groups from two nodes lock shared rows in the same order.
    claimed.sort_by_key(|&i| batch[i].id);
    let input: Vec<Value> = claimed.iter().map(|&i| claim_json(&batch[i])).collect();
    let sql = match backend {
        Backend::Sqlite => sqlite_claim(),
        Backend::Postgres => format!(
            "WITH {}, audited AS (
                 INSERT INTO {audit_table}
                 SELECT audit->>'id', (audit->>'at')::bigint, audit->>'account_id', audit->>'event',
                        audit->>'ip', audit->>'user_agent', audit->>'detail'
                 FROM consumed WHERE audit IS NOT NULL AND jsonb_typeof(audit) = 'object'
             )
             SELECT id FROM consumed",
            pg_consumed(1),
            audit_table = audit_insert!(),
        ),
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(Value::Array(input).to_string())
        .fetch_all(&mut **conn)
        .await
        .map_err(db_error)?;
    let mut done = vec![false; batch.len()];
    for row in &rows {
        let id = uuid(&get::<String>(row, "id")?)?;
        if let Some(&i) = winner.get(&id) {
            done[i] = true;
        }
    }
    Ok(done)
}
