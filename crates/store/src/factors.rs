use crate::SqlStore;
use crate::audit::insert_audit;
use crate::code_checks::StepClaim;
use crate::codec::{db_error, from_ms, get, ms, opt_from_ms, uuid};
use crate::effects::apply_effects;
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use time::OffsetDateTime;
use twofold_core::factor::totp::{Algorithm, TotpParams};
use twofold_core::model::*;
use twofold_core::ports::{Consumed, FactorStore, SessionSwap, StoreError, StoreResult};
use uuid::Uuid;

pub(crate) fn factor_from_row(row: &AnyRow) -> StoreResult<Factor> {
    let algorithm: String = get(row, "algorithm")?;
    let status: String = get(row, "status")?;
    Ok(Factor {
        id: uuid(&get::<String>(row, "id")?)?,
        owner: get(row, "owner")?,
        kind: get(row, "kind")?,
        label: get(row, "label")?,
        status: if status == "active" {
            FactorStatus::Active
        } else {
            FactorStatus::Pending
        },
        key_id: get(row, "key_id")?,
        secret: get(row, "secret")?,
        params: TotpParams {
            algorithm: Algorithm::parse(&algorithm)
                .ok_or_else(|| StoreError::Other(format!("unknown algorithm {algorithm}")))?,
            digits: u32::try_from(get::<i64>(row, "digits")?).unwrap_or(6),
            period: u32::try_from(get::<i64>(row, "period")?).unwrap_or(30),
        },
        last_step: get(row, "last_step")?,
        last_drift: get(row, "last_drift")?,
        drift_matches: get(row, "drift_matches")?,
        created_at: from_ms(get(row, "created_at")?)?,
        expires_at: opt_from_ms(get(row, "expires_at")?)?,
        confirmed_at: opt_from_ms(get(row, "confirmed_at")?)?,
        last_used_at: opt_from_ms(get(row, "last_used_at")?)?,
        hint: get(row, "hint")?,
    })
}

pub(crate) async fn insert_backup_codes(
    tx: &mut Transaction<'_, Any>,
    owner: &str,
    hashes: &[Vec<u8>],
    now: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM backup_codes WHERE owner = $1")
        .bind(owner)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    for hash in hashes {
        sqlx::query("INSERT INTO backup_codes (owner, code_hash, created_at) VALUES ($1, $2, $3)")
            .bind(owner)
            .bind(hash.clone())
            .bind(ms(now))
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

pub(crate) async fn insert_factor(tx: &mut Transaction<'_, Any>, f: &Factor) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO factors (id, owner, kind, label, status, key_id, secret, algorithm, digits,
                                  period, last_step, created_at, expires_at, hint)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(f.id.to_string())
    .bind(&f.owner)
    .bind(&f.kind)
    .bind(&f.label)
    .bind(f.status.as_str())
    .bind(&f.key_id)
    .bind(f.secret.clone())
    .bind(f.params.algorithm.as_str())
    .bind(i64::from(f.params.digits))
    .bind(i64::from(f.params.period))
    .bind(f.last_step)
    .bind(ms(f.created_at))
    .bind(f.expires_at.map(ms))
    .bind(f.hint.clone())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The columns [`factor_from_row`] reads.
const FACTOR_FIELDS: &str = "id, owner, kind, label, status, key_id, secret, algorithm, digits,
    period, last_step, last_drift, drift_matches, created_at, expires_at, confirmed_at,
    last_used_at, hint";

#[async_trait]
impl FactorStore for SqlStore {
    async fn create_factor(&self, f: &Factor, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        insert_factor(&mut tx, f).await?;
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn factors_of(&self, owner: &str) -> StoreResult<Vec<Factor>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FACTOR_FIELDS} FROM factors WHERE owner = $1 ORDER BY created_at, id"
        )))
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(factor_from_row)
        .collect()
    }

    async fn code_check_state(&self, owner: &str) -> StoreResult<Vec<Factor>> {
        self.checks.state(owner).await
    }

    async fn activate_factor(
        &self,
        owner: &str,
        id: Uuid,
        step: i64,
        now: OffsetDateTime,
        backup_codes: &[Vec<u8>],
        effects: &Effects,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let done = sqlx::query(
            "UPDATE factors SET status = 'active', last_step = $3, confirmed_at = $4,
                                last_used_at = $4, expires_at = NULL
             WHERE id = $1 AND owner = $2 AND status = 'pending' AND expires_at > $4
               AND last_step < $3",
        )
        .bind(id.to_string())
        .bind(owner)
        .bind(step)
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if done != 1 {
            return Ok(false);
        }
        if !backup_codes.is_empty() {
            insert_backup_codes(&mut tx, owner, backup_codes, now).await?;
        }
        apply_effects(&mut tx, effects).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn consume_totp_step(
        &self,
        id: Uuid,
        step: i64,
        drift: i64,
        now: OffsetDateTime,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool> {
        self.checks
            .claim(StepClaim {
                id,
                step,
                drift,
                now,
                audit: audit.cloned(),
            })
            .await
    }

    async fn sign_in_with_totp_step(
        &self,
        id: Uuid,
        step: i64,
        drift: i64,
        now: OffsetDateTime,
        swap: &SessionSwap,
    ) -> StoreResult<Option<bool>> {
        // Not grouped: a sign-in is rare next to code checks, and its swap needs a commit of
        // its own anyway.
        let claim = StepClaim {
            id,
            step,
            drift,
            now,
            audit: None,
        };
        crate::sessions::sign_in_with_step(self, &claim, swap).await
    }

    async fn rename_factor(&self, owner: &str, id: Uuid, label: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE factors SET label = $3 WHERE id = $1 AND owner = $2")
            .bind(id.to_string())
            .bind(owner)
            .bind(label)
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(done == 1)
    }

    async fn delete_factor(
        &self,
        owner: &str,
        id: Uuid,
        and_backup_codes: bool,
        effects: &Effects,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let done = sqlx::query("DELETE FROM factors WHERE id = $1 AND owner = $2")
            .bind(id.to_string())
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        if done != 1 {
            return Ok(false);
        }
        if and_backup_codes {
            sqlx::query("DELETE FROM backup_codes WHERE owner = $1")
                .bind(owner)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        apply_effects(&mut tx, effects).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn delete_all_factors(&self, owner: &str, effects: &Effects) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let n = sqlx::query("DELETE FROM factors WHERE owner = $1")
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        sqlx::query("DELETE FROM backup_codes WHERE owner = $1")
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        apply_effects(&mut tx, effects).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(n)
    }

    async fn replace_backup_codes(
        &self,
        owner: &str,
        hashes: &[Vec<u8>],
        now: OffsetDateTime,
        effects: &Effects,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        insert_backup_codes(&mut tx, owner, hashes, now).await?;
        apply_effects(&mut tx, effects).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn consume_backup_code(
        &self,
        owner: &str,
        hash: &[u8],
        now: OffsetDateTime,
        recent: OffsetDateTime,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<Consumed<u32>> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let done = sqlx::query(
            "UPDATE backup_codes SET used_at = $3
             WHERE owner = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(owner)
        .bind(hash.to_vec())
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if done != 1 {
            drop(tx);
            let used: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM backup_codes WHERE owner = $1 AND code_hash = $2 AND used_at >= $3",
            )
            .bind(owner)
            .bind(hash.to_vec())
            .bind(ms(recent))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            return Ok(if used.is_some() {
                Consumed::Already
            } else {
                Consumed::No
            });
        }
        if let Some(audit) = audit {
            insert_audit(&mut *tx, audit).await?;
        }
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM backup_codes WHERE owner = $1 AND used_at IS NULL",
        )
        .bind(owner)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(Consumed::Now(u32::try_from(left).unwrap_or(0)))
    }

    async fn factors_and_backup_codes_left(&self, owner: &str) -> StoreResult<(Vec<Factor>, u32)> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FACTOR_FIELDS},
                    (SELECT COUNT(*) FROM backup_codes b
                     WHERE b.owner = factors.owner AND b.used_at IS NULL) AS backup_codes_left
             FROM factors WHERE owner = $1 ORDER BY created_at, id"
        )))
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let left = match rows.first() {
            Some(row) => u32::try_from(get::<i64>(row, "backup_codes_left")?).unwrap_or(0),
            None => 0,
        };
        let factors = rows
            .iter()
            .map(factor_from_row)
            .collect::<StoreResult<_>>()?;
        Ok((factors, left))
    }

    async fn backup_codes_left(&self, owner: &str) -> StoreResult<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM backup_codes WHERE owner = $1 AND used_at IS NULL",
        )
        .bind(owner)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(u32::try_from(n).unwrap_or(0))
    }
}
