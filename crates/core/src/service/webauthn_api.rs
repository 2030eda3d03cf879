//! Security keys for the verification API: registration and assertion ceremonies for a
//! tenant's subjects, on the tenant's own relying party when it has one.

use super::enrollment::Changer;
use super::webauthn::{CeremonyStart, KeyKind, json_error};
use super::{ApiCaller, CodeUse, Core, VerifyResult};
use crate::error::CoreError;
use crate::model::*;
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;
use webauthn_rs::prelude::SecurityKey;

impl Core {
    /// The tenant's own relying party (its app's domain) if set, else ours.
    async fn tenant_relying_party(
        &self,
        caller: &ApiCaller,
    ) -> Result<Arc<webauthn_rs::Webauthn>, CoreError> {
        match self.store.tenant_relying_party(caller.tenant_id).await? {
            Some((id, origins)) => {
                let rp = crate::factor::webauthn::RelyingParty {
                    id,
                    origins,
                    allowed_aaguids: self.settings.relying_party.allowed_aaguids.clone(),
                };
                crate::factor::webauthn::relying_party(
                    &rp,
                    &self.settings.public_url,
                    &self.settings.product_name,
                )
                .map(Arc::new)
                .map_err(CoreError::Internal)
            }
            None => self.relying_party(),
        }
    }

    /// Lets a tenant's app run WebAuthn on its own domain: `rp_id` (a registrable domain) and
    /// the origins of its pages. Checked before it is stored.
    pub async fn set_tenant_relying_party(
        &self,
        tenant: &str,
        rp_id: &str,
        origins: &[String],
    ) -> Result<(), CoreError> {
        if origins.is_empty() {
            return Err(CoreError::invalid("origin", "Give at least one origin."));
        }
        let rp = crate::factor::webauthn::RelyingParty {
            id: rp_id.to_owned(),
            origins: origins.to_vec(),
            allowed_aaguids: Vec::new(),
        };
        crate::factor::webauthn::relying_party(&rp, &self.settings.public_url, "check")
            .map_err(|e| CoreError::invalid("rp_id", e))?;
        if self
            .store
            .set_tenant_relying_party(tenant, Some((rp_id, origins)))
            .await?
        {
            Ok(())
        } else {
            Err(CoreError::NotFound)
        }
    }

    /// Registration options for a subject's new security key (or passkey).
    pub async fn api_begin_key_registration(
        &self,
        caller: &ApiCaller,
        subject: &str,
        kind: KeyKind,
    ) -> Result<CeremonyStart, CoreError> {
        let owner = self.subject_owner(caller, subject, true).await?;
        let Owner::Subject(user_id) = owner else {
            return Err(CoreError::Internal("a subject owner was expected".into()));
        };
        let rp = self.tenant_relying_party(caller).await?;
        self.begin_key_registration(&rp, &owner, None, user_id, subject, kind)
            .await
    }

    /// Verifies the browser's registration; the key is active at once. Returns the first
    /// backup codes for a subject's first factor, as `confirm` does for TOTP.
    pub async fn api_finish_key_registration(
        &self,
        caller: &ApiCaller,
        subject: &str,
        ceremony: Uuid,
        name: &str,
        response: serde_json::Value,
        meta: &RequestMeta,
    ) -> Result<(Uuid, Option<Vec<String>>), CoreError> {
        let owner = self.subject_owner(caller, subject, false).await?;
        let rp = self.tenant_relying_party(caller).await?;
        self.finish_key_registration(
            &rp,
            &owner,
            None,
            Changer::Api,
            ceremony,
            name,
            response,
            meta,
        )
        .await
    }

    pub async fn api_begin_assertion(
        &self,
        caller: &ApiCaller,
        subject: &str,
    ) -> Result<CeremonyStart, CoreError> {
        let owner = self.subject_owner(caller, subject, false).await?;
        let keys: Vec<SecurityKey> = self
            .store
            .webauthn_credentials_of(&owner.key())
            .await?
            .iter()
            .filter_map(|c| serde_json::from_str(&c.passkey).ok())
            .collect();
        if keys.is_empty() {
            return Err(CoreError::NotFound);
        }
        let (rcr, state) = self
            .tenant_relying_party(caller)
            .await?
            .start_securitykey_authentication(&keys)
            .map_err(|e| CoreError::Internal(format!("webauthn: {e}")))?;
        let options = serde_json::to_value(&rcr).map_err(json_error)?;
        let state = serde_json::to_string(&state).map_err(json_error)?;
        self.start_ceremony("authenticate", Some(&owner), None, state, options)
            .await
    }

    /// `Valid` with the factor, or `Invalid` (counted against the subject's budget) for an
    /// assertion that does not verify, a replay or an expired ceremony.
    pub async fn api_finish_assertion(
        &self,
        caller: &ApiCaller,
        subject: &str,
        ceremony: Uuid,
        response: serde_json::Value,
        meta: &RequestMeta,
    ) -> Result<VerifyResult, CoreError> {
        let owner = self.subject_owner(caller, subject, false).await?;
        let paid = self.pay_factor_attempt(&owner).await?;
        let rp = self.tenant_relying_party(caller).await?;
        let result = match self
            .take(ceremony, "authenticate", Some(&owner), None)
            .await
        {
            Ok(state) => {
                self.finish_key_assertion(&rp, &owner, None, &state, response, meta)
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(CodeUse::Key { factor_id, .. }) => {
                self.clear_paid(paid).await?;
                let audit = self.audit(
                    "second_factor_verified",
                    None,
                    meta,
                    json!({ "owner": owner.key(), "factor_id": factor_id, "type": "webauthn" }),
                );
                self.store.record_audit(&audit).await?;
                Ok(VerifyResult::Valid {
                    factor_id: Some(factor_id),
                    kind: "webauthn",
                    backup_codes_left: None,
                })
            }
            Ok(_) => Err(CoreError::Internal("unexpected code use".into())),
            Err(CoreError::KeyRejected(_)) => {
                self.record_factor_failure(paid, &owner, None, "webauthn", meta)
                    .await?;
                Ok(VerifyResult::Invalid)
            }
            Err(e) => {
                self.give_back(paid).await?;
                Err(e)
            }
        }
    }
}
