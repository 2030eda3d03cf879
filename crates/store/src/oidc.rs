//! The OpenID Connect provider's tables. Codes and refresh tokens are consumed by one
//! conditional UPDATE each (`… AND used_at IS NULL … RETURNING`), and the tokens they buy are
//! written in the same transaction.

use crate::SqlStore;
use crate::audit::insert_audit;
use crate::codec::{db_error, from_ms, get, ms, opt_from_ms, uuid};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use time::OffsetDateTime;
use twofold_core::keys::Sealed;
use twofold_core::model::{AccountId, AuditEvent};
use twofold_core::oidc::jwt::SigningAlg;
use twofold_core::oidc::{AuthRequest, Grant, OidcClient};
use twofold_core::ports::{
    NewOidcCode, NewOidcToken, OidcStore, OidcTokenRecord, Redemption, SigningKeyRecord,
    StoreError, StoreResult,
};
use uuid::Uuid;

fn json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Other(format!("encode: {e}")))
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Other(format!("decode: {e}")))
}

fn client_from_row(r: &AnyRow) -> StoreResult<(OidcClient, Option<Vec<u8>>)> {
    let secret: Option<Vec<u8>> = get(r, "secret_hash")?;
    Ok((
        OidcClient {
            id: get(r, "id")?,
            name: get(r, "name")?,
            redirect_uris: parse(&get::<String>(r, "redirect_uris")?)?,
            post_logout_redirect_uris: parse(&get::<String>(r, "post_logout_redirect_uris")?)?,
            confidential: secret.is_some(),
            first_party: get::<i64>(r, "first_party")? != 0,
            id_token_alg: alg(&get::<String>(r, "id_token_alg")?)?,
            created_at: from_ms(get(r, "created_at")?)?,
        },
        secret,
    ))
}

fn alg(s: &str) -> StoreResult<SigningAlg> {
    SigningAlg::parse(s).ok_or_else(|| StoreError::Other(format!("unknown signing algorithm {s}")))
}

fn record_from_row(r: &AnyRow, client_id: &str) -> StoreResult<OidcTokenRecord> {
    Ok(OidcTokenRecord {
        account_id: uuid(&get::<String>(r, "account_id")?)?,
        client_id: client_id.to_owned(),
        grant: parse::<Grant>(&get::<String>(r, "grant_json")?)?,
        family_id: uuid(&get::<String>(r, "family_id")?)?,
        security_stamp: get(r, "security_stamp")?,
    })
}

/// Stores `tokens` for `record`; none outlives `cap` (a rotated refresh token keeps the
/// lifetime of the sign-in it came from).
async fn insert_tokens(
    tx: &mut Transaction<'_, Any>,
    record: &OidcTokenRecord,
    tokens: &[NewOidcToken],
    now: OffsetDateTime,
    cap: Option<OffsetDateTime>,
) -> StoreResult<()> {
    let grant = json(&record.grant)?;
    for t in tokens {
        let expires_at = cap.map_or(t.expires_at, |c| c.min(t.expires_at));
        sqlx::query(
            "INSERT INTO oidc_tokens (token_hash, kind, family_id, client_id, account_id, grant_json, security_stamp, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(t.hash.clone())
        .bind(t.kind.as_str())
        .bind(record.family_id.to_string())
        .bind(&record.client_id)
        .bind(record.account_id.to_string())
        .bind(&grant)
        .bind(&record.security_stamp)
        .bind(ms(now))
        .bind(ms(expires_at))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

/// What the consuming UPDATE's row (if any) comes to: the tokens it buys, stored now (capped
/// at the consumed row's own expiry when `capped`), or — when nothing was consumed — whether
/// the code or token had been used before (`replay_sql` looks it up by its hash).
#[allow(clippy::too_many_arguments)]
async fn settle(
    tx: &mut Transaction<'_, Any>,
    consumed: Option<AnyRow>,
    client_id: &str,
    tokens: &[NewOidcToken],
    now: OffsetDateTime,
    capped: bool,
    replay_sql: &'static str,
    hash: &[u8],
) -> StoreResult<Redemption> {
    if let Some(r) = consumed {
        let record = record_from_row(&r, client_id)?;
        let cap = if capped {
            Some(from_ms(get(&r, "expires_at")?)?)
        } else {
            None
        };
        insert_tokens(tx, &record, tokens, now, cap).await?;
        return Ok(Redemption::Granted(record));
    }
    let row = sqlx::query(replay_sql)
        .bind(hash.to_vec())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
    match row {
        Some(r) if get::<Option<i64>>(&r, "used_at")?.is_some() => Ok(Redemption::Replayed {
            family_id: uuid(&get::<String>(&r, "family_id")?)?,
            account_id: uuid(&get::<String>(&r, "account_id")?)?,
        }),
        _ => Ok(Redemption::Invalid),
    }
}

#[async_trait]
impl OidcStore for SqlStore {
    async fn create_oidc_client(
        &self,
        client: &OidcClient,
        secret_hash: Option<&[u8]>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oidc_clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris, first_party, created_at, id_token_alg)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&client.id)
        .bind(&client.name)
        .bind(secret_hash.map(<[u8]>::to_vec))
        .bind(json(&client.redirect_uris)?)
        .bind(json(&client.post_logout_redirect_uris)?)
        .bind(i64::from(client.first_party))
        .bind(ms(client.created_at))
        .bind(client.id_token_alg.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn oidc_client(&self, id: &str) -> StoreResult<Option<(OidcClient, Option<Vec<u8>>)>> {
        sqlx::query("SELECT * FROM oidc_clients WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .map(|r| client_from_row(&r))
            .transpose()
    }

    async fn oidc_clients(&self) -> StoreResult<Vec<OidcClient>> {
        sqlx::query("SELECT * FROM oidc_clients ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(|r| client_from_row(r).map(|(c, _)| c))
            .collect()
    }

    async fn remove_oidc_client(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // Explicit, so SQLite without foreign-key enforcement forgets them too.
        for sql in [
            "DELETE FROM oidc_tokens WHERE client_id = $1",
            "DELETE FROM oidc_codes WHERE client_id = $1",
            "DELETE FROM oidc_consents WHERE client_id = $1",
            "DELETE FROM oidc_requests WHERE client_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        let n = sqlx::query("DELETE FROM oidc_clients WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(n == 1)
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        sqlx::query("SELECT id, alg, key_id, private_key, created_at, retired_at FROM oidc_signing_keys ORDER BY created_at DESC, id DESC")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(|r| {
                Ok(SigningKeyRecord {
                    id: uuid(&get::<String>(r, "id")?)?,
                    alg: alg(&get::<String>(r, "alg")?)?,
                    sealed: Sealed {
                        key_id: get(r, "key_id")?,
                        blob: get(r, "private_key")?,
                    },
                    created_at: from_ms(get(r, "created_at")?)?,
                    retired_at: opt_from_ms(get(r, "retired_at")?)?,
                })
            })
            .collect()
    }

    async fn add_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query(
            "UPDATE oidc_signing_keys SET retired_at = $1 WHERE retired_at IS NULL AND alg = $2",
        )
        .bind(ms(key.created_at))
        .bind(key.alg.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO oidc_signing_keys (id, alg, key_id, private_key, created_at) VALUES ($1, $5, $2, $3, $4)",
        )
        .bind(key.id.to_string())
        .bind(&key.sealed.key_id)
        .bind(key.sealed.blob.clone())
        .bind(ms(key.created_at))
        .bind(key.alg.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn save_auth_request(
        &self,
        id: &str,
        request: &AuthRequest,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // Requests nobody finished are dropped here rather than by a separate sweep.
        sqlx::query("DELETE FROM oidc_requests WHERE expires_at <= $1 OR id = $2")
            .bind(ms(created_at))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO oidc_requests (id, client_id, request, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(&request.client_id)
        .bind(json(request)?)
        .bind(ms(created_at))
        .bind(ms(expires_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn auth_request(
        &self,
        id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<(AuthRequest, OffsetDateTime)>> {
        let row = sqlx::query(
            "SELECT request, created_at FROM oidc_requests WHERE id = $1 AND expires_at > $2",
        )
        .bind(id)
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|r| {
            Ok((
                parse(&get::<String>(&r, "request")?)?,
                from_ms(get(&r, "created_at")?)?,
            ))
        })
        .transpose()
    }

    async fn consented_scopes(
        &self,
        account: AccountId,
        client_id: &str,
    ) -> StoreResult<Option<Vec<String>>> {
        let scope: Option<String> = sqlx::query_scalar(
            "SELECT scope FROM oidc_consents WHERE account_id = $1 AND client_id = $2",
        )
        .bind(account.to_string())
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        scope.map(|s| parse(&s)).transpose()
    }

    async fn save_consent(
        &self,
        account: AccountId,
        client_id: &str,
        scope: &[String],
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query(
            "INSERT INTO oidc_consents (account_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (account_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
        )
        .bind(account.to_string())
        .bind(client_id)
        .bind(json(&scope)?)
        .bind(ms(audit.at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn issue_code(
        &self,
        code: &NewOidcCode,
        request_id: &str,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query(
            "INSERT INTO oidc_codes (code_hash, client_id, account_id, redirect_uri, code_challenge, grant_json, family_id, security_stamp, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(code.code_hash.clone())
        .bind(&code.client_id)
        .bind(code.account_id.to_string())
        .bind(&code.redirect_uri)
        .bind(&code.code_challenge)
        .bind(json(&code.grant)?)
        .bind(code.family_id.to_string())
        .bind(&code.security_stamp)
        .bind(ms(code.created_at))
        .bind(ms(code.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query("DELETE FROM oidc_requests WHERE id = $1")
            .bind(request_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn redeem_code(
        &self,
        code_hash: &[u8],
        client_id: &str,
        redirect_uri: &str,
        code_challenge: &str,
        now: OffsetDateTime,
        tokens: &[NewOidcToken],
    ) -> StoreResult<Redemption> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let row = sqlx::query(
            "UPDATE oidc_codes SET used_at = $5
             WHERE code_hash = $1 AND client_id = $2 AND redirect_uri = $3 AND code_challenge = $4
               AND used_at IS NULL AND expires_at > $5
             RETURNING account_id, grant_json, family_id, security_stamp",
        )
        .bind(code_hash.to_vec())
        .bind(client_id)
        .bind(redirect_uri)
        .bind(code_challenge)
        .bind(ms(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let outcome = settle(
            &mut tx,
            row,
            client_id,
            tokens,
            now,
            false,
            "SELECT used_at, family_id, account_id FROM oidc_codes WHERE code_hash = $1",
            code_hash,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(outcome)
    }

    async fn rotate_refresh_token(
        &self,
        token_hash: &[u8],
        client_id: &str,
        now: OffsetDateTime,
        tokens: &[NewOidcToken],
    ) -> StoreResult<Redemption> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let row = sqlx::query(
            "UPDATE oidc_tokens SET used_at = $3
             WHERE token_hash = $1 AND client_id = $2 AND kind = 'refresh'
               AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $3
             RETURNING account_id, grant_json, family_id, security_stamp, expires_at",
        )
        .bind(token_hash.to_vec())
        .bind(client_id)
        .bind(ms(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let outcome = settle(
            &mut tx,
            row,
            client_id,
            tokens,
            now,
            true,
            "SELECT used_at, family_id, account_id FROM oidc_tokens WHERE token_hash = $1 AND kind = 'refresh'",
            token_hash,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(outcome)
    }

    async fn revoke_token_family(&self, family_id: Uuid, now: OffsetDateTime) -> StoreResult<u64> {
        Ok(sqlx::query(
            "UPDATE oidc_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(family_id.to_string())
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(db_error)?
        .rows_affected())
    }

    async fn purge_oidc(&self, before: OffsetDateTime) -> StoreResult<u64> {
        let mut n = 0;
        for sql in [
            "DELETE FROM oidc_codes WHERE expires_at < $1",
            "DELETE FROM oidc_tokens WHERE expires_at < $1",
            "DELETE FROM oidc_requests WHERE expires_at < $1",
        ] {
            n += sqlx::query(sql)
                .bind(ms(before))
                .execute(&self.pool)
                .await
                .map_err(db_error)?
                .rows_affected();
        }
        Ok(n)
    }

    async fn oidc_access_token(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<Option<OidcTokenRecord>> {
        let row = sqlx::query(
            "SELECT account_id, client_id, grant_json, family_id, security_stamp FROM oidc_tokens
             WHERE token_hash = $1 AND kind = 'access' AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash.to_vec())
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|r| {
            let client: String = get(&r, "client_id")?;
            record_from_row(&r, &client)
        })
        .transpose()
    }
}
