//! WebAuthn credentials and ceremonies.

use crate::SqlStore;
use crate::audit::insert_audit;
use crate::codec::{db_error, get, ms, opt_from_ms, uuid};
use crate::effects::apply_effects;
use crate::factors::{insert_backup_codes, insert_factor};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use twofold_core::model::*;
use twofold_core::ports::{StoreResult, WebauthnStore};
use uuid::Uuid;

macro_rules! credential_columns {
    () => {
        "factor_id, owner, credential_id, passkey, counter, discoverable, aaguid, suspicious_at"
    };
}

fn credential_from_row(row: &AnyRow) -> StoreResult<WebauthnCredential> {
    Ok(WebauthnCredential {
        factor_id: uuid(&get::<String>(row, "factor_id")?)?,
        owner: get(row, "owner")?,
        credential_id: get(row, "credential_id")?,
        passkey: get(row, "passkey")?,
        counter: u32::try_from(get::<i64>(row, "counter")?).unwrap_or(u32::MAX),
        discoverable: get::<i64>(row, "discoverable")? != 0,
        aaguid: get::<Option<String>>(row, "aaguid")?
            .map(|s| uuid(&s))
            .transpose()?,
        suspicious_at: opt_from_ms(get(row, "suspicious_at")?)?,
    })
}

#[async_trait]
impl WebauthnStore for SqlStore {
    async fn create_ceremony(&self, c: &WebauthnCeremony) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO webauthn_ceremonies (id, owner, session_id, kind, state, created_at,
                                              expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(c.id.to_string())
        .bind(c.owner.clone())
        .bind(c.session_id.map(|s| s.to_string()))
        .bind(c.kind)
        .bind(&c.state)
        .bind(ms(c.created_at))
        .bind(ms(c.expires_at))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn take_ceremony(
        &self,
        id: Uuid,
        kind: &str,
        owner: Option<&str>,
        session: Option<SessionId>,
        now: OffsetDateTime,
    ) -> StoreResult<Option<String>> {
        // A NULL bound parameter matches only a ceremony that has no owner / session either.
        let row = sqlx::query(
            "UPDATE webauthn_ceremonies SET used_at = $5
             WHERE id = $1 AND kind = $2 AND used_at IS NULL AND expires_at > $5
               AND ((owner IS NULL AND $3 IS NULL) OR owner = $3)
               AND ((session_id IS NULL AND $4 IS NULL) OR session_id = $4)
             RETURNING state",
        )
        .bind(id.to_string())
        .bind(kind)
        .bind(owner.map(str::to_owned))
        .bind(session.map(|s| s.to_string()))
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|r| get(&r, "state")).transpose()
    }

    async fn add_webauthn_factor(
        &self,
        factor: &Factor,
        c: &WebauthnCredential,
        backup_codes: &[Vec<u8>],
        effects: &Effects,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        insert_factor(&mut tx, factor).await?;
        sqlx::query(
            "INSERT INTO webauthn_credentials (factor_id, owner, credential_id, passkey, counter,
                                               discoverable, aaguid)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(c.factor_id.to_string())
        .bind(&c.owner)
        .bind(c.credential_id.clone())
        .bind(&c.passkey)
        .bind(i64::from(c.counter))
        .bind(i64::from(c.discoverable))
        .bind(c.aaguid.map(|a| a.to_string()))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if !backup_codes.is_empty() {
            insert_backup_codes(&mut tx, &factor.owner, backup_codes, factor.created_at).await?;
        }
        apply_effects(&mut tx, effects).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn webauthn_credentials_of(&self, owner: &str) -> StoreResult<Vec<WebauthnCredential>> {
        sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM webauthn_credentials WHERE owner = $1 AND suspicious_at IS NULL"
        ))
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(credential_from_row)
        .collect()
    }

    async fn webauthn_credential(
        &self,
        credential_id: &[u8],
    ) -> StoreResult<Option<WebauthnCredential>> {
        sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM webauthn_credentials WHERE credential_id = $1"
        ))
        .bind(credential_id.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(credential_from_row)
        .transpose()
    }

    async fn record_webauthn_use(
        &self,
        credential_id: &[u8],
        counter: u32,
        passkey: &str,
        now: OffsetDateTime,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let row = sqlx::query(
            "UPDATE webauthn_credentials SET counter = $2, passkey = $3
             WHERE credential_id = $1 AND suspicious_at IS NULL AND (counter < $2 OR $2 = 0)
             RETURNING factor_id",
        )
        .bind(credential_id.to_vec())
        .bind(i64::from(counter))
        .bind(passkey)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(false);
        };
        sqlx::query("UPDATE factors SET last_used_at = $2 WHERE id = $1")
            .bind(get::<String>(&row, "factor_id")?)
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if let Some(audit) = audit {
            insert_audit(&mut *tx, audit).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn mark_webauthn_suspicious(
        &self,
        credential_id: &[u8],
        now: OffsetDateTime,
        effects: &Effects,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query(
            "UPDATE webauthn_credentials SET suspicious_at = $2
             WHERE credential_id = $1 AND suspicious_at IS NULL",
        )
        .bind(credential_id.to_vec())
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        apply_effects(&mut tx, effects).await?;
        tx.commit().await.map_err(db_error)
    }
}
