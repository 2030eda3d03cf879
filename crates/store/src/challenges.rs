//! Challenges for one-time codes sent by SMS or email, their send quotas, and the delivery
//! state of the messages that carry them.

use crate::SqlStore;
use crate::audit::insert_audit;
use crate::codec::{db_error, from_ms, get, ms, opt_from_ms, uuid};
use crate::outbox::insert_outbox;
use async_trait::async_trait;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use twofold_core::model::*;
use twofold_core::ports::{ChallengeStore, Consumed, StoreResult};
use uuid::Uuid;

macro_rules! challenge_columns {
    () => {
        "id, owner, factor_id, purpose, session_id, channel, message_id, created_at, expires_at,
         attempts, approved_at, used_at, voided_at"
    };
}

fn challenge_from_row(row: &AnyRow) -> StoreResult<CodeChallenge> {
    Ok(CodeChallenge {
        id: uuid(&get::<String>(row, "id")?)?,
        owner: get(row, "owner")?,
        factor_id: uuid(&get::<String>(row, "factor_id")?)?,
        purpose: get(row, "purpose")?,
        session_id: get::<Option<String>>(row, "session_id")?
            .map(|s| uuid(&s))
            .transpose()?,
        channel: get(row, "channel")?,
        message_id: uuid(&get::<String>(row, "message_id")?)?,
        created_at: from_ms(get(row, "created_at")?)?,
        expires_at: from_ms(get(row, "expires_at")?)?,
        attempts: u32::try_from(get::<i64>(row, "attempts")?).unwrap_or(u32::MAX),
        approved_at: opt_from_ms(get(row, "approved_at")?)?,
        used_at: opt_from_ms(get(row, "used_at")?)?,
        voided_at: opt_from_ms(get(row, "voided_at")?)?,
    })
}

#[async_trait]
impl ChallengeStore for SqlStore {
    async fn start_code_challenge(
        &self,
        c: &NewCodeChallenge,
        cooldown_cutoff: OffsetDateTime,
        quotas: &[QuotaCheck],
        message: &NewOutboxItem,
        audit: &AuditEvent,
    ) -> StoreResult<ChallengeStart> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // A write first: on SQLite it takes the write lock before anything is read, on
        // PostgreSQL it locks the factor row, so concurrent sends to one factor queue here and
        // the second sees the first one's cooldown.
        let cooled = sqlx::query(
            "UPDATE factors SET last_sent_at = $3
             WHERE id = $1 AND owner = $2 AND (last_sent_at IS NULL OR last_sent_at <= $4)",
        )
        .bind(c.factor_id.to_string())
        .bind(&c.owner)
        .bind(ms(c.created_at))
        .bind(ms(cooldown_cutoff))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected()
            == 1;
        if let Some(key) = &c.idempotency_key {
            let earlier = sqlx::query(concat!(
                "SELECT ",
                challenge_columns!(),
                " FROM code_challenges WHERE owner = $1 AND idempotency_key = $2"
            ))
            .bind(&c.owner)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            if let Some(row) = earlier {
                return Ok(ChallengeStart::Existing(Box::new(challenge_from_row(
                    &row,
                )?)));
            }
        }
        if !cooled {
            return Ok(ChallengeStart::Cooldown);
        }
        for (index, q) in quotas.iter().enumerate() {
            let taken = sqlx::query(
                "INSERT INTO send_counters (key, window_start, count) VALUES ($1, $2, 1)
                 ON CONFLICT (key, window_start)
                 DO UPDATE SET count = send_counters.count + 1 WHERE send_counters.count < $3
                 RETURNING count",
            )
            .bind(&q.key)
            .bind(ms(q.window_start))
            .bind(i64::from(q.limit))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            // A limit of 0 refuses even the first send.
            if taken.is_none() || q.limit == 0 {
                return Ok(ChallengeStart::QuotaExceeded { index });
            }
        }
        sqlx::query(
            "UPDATE code_challenges SET voided_at = $2
             WHERE owner = $1 AND used_at IS NULL AND voided_at IS NULL",
        )
        .bind(&c.owner)
        .bind(ms(c.created_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO code_challenges (id, owner, factor_id, purpose, session_id, channel,
                                          code_hash, link_hash, message_id, idempotency_key,
                                          created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(c.id.to_string())
        .bind(&c.owner)
        .bind(c.factor_id.to_string())
        .bind(c.purpose)
        .bind(c.session_id.map(|s| s.to_string()))
        .bind(c.channel.as_str())
        .bind(c.code_hash.clone())
        .bind(c.link_hash.clone())
        .bind(c.message_id.to_string())
        .bind(c.idempotency_key.clone())
        .bind(ms(c.created_at))
        .bind(ms(c.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_outbox(&mut tx, message).await?;
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(ChallengeStart::Started)
    }

    async fn open_code_challenges(
        &self,
        owner: &str,
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> StoreResult<Vec<CodeChallenge>> {
        sqlx::query(concat!(
            "SELECT ",
            challenge_columns!(),
            " FROM code_challenges
             WHERE owner = $1 AND used_at IS NULL AND voided_at IS NULL AND expires_at > $2
               AND attempts < $3
             ORDER BY created_at DESC"
        ))
        .bind(owner)
        .bind(ms(now))
        .bind(i64::from(max_attempts))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(challenge_from_row)
        .collect()
    }

    async fn code_challenge(&self, owner: &str, id: Uuid) -> StoreResult<Option<CodeChallenge>> {
        sqlx::query(concat!(
            "SELECT ",
            challenge_columns!(),
            " FROM code_challenges WHERE owner = $1 AND id = $2"
        ))
        .bind(owner)
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(challenge_from_row)
        .transpose()
    }

    async fn consume_code_challenge(
        &self,
        id: Uuid,
        code_hash: &[u8],
        now: OffsetDateTime,
        recent: OffsetDateTime,
        max_attempts: u32,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<Consumed<()>> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // The try is paid for (`attempts < $4`, counted when wrong) and checked in this one
        // statement: tries that arrive together queue on the row, and none is checked once
        // the challenge's tries are spent.
        let tried = sqlx::query(
            "UPDATE code_challenges
             SET attempts = attempts + CASE WHEN code_hash = $2 THEN 0 ELSE 1 END,
                 used_at = CASE WHEN code_hash = $2 THEN $3 ELSE NULL END
             WHERE id = $1 AND used_at IS NULL AND voided_at IS NULL
               AND expires_at > $3 AND attempts < $4
             RETURNING factor_id, used_at",
        )
        .bind(id.to_string())
        .bind(code_hash.to_vec())
        .bind(ms(now))
        .bind(i64::from(max_attempts))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(row) = tried else {
            tx.commit().await.map_err(db_error)?;
            return self.used_with(id, code_hash, recent).await;
        };
        if get::<Option<i64>>(&row, "used_at")?.is_none() {
            tx.commit().await.map_err(db_error)?;
            return Ok(Consumed::No);
        }
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
        Ok(Consumed::Now(()))
    }

    async fn link_request(
        &self,
        link_hash: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<Option<(Option<String>, Option<String>, OffsetDateTime)>> {
        let row = sqlx::query(
            "SELECT s.ip, s.user_agent, c.created_at
             FROM code_challenges c JOIN sessions s ON s.id = c.session_id
             WHERE c.link_hash = $1 AND c.used_at IS NULL AND c.voided_at IS NULL
               AND c.expires_at > $2 AND c.approved_at IS NULL",
        )
        .bind(link_hash.to_vec())
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|r| {
            Ok((
                get(&r, "ip")?,
                get(&r, "user_agent")?,
                from_ms(get(&r, "created_at")?)?,
            ))
        })
        .transpose()
    }

    async fn approve_code_link(
        &self,
        link_hash: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<Option<CodeChallenge>> {
        sqlx::query(concat!(
            "UPDATE code_challenges SET approved_at = $2
             WHERE link_hash = $1 AND used_at IS NULL AND voided_at IS NULL AND expires_at > $2
               AND approved_at IS NULL
             RETURNING ",
            challenge_columns!()
        ))
        .bind(link_hash.to_vec())
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(challenge_from_row)
        .transpose()
    }

    async fn consume_approved_link(
        &self,
        session: SessionId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<CodeChallenge>> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let row = sqlx::query(concat!(
            "UPDATE code_challenges SET used_at = $2
             WHERE session_id = $1 AND approved_at IS NOT NULL AND used_at IS NULL
               AND voided_at IS NULL AND expires_at > $2
             RETURNING ",
            challenge_columns!()
        ))
        .bind(session.to_string())
        .bind(ms(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let challenge = challenge_from_row(&row)?;
        sqlx::query("UPDATE factors SET last_used_at = $2 WHERE id = $1")
            .bind(challenge.factor_id.to_string())
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(challenge))
    }

    async fn delivery_state(&self, message_id: Uuid) -> StoreResult<Option<DeliveryState>> {
        let row = sqlx::query("SELECT sent_at, failed_at, last_error FROM outbox WHERE id = $1")
            .bind(message_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let state = if get::<Option<i64>>(&row, "sent_at")?.is_some() {
            DeliveryState::Sent
        } else if get::<Option<i64>>(&row, "failed_at")?.is_some() {
            DeliveryState::Failed
        } else if get::<Option<String>>(&row, "last_error")?.is_some() {
            DeliveryState::Retrying
        } else {
            DeliveryState::Queued
        };
        Ok(Some(state))
    }

    async fn purge_code_challenges(
        &self,
        challenges_before: OffsetDateTime,
        counters_before: OffsetDateTime,
    ) -> StoreResult<u64> {
        let a = sqlx::query("DELETE FROM code_challenges WHERE expires_at < $1")
            .bind(ms(challenges_before))
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
        let b = sqlx::query("DELETE FROM send_counters WHERE window_start < $1")
            .bind(ms(counters_before))
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(a + b)
    }
}

impl SqlStore {
    /// `Already` when challenge `id` was used with `code_hash` at or after `recent`.
    async fn used_with(
        &self,
        id: Uuid,
        code_hash: &[u8],
        recent: OffsetDateTime,
    ) -> StoreResult<Consumed<()>> {
        let used: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM code_challenges WHERE id = $1 AND code_hash = $2 AND used_at >= $3",
        )
        .bind(id.to_string())
        .bind(code_hash.to_vec())
        .bind(ms(recent))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(if used.is_some() {
            Consumed::Already
        } else {
            Consumed::No
        })
    }
}
