//! API keys for the verification API: creating, listing, revoking and authenticating them.
//!
//! Each node caches keys it has authenticated, so a busy app's key is not looked up on every
//! call. A revocation made on any node must stop the key everywhere within about a second, so
//! the cache is checked against the keys' revision in the database at most once a second and
//! dropped whenever it changed.

use super::Core;
use super::sessions::SessionContext;
use super::verification_api::ApiCaller;
use crate::error::CoreError;
use crate::model::{AccountId, ApiKeyInfo, ApiKeyRecord, RequestMeta, Revoked};
use crate::token::decode_token;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// API keys look like `tfk_<43 base64url chars>` so they are recognisable in secret scanners.
const KEY_PREFIX: &str = "tfk_";
/// How long a node trusts a key it has looked up, as long as no key was revoked meanwhile.
const CACHE_TTL: Duration = Duration::seconds(30);
/// How often a node asks the database whether any key was revoked: the longest a revoked key
/// keeps working on a node that had it cached.
const REVISION_CHECK: Duration = Duration::seconds(1);
/// `last_used_at` is a hint for operators; writing it more often than this would cost a
/// write per verification.
const TOUCH_INTERVAL: Duration = Duration::minutes(1);
const CACHE_MAX: usize = 10_000;

/// The per-node cache of authenticated keys (keyed hash → caller).
#[derive(Default)]
pub(super) struct ApiKeyCache(Mutex<CacheState>);

#[derive(Default)]
struct CacheState {
    entries: HashMap<Vec<u8>, Entry>,
    /// The database's key revision when the entries were last validated.
    revision: Option<(i64, i64)>,
    checked_at: Option<OffsetDateTime>,
    /// Bumped on every clear, so a lookup that raced a clear does not re-insert a stale key.
    epoch: u64,
}

struct Entry {
    caller: ApiCaller,
    cached_at: OffsetDateTime,
    touched_at: OffsetDateTime,
}

impl ApiKeyCache {
    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CacheState {
    fn clear(&mut self) {
        self.entries.clear();
        self.epoch += 1;
    }

    /// Drops every entry and makes the next request check the revision again.
    fn forget(&mut self) {
        self.clear();
        self.checked_at = None;
    }

    /// A still-valid entry, and whether its last-use stamp is due (then marked as written).
    fn hit(&mut self, hash: &[u8], now: OffsetDateTime) -> Option<(ApiCaller, bool)> {
        let entry = self.entries.get_mut(hash)?;
        if now - entry.cached_at >= CACHE_TTL || now < entry.cached_at {
            return None;
        }
        let touch = now - entry.touched_at >= TOUCH_INTERVAL;
        if touch {
            entry.touched_at = now;
        }
        Some((entry.caller.clone(), touch))
    }
}

impl Core {
    /// Creates an API key for `tenant` (created if new). The key is returned once; only its
    /// keyed hash is stored.
    pub async fn create_api_key(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<(ApiKeyRecord, String), CoreError> {
        self.create_key(tenant, name, None, &RequestMeta::default())
            .await
    }

    /// As [`Core::create_api_key`], for an operator at the console (audited under their name).
    pub async fn console_create_api_key(
        &self,
        ctx: &SessionContext,
        tenant: &str,
        name: &str,
        meta: &RequestMeta,
    ) -> Result<(ApiKeyRecord, String), CoreError> {
        self.require_console(ctx).await?;
        self.create_key(tenant, name, Some(ctx.account.id), meta)
            .await
    }

    pub async fn console_api_keys(
        &self,
        ctx: &SessionContext,
    ) -> Result<Vec<ApiKeyInfo>, CoreError> {
        self.require_console(ctx).await?;
        self.list_api_keys().await
    }

    /// As [`Core::revoke_api_key`], for an operator at the console (audited under their name).
    pub async fn console_revoke_api_key(
        &self,
        ctx: &SessionContext,
        id: Uuid,
        reason: &str,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        self.require_console(ctx).await?;
        self.revoke_key(id, reason, Some(ctx.account.id), meta)
            .await
    }

    async fn create_key(
        &self,
        tenant: &str,
        name: &str,
        by: Option<AccountId>,
        meta: &RequestMeta,
    ) -> Result<(ApiKeyRecord, String), CoreError> {
        let tenant = tenant.trim();
        let name = name.trim();
        if tenant.is_empty() || name.is_empty() || tenant.len() > 100 || name.len() > 100 {
            return Err(CoreError::invalid(
                "name",
                "Tenant and key names must be 1 to 100 characters.",
            ));
        }
        let now = self.clock.now();
        let tenant_id = self.store.ensure_tenant(tenant, self.new_id(), now).await?;
        let raw: [u8; 32] = crate::random::random_bytes(self.random.as_ref());
        let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
        let record = ApiKeyRecord {
            id: self.new_id(),
            tenant_id,
            name: name.to_owned(),
        };
        self.store
            .create_api_key(&record, &self.keyring().token_hash("api_key", &raw), now)
            .await?;
        let audit = self.audit(
            "api_key_created",
            by,
            meta,
            json!({ "key_id": record.id, "tenant_id": tenant_id, "name": name }),
        );
        self.store.record_audit(&audit).await?;
        Ok((record, key))
    }

    /// Every API key, revoked ones included, oldest first.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, CoreError> {
        Ok(self.store.api_keys().await?)
    }

    /// Revokes a key for good. `NotFound` for an unknown key; a key revoked already is bad
    /// input, so its first reason is kept.
    pub async fn revoke_api_key(
        &self,
        id: Uuid,
        reason: &str,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        self.revoke_key(id, reason, None, meta).await
    }

    async fn revoke_key(
        &self,
        id: Uuid,
        reason: &str,
        by: Option<AccountId>,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 || reason.chars().any(char::is_control)
        {
            return Err(CoreError::invalid(
                "reason",
                "Give a reason of 1 to 200 printable characters.",
            ));
        }
        match self
            .store
            .revoke_api_key(id, reason, self.clock.now())
            .await?
        {
            Revoked::Now => {}
            Revoked::Already => {
                return Err(CoreError::invalid("id", "This API key is revoked already."));
            }
            Revoked::UnknownKey => return Err(CoreError::NotFound),
        }
        // This node stops at once; the others when they next check the revision.
        self.api_keys.lock().forget();
        let audit = self.audit(
            "api_key_revoked",
            by,
            meta,
            json!({ "key_id": id, "reason": reason }),
        );
        self.store.record_audit(&audit).await?;
        Ok(())
    }

    pub async fn authenticate_api_key(&self, presented: &str) -> Result<ApiCaller, CoreError> {
        let raw = presented
            .trim()
            .strip_prefix(KEY_PREFIX)
            .and_then(decode_token)
            .ok_or(CoreError::Unauthenticated)?;
        let hash = self.keyring().token_hash("api_key", &raw);
        let now = self.clock.now();
        self.validate_key_cache(now).await?;
        let hit = self.api_keys.lock().hit(&hash, now);
        if let Some((caller, touch)) = hit {
            if touch {
                self.touch_api_key(caller.key_id, now).await;
            }
            return Ok(caller);
        }
        let epoch = self.api_keys.lock().epoch;
        let record = self
            .store
            .api_key_by_hash(&hash)
            .await?
            .ok_or(CoreError::Unauthenticated)?;
        let caller = ApiCaller {
            key_id: record.id,
            tenant_id: record.tenant_id,
        };
        self.touch_api_key(caller.key_id, now).await;
        let mut cache = self.api_keys.lock();
        if cache.epoch == epoch {
            if cache.entries.len() >= CACHE_MAX {
                cache.clear();
            }
            let entry = Entry {
                caller: caller.clone(),
                cached_at: now,
                touched_at: now,
            };
            cache.entries.insert(hash, entry);
        }
        Ok(caller)
    }

    /// Drops the cached keys when the database says a key was revoked or deleted since they
    /// were cached. Asks at most once a second; the request that finds the check due asks,
    /// the others meanwhile trust the check made less than a second ago.
    async fn validate_key_cache(&self, now: OffsetDateTime) -> Result<(), CoreError> {
        {
            let mut cache = self.api_keys.lock();
            let due = cache
                .checked_at
                .is_none_or(|at| now - at >= REVISION_CHECK || now < at);
            if !due {
                return Ok(());
            }
            cache.checked_at = Some(now);
        }
        let revision = match self.store.api_key_revision().await {
            Ok(r) => r,
            Err(e) => {
                // Unchecked entries must not outlive the check that failed.
                self.api_keys.lock().forget();
                return Err(e.into());
            }
        };
        let mut cache = self.api_keys.lock();
        if cache.revision != Some(revision) {
            cache.clear();
            cache.revision = Some(revision);
        }
        Ok(())
    }

    /// Stamps the key's last use. A failure costs only the stamp, never the request.
    async fn touch_api_key(&self, id: Uuid, now: OffsetDateTime) {
        if let Err(e) = self
            .store
            .touch_api_key(id, now, now - TOUCH_INTERVAL)
            .await
        {
            tracing::warn!(key_id = %id, error = %e, "could not record an API key's last use");
        }
    }
}
