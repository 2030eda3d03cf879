use crate::SqlStore;
use crate::code_checks::SubjectQuery;
use crate::codec::{db_error, from_ms, get, ms, opt_from_ms, uuid};
use async_trait::async_trait;
use time::OffsetDateTime;
use twofold_core::keys::Sealed;
use twofold_core::model::{ApiKeyInfo, ApiKeyRecord, Factor, Revoked};
use twofold_core::ports::{ApiStore, KeyStore, StoreResult};
use uuid::Uuid;

#[async_trait]
impl ApiStore for SqlStore {
    async fn ensure_tenant(
        &self,
        name: &str,
        id_if_new: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<Uuid> {
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(id_if_new.to_string())
            .bind(name)
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        let id: String = sqlx::query_scalar("SELECT id FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        uuid(&id)
    }

    async fn tenant_relying_party(
        &self,
        tenant: Uuid,
    ) -> StoreResult<Option<(String, Vec<String>)>> {
        let row = sqlx::query("SELECT rp_id, rp_origins FROM tenants WHERE id = $1")
            .bind(tenant.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (Some(id), Some(origins)) = (
            get::<Option<String>>(&row, "rp_id")?,
            get::<Option<String>>(&row, "rp_origins")?,
        ) else {
            return Ok(None);
        };
        let origins: Vec<String> = serde_json::from_str(&origins)
            .map_err(|e| twofold_core::ports::StoreError::Other(format!("rp_origins: {e}")))?;
        Ok(Some((id, origins)))
    }

    async fn set_tenant_relying_party(
        &self,
        tenant: &str,
        rp: Option<(&str, &[String])>,
    ) -> StoreResult<bool> {
        let (id, origins) = match rp {
            Some((id, origins)) => (
                Some(id.to_owned()),
                Some(serde_json::to_string(origins).map_err(|e| {
                    twofold_core::ports::StoreError::Other(format!("rp_origins: {e}"))
                })?),
            ),
            None => (None, None),
        };
        let n = sqlx::query("UPDATE tenants SET rp_id = $2, rp_origins = $3 WHERE name = $1")
            .bind(tenant)
            .bind(id)
            .bind(origins)
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(n == 1)
    }

    async fn create_api_key(
        &self,
        key: &ApiKeyRecord,
        hash: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO api_keys (id, tenant_id, name, key_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(key.id.to_string())
            .bind(key.tenant_id.to_string())
            .bind(&key.name)
            .bind(hash.to_vec())
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn api_key_by_hash(&self, hash: &[u8]) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, name FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|r| {
            Ok(ApiKeyRecord {
                id: uuid(&get::<String>(&r, "id")?)?,
                tenant_id: uuid(&get::<String>(&r, "tenant_id")?)?,
                name: get(&r, "name")?,
            })
        })
        .transpose()
    }

    async fn revoke_api_key(
        &self,
        id: Uuid,
        reason: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Revoked> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $2, revoked_reason = $3
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id.to_string())
        .bind(ms(now))
        .bind(reason)
        .execute(&self.pool)
        .await
        .map_err(db_error)?
        .rows_affected();
        if done == 1 {
            return Ok(Revoked::Now);
        }
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM api_keys WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(if exists.is_some() {
            Revoked::Already
        } else {
            Revoked::UnknownKey
        })
    }

    async fn api_keys(&self) -> StoreResult<Vec<ApiKeyInfo>> {
        let rows = sqlx::query(
            "SELECT k.id, t.name AS tenant, k.name, k.created_at, k.last_used_at, k.revoked_at,
                    k.revoked_reason
             FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
             ORDER BY k.created_at, k.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                Ok(ApiKeyInfo {
                    id: uuid(&get::<String>(r, "id")?)?,
                    tenant: get(r, "tenant")?,
                    name: get(r, "name")?,
                    created_at: from_ms(get(r, "created_at")?)?,
                    last_used_at: opt_from_ms(get(r, "last_used_at")?)?,
                    revoked_at: opt_from_ms(get(r, "revoked_at")?)?,
                    revoked_reason: get(r, "revoked_reason")?,
                })
            })
            .collect()
    }

    async fn api_key_revision(&self) -> StoreResult<(i64, i64)> {
        let row =
            sqlx::query("SELECT COUNT(*) AS total, COUNT(revoked_at) AS revoked FROM api_keys")
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
        Ok((get(&row, "total")?, get(&row, "revoked")?))
    }

    async fn touch_api_key(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        since: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $2
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(id.to_string())
        .bind(ms(now))
        .bind(ms(since))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn subject_check_state(
        &self,
        tenant: Uuid,
        external_id: &str,
        owner_prefix: &str,
    ) -> StoreResult<Option<(Uuid, Vec<Factor>)>> {
        let found = self
            .checks
            .subject_state(SubjectQuery {
                tenant,
                external_id: external_id.to_owned(),
                owner_prefix: owner_prefix.to_owned(),
            })
            .await?;
        Ok(found)
    }

    async fn subject(
        &self,
        tenant: Uuid,
        external_id: &str,
        create_with: Option<(Uuid, OffsetDateTime)>,
    ) -> StoreResult<Option<Uuid>> {
        if let Some((id, now)) = create_with {
            sqlx::query(
                "INSERT INTO subjects (id, tenant_id, external_id, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id, external_id) DO NOTHING",
            )
            .bind(id.to_string())
            .bind(tenant.to_string())
            .bind(external_id)
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        }
        let id: Option<String> =
            sqlx::query_scalar("SELECT id FROM subjects WHERE tenant_id = $1 AND external_id = $2")
                .bind(tenant.to_string())
                .bind(external_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        id.map(|i| uuid(&i)).transpose()
    }
}

#[async_trait]
impl KeyStore for SqlStore {
    async fn canary(&self) -> StoreResult<Option<Sealed>> {
        let row = sqlx::query("SELECT key_id, blob FROM key_canary WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.map(|r| {
            Ok(Sealed {
                key_id: get(&r, "key_id")?,
                blob: get(&r, "blob")?,
            })
        })
        .transpose()
    }

    async fn set_canary(&self, sealed: &Sealed) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO key_canary (id, key_id, blob) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET key_id = $1, blob = $2",
        )
        .bind(&sealed.key_id)
        .bind(sealed.blob.clone())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn sealed_values(&self) -> StoreResult<Vec<(String, String, Sealed)>> {
        let mut out = Vec::new();
        for r in sqlx::query("SELECT id, key_id, secret FROM factors")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
        {
            out.push((
                "factors".to_owned(),
                get(&r, "id")?,
                Sealed {
                    key_id: get(&r, "key_id")?,
                    blob: get(&r, "secret")?,
                },
            ));
        }
        for r in sqlx::query("SELECT id, key_id, payload FROM outbox WHERE payload IS NOT NULL")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
        {
            out.push((
                "outbox".to_owned(),
                get(&r, "id")?,
                Sealed {
                    key_id: get(&r, "key_id")?,
                    blob: get(&r, "payload")?,
                },
            ));
        }
        for r in sqlx::query("SELECT id, key_id, private_key FROM oidc_signing_keys")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
        {
            out.push((
                "oidc_signing_keys".to_owned(),
                get(&r, "id")?,
                Sealed {
                    key_id: get(&r, "key_id")?,
                    blob: get(&r, "private_key")?,
                },
            ));
        }
        Ok(out)
    }

    async fn reseal(
        &self,
        table: &str,
        id: &str,
        old_key_id: &str,
        new: &Sealed,
    ) -> StoreResult<bool> {
        let query = match table {
            "factors" => {
                "UPDATE factors SET key_id = $3, secret = $4 WHERE id = $1 AND key_id = $2"
            }
            "outbox" => {
                "UPDATE outbox SET key_id = $3, payload = $4 WHERE id = $1 AND key_id = $2 AND payload IS NOT NULL"
            }
            "oidc_signing_keys" => {
                "UPDATE oidc_signing_keys SET key_id = $3, private_key = $4 WHERE id = $1 AND key_id = $2"
            }
            _ => return Ok(false),
        };
        let done = sqlx::query(query)
            .bind(id)
            .bind(old_key_id)
            .bind(&new.key_id)
            .bind(new.blob.clone())
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(done == 1)
    }
}
