//! Known devices and networks, and the emailed codes that admit new ones.

use crate::Backend;
use crate::SqlStore;
use crate::audit::{audit_insert, bind_audit_or_nulls, insert_audit};
use crate::codec::{db_error, from_ms, get, ms, uuid};
use crate::effects::bump_stamp;
use crate::outbox::insert_outbox;
use crate::tokens::insert_token;
use async_trait::async_trait;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use twofold_core::device::{Seen, Unfamiliar};
use twofold_core::model::*;
use twofold_core::ports::{DeviceStore, SignInNotice, StoreResult};
use uuid::Uuid;

fn challenge_from_row(row: &AnyRow) -> StoreResult<DeviceChallenge> {
    Ok(DeviceChallenge {
        session_id: uuid(&get::<String>(row, "session_id")?)?,
        account_id: uuid(&get::<String>(row, "account_id")?)?,
        device_hash: get(row, "device_hash")?,
        network: get(row, "network")?,
        reason: Unfamiliar::parse(&get::<String>(row, "reason")?),
        sent_at: from_ms(get(row, "sent_at")?)?,
        expires_at: from_ms(get(row, "expires_at")?)?,
    })
}

fn device_from_row(row: &AnyRow) -> StoreResult<KnownDevice> {
    Ok(KnownDevice {
        id: uuid(&get::<String>(row, "id")?)?,
        account_id: uuid(&get::<String>(row, "account_id")?)?,
        user_agent: get(row, "user_agent")?,
        ip: get(row, "ip")?,
        first_seen_at: from_ms(get(row, "first_seen_at")?)?,
        last_seen_at: from_ms(get(row, "last_seen_at")?)?,
    })
}

macro_rules! challenge_columns {
    () => {
        "session_id, account_id, device_hash, network, reason, sent_at, expires_at"
    };
}

/// The device ($1-$6, skipped when $3 is NULL), the network ($7, skipped when NULL) and the
/// audit row ($8-$14, skipped when $8 is NULL), each upserted as in the transaction of
/// `remember_device`, in one statement.
const PG_REMEMBER_DEVICE: &str = concat!(
    "WITH d AS (INSERT INTO known_devices (id, account_id, device_hash, user_agent, ip, \
                                           first_seen_at, last_seen_at) \
       SELECT $1, $2, $3, $4, $5, $6, $6 WHERE $3 IS NOT NULL \
       ON CONFLICT (account_id, device_hash) DO UPDATE \
         SET user_agent = excluded.user_agent, ip = excluded.ip, \
             last_seen_at = excluded.last_seen_at), \
     n AS (INSERT INTO known_networks (account_id, network, first_seen_at, last_seen_at) \
       SELECT $2, $7, $6, $6 WHERE $7 IS NOT NULL \
       ON CONFLICT (account_id, network) DO UPDATE SET last_seen_at = excluded.last_seen_at) \
     INSERT INTO ",
    audit_insert!(),
    " SELECT $8, $9, $10, $11, $12, $13, $14 WHERE $8 IS NOT NULL"
);

async fn remember_device_pg(
    pool: &sqlx::AnyPool,
    d: &KnownDevice,
    device_hash: Option<&[u8]>,
    network: Option<&str>,
    audit: Option<&AuditEvent>,
) -> StoreResult<()> {
    let q = sqlx::query(PG_REMEMBER_DEVICE)
        .bind(d.id.to_string())
        .bind(d.account_id.to_string())
        .bind(device_hash.map(<[u8]>::to_vec))
        .bind(d.user_agent.clone())
        .bind(d.ip.clone())
        .bind(ms(d.last_seen_at))
        .bind(network.map(str::to_owned));
    bind_audit_or_nulls(q, audit)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl DeviceStore for SqlStore {
    async fn seen(
        &self,
        account: AccountId,
        device_hash: &[u8],
        network: Option<&str>,
    ) -> StoreResult<Seen> {
        // One round trip for both questions.
        let row = sqlx::query(
            "SELECT
               (SELECT COUNT(*) FROM known_devices WHERE account_id = $1 AND device_hash = $2)
                 AS devices,
               (SELECT COUNT(*) FROM known_networks WHERE account_id = $1 AND network = $3)
                 AS networks",
        )
        .bind(account.to_string())
        .bind(device_hash.to_vec())
        .bind(network.unwrap_or_default().to_owned())
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(Seen {
            device: get::<i64>(&row, "devices")? > 0,
            network: network
                .map(|_| get::<i64>(&row, "networks").map(|n| n > 0))
                .transpose()?,
        })
    }

    async fn put_device_challenge(
        &self,
        c: &DeviceChallenge,
        code_hash: &[u8],
        resend_after: Option<OffsetDateTime>,
        mail: &NewOutboxItem,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let written = match resend_after {
            None => sqlx::query(concat!(
                "INSERT INTO device_challenges (",
                challenge_columns!(),
                ", code_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ))
            .bind(c.session_id.to_string())
            .bind(c.account_id.to_string())
            .bind(c.device_hash.clone())
            .bind(c.network.clone())
            .bind(c.reason.as_str())
            .bind(ms(c.sent_at))
            .bind(ms(c.expires_at))
            .bind(code_hash.to_vec()),
            // The cooldown is part of the condition, so two quick clicks send one mail.
            Some(after) => sqlx::query(
                "UPDATE device_challenges SET code_hash = $2, sent_at = $3, expires_at = $4
                 WHERE session_id = $1 AND used_at IS NULL AND sent_at <= $5",
            )
            .bind(c.session_id.to_string())
            .bind(code_hash.to_vec())
            .bind(ms(c.sent_at))
            .bind(ms(c.expires_at))
            .bind(ms(after)),
        }
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected()
            == 1;
        if !written {
            return Ok(false);
        }
        insert_outbox(&mut tx, mail).await?;
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn device_challenge(&self, session: SessionId) -> StoreResult<Option<DeviceChallenge>> {
        sqlx::query(concat!(
            "SELECT ",
            challenge_columns!(),
            " FROM device_challenges WHERE session_id = $1 AND used_at IS NULL"
        ))
        .bind(session.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(challenge_from_row)
        .transpose()
    }

    async fn consume_device_challenge(
        &self,
        session: SessionId,
        code_hash: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<Option<DeviceChallenge>> {
        sqlx::query(concat!(
            "UPDATE device_challenges SET used_at = $3
             WHERE session_id = $1 AND code_hash = $2 AND used_at IS NULL AND expires_at > $3
             RETURNING ",
            challenge_columns!()
        ))
        .bind(session.to_string())
        .bind(code_hash.to_vec())
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(challenge_from_row)
        .transpose()
    }

    async fn remember_device(
        &self,
        d: &KnownDevice,
        device_hash: Option<&[u8]>,
        network: Option<&str>,
        notice: Option<&SignInNotice>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()> {
        // A first sign-in from a browser writes this beside its session; on PostgreSQL it is
        // one statement, as the session's writes are (see `sessions`), unless a notice goes
        // out with it.
        if self.backend == Backend::Postgres && notice.is_none() {
            return remember_device_pg(&self.pool, d, device_hash, network, audit).await;
        }
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        if let Some(device_hash) = device_hash {
            sqlx::query(
                "INSERT INTO known_devices (id, account_id, device_hash, user_agent, ip,
                                        first_seen_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (account_id, device_hash) DO UPDATE
               SET user_agent = excluded.user_agent, ip = excluded.ip,
                   last_seen_at = excluded.last_seen_at",
            )
            .bind(d.id.to_string())
            .bind(d.account_id.to_string())
            .bind(device_hash.to_vec())
            .bind(d.user_agent.clone())
            .bind(d.ip.clone())
            .bind(ms(d.last_seen_at))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        if let Some(network) = network {
            sqlx::query(
                "INSERT INTO known_networks (account_id, network, first_seen_at, last_seen_at)
                 VALUES ($1, $2, $3, $3)
                 ON CONFLICT (account_id, network) DO UPDATE
                   SET last_seen_at = excluded.last_seen_at",
            )
            .bind(d.account_id.to_string())
            .bind(network)
            .bind(ms(d.last_seen_at))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        if let Some(n) = notice {
            insert_token(&mut tx, &n.report_token).await?;
            insert_outbox(&mut tx, &n.mail).await?;
        }
        if let Some(audit) = audit {
            insert_audit(&mut *tx, audit).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn known_devices_of(&self, account: AccountId) -> StoreResult<Vec<KnownDevice>> {
        sqlx::query(
            "SELECT id, account_id, user_agent, ip, first_seen_at, last_seen_at
             FROM known_devices WHERE account_id = $1 ORDER BY last_seen_at DESC",
        )
        .bind(account.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(device_from_row)
        .collect()
    }

    async fn forget_known_devices(
        &self,
        account: AccountId,
        id: Option<Uuid>,
        audit: &AuditEvent,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let n = match id {
            Some(id) => sqlx::query("DELETE FROM known_devices WHERE account_id = $1 AND id = $2")
                .bind(account.to_string())
                .bind(id.to_string()),
            None => sqlx::query("DELETE FROM known_devices WHERE account_id = $1")
                .bind(account.to_string()),
        }
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if id.is_none() {
            sqlx::query("DELETE FROM known_networks WHERE account_id = $1")
                .bind(account.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(n)
    }

    async fn set_ip_verification(
        &self,
        account: AccountId,
        on: bool,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query("UPDATE accounts SET ip_verification = $2 WHERE id = $1")
            .bind(account.to_string())
            .bind(i64::from(on))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn report_sign_in(
        &self,
        report_hash: &[u8],
        now: OffsetDateTime,
        stamp: &StampChange,
        reset: &NewToken,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let used = sqlx::query(
            "UPDATE account_tokens SET used_at = $3
             WHERE token_hash = $1 AND account_id = $2 AND purpose = 'sign_in_report'
               AND used_at IS NULL AND expires_at > $3",
        )
        .bind(report_hash.to_vec())
        .bind(stamp.account.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if used != 1 {
            return Ok(false);
        }
        bump_stamp(&mut tx, stamp).await?;
        for statement in [
            "DELETE FROM trusted_browsers WHERE account_id = $1",
            "DELETE FROM known_devices WHERE account_id = $1",
            "DELETE FROM known_networks WHERE account_id = $1",
        ] {
            sqlx::query(statement)
                .bind(stamp.account.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        insert_token(&mut tx, reset).await?;
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn purge_device_challenges(&self, before: OffsetDateTime) -> StoreResult<u64> {
        Ok(
            sqlx::query("DELETE FROM device_challenges WHERE expires_at < $1")
                .bind(ms(before))
                .execute(&self.pool)
                .await
                .map_err(db_error)?
                .rows_affected(),
        )
    }
}
