//! Known devices and networks, and the emailed codes that admit new ones.

use crate::SqlStore;
use crate::audit::{AnyQuery, bind_audit_or_nulls, insert_audit};
use crate::codec::{db_error, from_ms, get, ms, opt_from_ms, uuid};
use crate::effects::bump_stamp;
use crate::outbox::insert_outbox;
use crate::tokens::insert_token;
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use time::OffsetDateTime;
use twofold_core::device::{Seen, Unfamiliar};
use twofold_core::model::*;
use twofold_core::ports::{DeviceRecord, DeviceStore, StoreResult};
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

/// [`Seen`] from a row's `device_seen_at` and `network_seen_at` (each NULL when not known).
pub(crate) fn seen_from_row(row: &AnyRow, has_network: bool) -> StoreResult<Seen> {
    let device = opt_from_ms(get(row, "device_seen_at")?)?;
    let network = if has_network {
        opt_from_ms(get(row, "network_seen_at")?)?
    } else {
        None
    };
    Ok(Seen {
        device: device.is_some(),
        network: has_network.then_some(network.is_some()),
        recorded_at: match (device, network) {
            (Some(d), Some(n)) => Some(d.min(n)),
            (d, n) => d.or(n),
        },
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

/// A sign-in's device record as data-modifying CTEs and a final INSERT, to follow the CTEs of
/// the session it goes with (which take $1-$20): the browser ($21-$26, skipped when $23 is
/// NULL), the network ($27, skipped when NULL) and the audit row ($28-$34, skipped when $28 is
/// NULL), each upserted as in `write_device`.
macro_rules! pg_device_tail {
    () => {
        concat!(
            "d AS (INSERT INTO known_devices (id, account_id, device_hash, user_agent, ip, \
                                              first_seen_at, last_seen_at) \
               SELECT $21, $22, $23, $24, $25, $26, $26 WHERE $23 IS NOT NULL \
               ON CONFLICT (account_id, device_hash) DO UPDATE \
                 SET user_agent = excluded.user_agent, ip = excluded.ip, \
                     last_seen_at = excluded.last_seen_at), \
             n AS (INSERT INTO known_networks (account_id, network, first_seen_at, last_seen_at) \
               SELECT $22, $27, $26, $26 WHERE $27 IS NOT NULL \
               ON CONFLICT (account_id, network) DO UPDATE SET last_seen_at = excluded.last_seen_at) \
             INSERT INTO ",
            $crate::audit::audit_insert!(),
            " SELECT $28, $29, $30, $31, $32, $33, $34 WHERE $28 IS NOT NULL"
        )
    };
}
pub(crate) use pg_device_tail;

/// Binds [`pg_device_tail!`]'s fourteen values.
pub(crate) fn bind_device<'q>(q: AnyQuery<'q>, r: &DeviceRecord) -> AnyQuery<'q> {
    let d = &r.device;
    let q = q
        .bind(d.id.to_string())
        .bind(d.account_id.to_string())
        .bind(r.device_hash.clone())
        .bind(d.user_agent.clone())
        .bind(d.ip.clone())
        .bind(ms(d.last_seen_at))
        .bind(r.network.clone());
    bind_audit_or_nulls(q, r.audit.as_ref())
}

/// NULL for each of [`bind_device`]'s fourteen values: a statement that records no device.
pub(crate) fn bind_no_device(q: AnyQuery<'_>) -> AnyQuery<'_> {
    let q = q
        .bind(None::<String>)
        .bind(None::<String>)
        .bind(None::<Vec<u8>>)
        .bind(None::<String>)
        .bind(None::<String>)
        .bind(None::<i64>)
        .bind(None::<String>);
    bind_audit_or_nulls(q, None)
}

/// Writes a device record in a transaction.
pub(crate) async fn write_device(
    tx: &mut Transaction<'_, Any>,
    r: &DeviceRecord,
) -> StoreResult<()> {
    let d = &r.device;
    if let Some(device_hash) = &r.device_hash {
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
        .bind(device_hash.clone())
        .bind(d.user_agent.clone())
        .bind(d.ip.clone())
        .bind(ms(d.last_seen_at))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    if let Some(network) = &r.network {
        sqlx::query(
            "INSERT INTO known_networks (account_id, network, first_seen_at, last_seen_at)
             VALUES ($1, $2, $3, $3)
             ON CONFLICT (account_id, network) DO UPDATE
               SET last_seen_at = excluded.last_seen_at",
        )
        .bind(d.account_id.to_string())
        .bind(network.clone())
        .bind(ms(d.last_seen_at))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    if let Some(n) = &r.notice {
        insert_token(tx, &n.report_token).await?;
        insert_outbox(tx, &n.mail).await?;
    }
    if let Some(audit) = &r.audit {
        insert_audit(&mut **tx, audit).await?;
    }
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
               (SELECT last_seen_at FROM known_devices WHERE account_id = $1 AND device_hash = $2)
                 AS device_seen_at,
               (SELECT last_seen_at FROM known_networks WHERE account_id = $1 AND network = $3)
                 AS network_seen_at",
        )
        .bind(account.to_string())
        .bind(device_hash.to_vec())
        .bind(network.unwrap_or_default().to_owned())
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        seen_from_row(&row, network.is_some())
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

    async fn remember_device(&self, record: &DeviceRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        write_device(&mut tx, record).await?;
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

    async fn purge_known_devices(&self, before: OffsetDateTime, keep: u32) -> StoreResult<u64> {
        let mut removed = 0;
        for sql in [
            "DELETE FROM known_devices WHERE last_seen_at < $1",
            "DELETE FROM known_networks WHERE last_seen_at < $1",
        ] {
            removed += sqlx::query(sql)
                .bind(ms(before))
                .execute(&self.pool)
                .await
                .map_err(db_error)?
                .rows_affected();
        }
        // The cap ranks only the accounts over it, found on the (account_id, …) unique keys.
        for sql in [
            "DELETE FROM known_devices WHERE id IN (
               SELECT id FROM (
                 SELECT id, ROW_NUMBER() OVER (PARTITION BY account_id
                                               ORDER BY last_seen_at DESC, id DESC) AS place
                 FROM known_devices
                 WHERE account_id IN (SELECT account_id FROM known_devices
                                      GROUP BY account_id HAVING COUNT(*) > $1)) ranked
               WHERE place > $1)",
            "DELETE FROM known_networks WHERE (account_id, network) IN (
               SELECT account_id, network FROM (
                 SELECT account_id, network,
                        ROW_NUMBER() OVER (PARTITION BY account_id
                                           ORDER BY last_seen_at DESC, network DESC) AS place
                 FROM known_networks
                 WHERE account_id IN (SELECT account_id FROM known_networks
                                      GROUP BY account_id HAVING COUNT(*) > $1)) ranked
               WHERE place > $1)",
        ] {
            removed += sqlx::query(sql)
                .bind(i64::from(keep))
                .execute(&self.pool)
                .await
                .map_err(db_error)?
                .rows_affected();
        }
        Ok(removed)
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
