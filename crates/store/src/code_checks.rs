//! The statements of a code check, run in groups (see [`crate::batch`]): paying for the
//! attempt (`attempts`), finding an API subject, reading an owner's active factors, and
//! consuming a TOTP step. Each takes a JSON array of inputs, so a group is one statement with
//! one parameter (a reservation group whose keys repeat is one statement per repetition).
//!
//! Consuming stays one conditional UPDATE per factor (`last_step < step`), so replay
//! protection does not depend on what was read before. The budget is not its business: the
//! attempt was paid for before the code was looked at.
//!
//! The SQL strings are assembled from this module's constants only (`AssertSqlSafe`); every
//! input travels in the one bound JSON parameter.

use crate::Backend;
use crate::attempts::{AttemptDone, AttemptOp, attempt_group};
use crate::audit::audit_insert;
use crate::batch::{Batcher, Conn};
use crate::codec::{db_error, get, ms, uuid};
use crate::factors::factor_from_row;
use serde_json::{Value, json};
use sqlx::AnyPool;
use std::collections::HashMap;
use time::OffsetDateTime;
use twofold_core::model::{AuditEvent, Factor};
use twofold_core::ports::StoreResult;
use uuid::Uuid;

/// Inputs per group: enough to absorb the concurrency of a busy node, small enough that one
/// statement stays short.
const MAX_BATCH: usize = 64;

pub(crate) type CheckState = Vec<Factor>;

/// A verification-API subject by (tenant, external id), with the prefix that makes its owner
/// key (`owner_prefix` + id).
#[derive(Debug, Clone)]
pub(crate) struct SubjectQuery {
    pub tenant: Uuid,
    pub external_id: String,
    pub owner_prefix: String,
}

#[derive(Debug, Clone)]
pub(crate) struct StepClaim {
    pub id: Uuid,
    pub step: i64,
    pub drift: i64,
    pub now: OffsetDateTime,
    pub audit: Option<AuditEvent>,
}

#[derive(Debug)]
pub(crate) struct CodeChecks {
    subject_states: Batcher<SubjectQuery, Option<(Uuid, CheckState)>>,
    states: Batcher<String, CheckState>,
    claims: Batcher<StepClaim, bool>,
    attempts: Batcher<AttemptOp, AttemptDone>,
}

impl CodeChecks {
    /// `group_pool` is the checks' own: its connections are held by the four workers.
    pub(crate) fn spawn(pool: &AnyPool, group_pool: &AnyPool, backend: Backend) -> Self {
        // Groups have connections of their own: on the main pool they waited for one during
        // a login flood (BENCHMARKS.md).
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
        let attempts = group!("reservation", attempt_group);
        Self {
            subject_states,
            states,
            claims,
            attempts,
        }
    }

    pub(crate) async fn subject_state(
        &self,
        query: SubjectQuery,
    ) -> StoreResult<Option<(Uuid, CheckState)>> {
        self.subject_states.call(query).await
    }

    pub(crate) async fn state(&self, owner: &str) -> StoreResult<CheckState> {
        self.states.call(owner.to_owned()).await
    }

    pub(crate) async fn claim(&self, claim: StepClaim) -> StoreResult<bool> {
        self.claims.call(claim).await
    }

    pub(crate) async fn attempt(&self, op: AttemptOp) -> StoreResult<AttemptDone> {
        self.attempts.call(op).await
    }

    pub(crate) fn attempt_later(&self, op: AttemptOp) -> StoreResult<()> {
        self.attempts.send(op)
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

fn slot_of(row: &sqlx::any::AnyRow) -> StoreResult<usize> {
    Ok(usize::try_from(get::<i64>(row, "slot")?).unwrap_or(usize::MAX))
}

const FACTOR_COLUMNS: &str = "f.id, f.owner, f.kind, f.label, f.status, f.key_id, f.secret,
    f.algorithm, f.digits, f.period, f.last_step, f.last_drift, f.drift_matches, f.created_at,
    f.expires_at, f.confirmed_at, f.last_used_at, f.hint";

/// Adds a row of the factors join to its input's state.
fn add_to_state(row: &sqlx::any::AnyRow, factors: &mut CheckState) -> StoreResult<()> {
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
        .map(|q| json!([q.tenant.to_string(), q.external_id, q.owner_prefix]))
        .collect();
    // LEFT JOINs keep SQLite's loop over the inputs outermost, so each input finds its rows
    // through the (tenant_id, external_id) and (owner, status) indexes.
    let sql = format!(
        "SELECT j.slot AS slot, s.id AS subject_id, {FACTOR_COLUMNS}
         FROM {} j
         LEFT JOIN subjects s ON s.tenant_id = {} AND s.external_id = {}
         LEFT JOIN factors f ON f.owner = {owner} || s.id AND f.status = 'active'
         ORDER BY j.slot, f.created_at, f.id",
        elements(backend),
        nth(backend, 0),
        nth(backend, 1),
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
        let (_, state) = place.get_or_insert_with(|| (id, Vec::new()));
        add_to_state(row, state)?;
    }
    Ok(found)
}

async fn read_states(
    conn: &mut Conn,
    backend: Backend,
    batch: Vec<String>,
) -> StoreResult<Vec<CheckState>> {
    let input: Vec<Value> = batch.iter().map(|owner| json!([owner])).collect();
    let sql = format!(
        "SELECT j.slot AS slot, {FACTOR_COLUMNS}
         FROM {} j
         LEFT JOIN factors f ON f.owner = {} AND f.status = 'active'
         ORDER BY j.slot, f.created_at, f.id",
        elements(backend),
        nth(backend, 0),
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(Value::Array(input).to_string())
        .fetch_all(&mut **conn)
        .await
        .map_err(db_error)?;
    let mut states: Vec<CheckState> = batch.iter().map(|_| Vec::new()).collect();
    for row in &rows {
        if let Some(state) = states.get_mut(slot_of(row)?) {
            add_to_state(row, state)?;
        }
    }
    Ok(states)
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
    json!({
        "id": c.id.to_string(),
        "step": c.step,
        "drift": c.drift,
        "now": ms(c.now),
        "audit": c.audit.as_ref().map(audit_json).unwrap_or(Value::Null),
    })
}

/// PostgreSQL's claims `c` from the JSON array in parameter `$n`, and `consumed`: the
/// conditional UPDATE of their factors, returning each consumed factor's id and audit.
pub(crate) fn pg_consumed(n: usize) -> String {
    format!(
        "c AS (
             SELECT * FROM json_to_recordset(${n}::json) AS x(
                 id text, step bigint, drift bigint, now bigint, audit jsonb)
         ), consumed AS (
             UPDATE factors f SET last_step = c.step, last_drift = c.drift, last_used_at = c.now,
                    drift_matches = f.drift_matches + CASE WHEN c.drift = 0 THEN 0 ELSE 1 END
             FROM c
             WHERE f.id = c.id AND f.status = 'active' AND f.last_step < c.step
             RETURNING f.id, c.audit
         )"
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
                      json(json_extract(value, '$.audit')) AS audit
               FROM json_each({input})) AS c
         WHERE factors.id = c.id AND factors.status = 'active' AND factors.last_step < c.step"
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
