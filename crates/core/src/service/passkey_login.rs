//! Signing in with a passkey alone: a discoverable credential with user verification is
//! possession and a PIN or biometric at once, and phishing-resistant.

use super::Core;
use super::webauthn::{CeremonyStart, REJECTED, SUSPICIOUS, json_error};
use crate::error::CoreError;
use crate::model::*;
use secrecy::SecretString;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PublicKeyCredential, WebauthnError,
};

impl Core {
    /// Starts a sign-in with any passkey the browser holds for us. The web layer binds the
    /// ceremony to the browser with a cookie.
    pub async fn passkey_begin(&self) -> Result<CeremonyStart, CoreError> {
        let (rcr, state) = self
            .relying_party()?
            .start_discoverable_authentication()
            .map_err(|e| CoreError::Internal(format!("webauthn: {e}")))?;
        let options = serde_json::to_value(&rcr).map_err(json_error)?;
        let state = serde_json::to_string(&state).map_err(json_error)?;
        self.start_ceremony("passkey", None, None, state, options)
            .await
    }

    /// A passkey with user verification is two factors in one (possession and PIN or
    /// biometrics), and phishing-resistant: a full session with `amr` hwk/swk + user + mfa,
    /// recording this browser's visit (`device`: its device cookie) with it.
    pub async fn passkey_finish(
        &self,
        ceremony: Uuid,
        response: serde_json::Value,
        device: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<(SecretString, Session), CoreError> {
        let state = self.take(ceremony, "passkey", None, None).await?;
        let state: DiscoverableAuthentication = serde_json::from_str(&state).map_err(json_error)?;
        let assertion: PublicKeyCredential =
            serde_json::from_value(response).map_err(json_error)?;
        let rp = self.relying_party()?;
        let (user, credential_id) = rp
            .identify_discoverable_authentication(&assertion)
            .map_err(|e| self.rejected("passkey", e))?;
        let stored = self
            .store
            .webauthn_credential(credential_id)
            .await?
            .filter(|c| c.owner == Owner::Account(user).key() && c.discoverable)
            .ok_or(CoreError::KeyRejected(REJECTED))?;
        let account = self
            .store
            .account_by_id(user)
            .await?
            .filter(|a| a.is_verified() && !a.is_locked())
            .ok_or(CoreError::KeyRejected(REJECTED))?;
        let owner = Owner::Account(account.id);
        if stored.suspicious_at.is_some() {
            return Err(CoreError::KeyRejected(SUSPICIOUS));
        }
        let mut key: Passkey = serde_json::from_str(&stored.passkey).map_err(json_error)?;
        let result = match rp.finish_discoverable_authentication_v2(&assertion, state, &key) {
            Ok(r) => r,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                self.block_key(&owner, Some(&account), &stored.credential_id, meta)
                    .await?;
                return Err(CoreError::KeyRejected(SUSPICIOUS));
            }
            Err(e) => return Err(self.rejected("passkey", e)),
        };
        key.update_credential(&result);
        let key_json = serde_json::to_string(&key).map_err(json_error)?;
        if !self
            .store
            .record_webauthn_use(
                result.cred_id(),
                result.counter(),
                &key_json,
                self.clock.now(),
                None,
            )
            .await?
        {
            return Err(CoreError::KeyRejected(REJECTED));
        }
        let mut amr =
            crate::factor::webauthn::amr(result.backup_eligible(), result.user_verified());
        amr.push("mfa".into());
        let visit = self.passkey_visit(&account, device, meta).await?;
        self.start_session(&account, SessionKind::Full, amr, meta, visit.map(|d| *d))
            .await
    }
}
