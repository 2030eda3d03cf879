//! Security keys and passkeys: registering them from Security settings, using them as the
//! second step or for step-up, and signing in with a passkey alone. Every ceremony's state is
//! kept on the server, used once, and bound to the session (or browser) that started it.

use super::enrollment::{Changer, clean_label};
use super::{CodeUse, Core, SessionContext};
use crate::error::CoreError;
use crate::factor::totp;
use crate::mail;
use crate::model::*;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;
use webauthn_rs::prelude::{
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, SecurityKey,
    SecurityKeyAuthentication, SecurityKeyRegistration, WebauthnError,
};

/// A roaming or platform authenticator used as a second factor (user verification preferred),
/// or a passkey: discoverable, user verification required, good for signing in alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    SecurityKey,
    Passkey,
}

/// What the browser needs to start `navigator.credentials.create()` / `.get()`.
#[derive(Debug, Clone)]
pub struct CeremonyStart {
    pub id: Uuid,
    /// webauthn-rs `CreationChallengeResponse` / `RequestChallengeResponse`, as JSON.
    pub options: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", content = "state", rename_all = "snake_case")]
enum Registration {
    SecurityKey(SecurityKeyRegistration),
    Passkey(PasskeyRegistration),
}

pub(super) const REJECTED: &str = "This security key or passkey could not be verified. Try again.";
const ALREADY: &str = "This security key or passkey is already registered.";
pub(super) const SUSPICIOUS: &str =
    "This security key reported an old signature counter and was blocked. Use another method.";

pub(super) fn json_error(_: serde_json::Error) -> CoreError {
    CoreError::KeyRejected(REJECTED)
}

impl Core {
    fn relying_party_result(&self) -> &Result<Arc<webauthn_rs::Webauthn>, String> {
        self.relying_party.get_or_init(|| {
            let rp = crate::factor::webauthn::relying_party(
                &self.settings.relying_party,
                &self.settings.public_url,
                &self.settings.product_name,
            );
            if let Err(e) = &rp {
                tracing::warn!(error = %e, "security keys and passkeys are off: browsers need the site at a domain name (http://localhost:8080 in development), not an IP address");
            }
            rp.map(Arc::new)
        })
    }

    /// Whether security keys and passkeys can be used here: browsers refuse an IP address as
    /// the relying party, so a server reached by IP cannot offer them.
    pub fn webauthn_available(&self) -> bool {
        self.relying_party_result().is_ok()
    }

    pub(super) fn relying_party(&self) -> Result<Arc<webauthn_rs::Webauthn>, CoreError> {
        self.relying_party_result().clone().map_err(|_| {
            CoreError::KeyRejected("Security keys and passkeys are not available on this server.")
        })
    }

    pub(super) async fn start_ceremony(
        &self,
        kind: &'static str,
        owner: Option<&Owner>,
        session: Option<SessionId>,
        state: String,
        options: serde_json::Value,
    ) -> Result<CeremonyStart, CoreError> {
        let now = self.clock.now();
        let id = self.new_id();
        self.store
            .create_ceremony(&WebauthnCeremony {
                id,
                owner: owner.map(Owner::key),
                session_id: session,
                kind,
                state,
                created_at: now,
                expires_at: now + self.settings.webauthn_ceremony_ttl,
            })
            .await?;
        Ok(CeremonyStart { id, options })
    }

    pub(super) async fn take(
        &self,
        id: Uuid,
        kind: &str,
        owner: Option<&Owner>,
        session: Option<SessionId>,
    ) -> Result<String, CoreError> {
        self.store
            .take_ceremony(
                id,
                kind,
                owner.map(Owner::key).as_deref(),
                session,
                self.clock.now(),
            )
            .await?
            .ok_or(CoreError::KeyRejected(
                "This request has expired or was already used. Try again.",
            ))
    }

    // ---- registration (Security settings) ----

    pub async fn account_begin_key_registration(
        &self,
        ctx: &SessionContext,
        kind: KeyKind,
        meta: &crate::model::RequestMeta,
    ) -> Result<CeremonyStart, CoreError> {
        self.require_may_add(ctx, "webauthn").await?;
        // Held to phishing-resistant sign-in, an operator signs in with a passkey (discoverable,
        // user verification required); a plain security key would lock it out.
        if kind != KeyKind::Passkey && self.keys_only(&ctx.account).await? {
            return Err(CoreError::PolicyForbids(
                "Operator accounts add a passkey (a key or device that asks for your PIN or biometrics).",
            ));
        }
        let start = self
            .begin_key_registration(
                &*self.relying_party()?,
                &Owner::Account(ctx.account.id),
                Some(ctx.session.id),
                ctx.account.id,
                &ctx.account.email,
                kind,
            )
            .await?;
        // The enrollment funnel's first step, as for authenticator apps and code factors.
        let audit = self.audit(
            "factor_enrollment_started",
            Some(ctx.account.id),
            meta,
            serde_json::json!({ "type": "webauthn", "passkey": kind == KeyKind::Passkey }),
        );
        self.store.record_audit(&audit).await?;
        Ok(start)
    }

    /// `user_id` and `user_name` are what the authenticator stores (the handle that passkey
    /// sign-in returns, and the name shown in the browser's account picker).
    pub(super) async fn begin_key_registration(
        &self,
        rp: &webauthn_rs::Webauthn,
        owner: &Owner,
        session: Option<SessionId>,
        user_id: Uuid,
        user_name: &str,
        kind: KeyKind,
    ) -> Result<CeremonyStart, CoreError> {
        let exclude = self
            .store
            .webauthn_credentials_of(&owner.key())
            .await?
            .into_iter()
            .map(|c| c.credential_id)
            .collect::<Vec<_>>();
        let email = user_name;
        let (mut options, state) = match kind {
            KeyKind::SecurityKey => {
                let (ccr, state) = rp
                    .start_securitykey_registration(
                        user_id,
                        email,
                        email,
                        Some(exclude),
                        None,
                        None,
                    )
                    .map_err(|e| CoreError::Internal(format!("webauthn: {e}")))?;
                (
                    serde_json::to_value(&ccr).map_err(json_error)?,
                    Registration::SecurityKey(state),
                )
            }
            KeyKind::Passkey => {
                let (ccr, state) = rp
                    .start_passkey_registration(user_id, email, email, Some(exclude))
                    .map_err(|e| CoreError::Internal(format!("webauthn: {e}")))?;
                (
                    serde_json::to_value(&ccr).map_err(json_error)?,
                    Registration::Passkey(state),
                )
            }
        };
        if !self.settings.relying_party.allowed_aaguids.is_empty()
            && let Some(pk) = options.pointer_mut("/publicKey")
        {
            // With attestation "none" browsers may blank the AAGUID, and the policy could not
            // tell models apart.
            pk["attestation"] = json!("direct");
        }
        if kind == KeyKind::SecurityKey
            && let Some(ext) = options
                .pointer_mut("/publicKey/extensions")
                .and_then(|e| e.as_object_mut())
        {
            // Chromium refuses credProtect "userVerificationRequired" for a credential whose
            // user verification is only preferred (NotSupportedError), which would make every
            // security key fail to register.
            ext.remove("credentialProtectionPolicy");
            ext.remove("enforceCredentialProtectionPolicy");
        }
        if kind == KeyKind::Passkey {
            // Signing in without a password needs the authenticator to store the credential
            // (a discoverable credential); webauthn-rs leaves that "discouraged" by default.
            if let Some(sel) = options.pointer_mut("/publicKey/authenticatorSelection") {
                sel["residentKey"] = json!("required");
                sel["requireResidentKey"] = json!(true);
            }
        }
        let state = serde_json::to_string(&state).map_err(json_error)?;
        self.start_ceremony("register", Some(owner), session, state, options)
            .await
    }

    /// Verifies the browser's answer and adds the key. The first factor of an account also
    /// creates its backup codes, returned to show once.
    pub async fn account_finish_key_registration(
        &self,
        ctx: &SessionContext,
        ceremony: Uuid,
        name: &str,
        response: serde_json::Value,
        meta: &RequestMeta,
    ) -> Result<Option<Vec<String>>, CoreError> {
        self.require_step_up(ctx).await?;
        let owner = Owner::Account(ctx.account.id);
        let (_, codes) = self
            .finish_key_registration(
                &*self.relying_party()?,
                &owner,
                Some(ctx.session.id),
                Changer::Session(ctx),
                ceremony,
                name,
                response,
                meta,
            )
            .await?;
        // Registering a key proves holding it, not how it verified the user: no key `amr`.
        self.record_step_up(ctx, &["pwd".into(), "mfa".into()])
            .await?;
        Ok(codes)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn finish_key_registration(
        &self,
        rp: &webauthn_rs::Webauthn,
        owner: &Owner,
        session: Option<SessionId>,
        changer: Changer<'_>,
        ceremony: Uuid,
        name: &str,
        response: serde_json::Value,
        meta: &RequestMeta,
    ) -> Result<(Uuid, Option<Vec<String>>), CoreError> {
        let state = self
            .take(ceremony, "register", Some(owner), session)
            .await?;
        let state: Registration = serde_json::from_str(&state).map_err(json_error)?;
        let reg: RegisterPublicKeyCredential =
            serde_json::from_value(response).map_err(json_error)?;
        let (credential_id, key_json, discoverable, default_name) = match &state {
            Registration::SecurityKey(s) => {
                let key = rp
                    .finish_securitykey_registration(&reg, s)
                    .map_err(|e| self.rejected("registration", e))?;
                (
                    key.cred_id().to_vec(),
                    serde_json::to_string(&key).map_err(json_error)?,
                    false,
                    "Security key",
                )
            }
            Registration::Passkey(s) => {
                let key = rp
                    .finish_passkey_registration(&reg, s)
                    .map_err(|e| self.rejected("registration", e))?;
                (
                    key.cred_id().to_vec(),
                    serde_json::to_string(&key).map_err(json_error)?,
                    true,
                    "Passkey",
                )
            }
        };
        let aaguid = crate::factor::webauthn::reported_aaguid(&reg.response.attestation_object);
        let allowed = &self.settings.relying_party.allowed_aaguids;
        if !allowed.is_empty() && !aaguid.is_some_and(|a| allowed.contains(&a)) {
            tracing::info!(aaguid = ?aaguid, "authenticator model not on the allow-list");
            return Err(CoreError::KeyRejected(
                "This kind of security key is not allowed here. Use one your organisation approved.",
            ));
        }
        let label = clean_label(name, default_name)?;
        let now = self.clock.now();
        let id = self.new_id();
        let sealed = self
            .keyring()
            .seal(self.random.as_ref(), id.as_bytes(), &credential_id);
        let factors = self.store.factors_of(&owner.key()).await?;
        let first = !factors.iter().any(|f| f.status == FactorStatus::Active);
        let factor = Factor {
            id,
            owner: owner.key(),
            kind: "webauthn".into(),
            label: label.clone(),
            status: FactorStatus::Active,
            key_id: sealed.key_id,
            secret: sealed.blob,
            params: totp::TotpParams::default(),
            last_step: -1,
            last_drift: 0,
            drift_matches: 0,
            created_at: now,
            expires_at: None,
            confirmed_at: Some(now),
            last_used_at: Some(now),
            hint: Some(
                if discoverable {
                    "passkey"
                } else {
                    "security key"
                }
                .into(),
            ),
        };
        let credential = WebauthnCredential {
            factor_id: id,
            owner: owner.key(),
            credential_id,
            passkey: key_json,
            counter: 0,
            discoverable,
            aaguid: aaguid.filter(|a| !a.is_nil()),
            suspicious_at: None,
        };
        let (codes, hashes) = self.backup_codes_for(first);
        let what = if discoverable {
            format!("A passkey (\"{label}\") was added to your account.")
        } else {
            format!("A security key (\"{label}\") was added to your account.")
        };
        let effects = self.effects(
            changer,
            "factor_added",
            owner,
            &what,
            meta,
            json!({ "factor_id": id, "type": "webauthn", "passkey": discoverable, "backup_codes_created": first }),
        )?;
        match self
            .store
            .add_webauthn_factor(&factor, &credential, &hashes, &effects)
            .await
        {
            Ok(()) => {}
            Err(crate::ports::StoreError::Conflict(_)) => {
                return Err(CoreError::KeyRejected(ALREADY));
            }
            Err(e) => return Err(e.into()),
        }
        self.outbox_wakeup.notify_one();
        Ok((id, first.then_some(codes)))
    }

    pub(super) fn rejected(&self, what: &str, e: WebauthnError) -> CoreError {
        tracing::info!(ceremony = what, error = %e, "WebAuthn response refused");
        match e {
            WebauthnError::CredentialAlteredAlgFromRequest
            | WebauthnError::CredentialAlreadyExists => CoreError::KeyRejected(ALREADY),
            _ => CoreError::KeyRejected(REJECTED),
        }
    }

    // ---- second factor (login, step-up) ----

    async fn begin_key_assertion(
        &self,
        owner: &Owner,
        session: SessionId,
    ) -> Result<CeremonyStart, CoreError> {
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
            .relying_party()?
            .start_securitykey_authentication(&keys)
            .map_err(|e| CoreError::Internal(format!("webauthn: {e}")))?;
        let options = serde_json::to_value(&rcr).map_err(json_error)?;
        let state = serde_json::to_string(&state).map_err(json_error)?;
        self.start_ceremony("authenticate", Some(owner), Some(session), state, options)
            .await
    }

    /// Verifies an assertion against the owner's keys and records the use (counter moved
    /// forward, one conditional UPDATE). A counter that went backwards blocks the key.
    pub(super) async fn finish_key_assertion(
        &self,
        rp: &webauthn_rs::Webauthn,
        owner: &Owner,
        account: Option<&Account>,
        state: &str,
        response: serde_json::Value,
        meta: &RequestMeta,
    ) -> Result<CodeUse, CoreError> {
        let state: SecurityKeyAuthentication = serde_json::from_str(state).map_err(json_error)?;
        let assertion: PublicKeyCredential =
            serde_json::from_value(response).map_err(json_error)?;
        let result = match rp.finish_securitykey_authentication(&assertion, &state) {
            Ok(r) => r,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                self.block_key(owner, account, assertion.get_credential_id(), meta)
                    .await?;
                return Err(CoreError::KeyRejected(SUSPICIOUS));
            }
            Err(e) => return Err(self.rejected("assertion", e)),
        };
        let stored = self
            .store
            .webauthn_credential(result.cred_id())
            .await?
            .filter(|c| c.owner == owner.key() && c.suspicious_at.is_none())
            .ok_or(CoreError::KeyRejected(REJECTED))?;
        let mut key: SecurityKey = serde_json::from_str(&stored.passkey).map_err(json_error)?;
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
            // Another request with a counter at least as high won the race: a replay.
            return Err(CoreError::KeyRejected(REJECTED));
        }
        Ok(CodeUse::Key {
            factor_id: stored.factor_id,
            backup_eligible: result.backup_eligible(),
            user_verified: result.user_verified(),
        })
    }

    pub(super) async fn block_key(
        &self,
        owner: &Owner,
        account: Option<&Account>,
        credential_id: &[u8],
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let Some(stored) = self.store.webauthn_credential(credential_id).await? else {
            return Ok(());
        };
        if stored.owner != owner.key() {
            return Ok(());
        }
        tracing::warn!(factor_id = %stored.factor_id, "WebAuthn signature counter went backwards: key blocked");
        let mail = match account {
            Some(a) => Some(self.outbox_item(
                "factor_changed",
                &mail::factor_changed(
                    &self.branding(),
                    &a.email,
                    "One of your security keys reported a signature counter lower than before, which can mean it was copied. We blocked it. If you still have the key, remove it and add it again; if you did not sign in just now, change your password.",
                ),
            )?),
            None => None,
        };
        let mut detail = json!({ "factor_id": stored.factor_id });
        if account.is_none()
            && let Some(o) = detail.as_object_mut()
        {
            o.insert("owner".into(), json!(owner.key()));
        }
        let effects = Effects {
            audit: self.audit(
                "webauthn_counter_regressed",
                account.map(|a| a.id),
                meta,
                detail,
            ),
            mail,
            new_stamp: None,
        };
        self.store
            .mark_webauthn_suspicious(credential_id, self.clock.now(), &effects)
            .await?;
        self.outbox_wakeup.notify_one();
        Ok(())
    }

    pub async fn second_step_begin_key(
        &self,
        partial_token: &str,
    ) -> Result<CeremonyStart, CoreError> {
        let ctx = self.authenticate_partial(partial_token).await?;
        self.begin_key_assertion(&Owner::Account(ctx.account.id), ctx.session.id)
            .await
    }

    /// Completes login with a security key; failures count like wrong codes.
    pub async fn second_step_finish_key(
        &self,
        partial_token: &str,
        ceremony: Uuid,
        response: serde_json::Value,
        meta: &RequestMeta,
    ) -> Result<(SecretString, Session, Option<u32>), CoreError> {
        let ctx = self.authenticate_partial(partial_token).await?;
        let owner = Owner::Account(ctx.account.id);
        let paid = self.pay_factor_attempt(&owner).await?;
        let state = self
            .take(ceremony, "authenticate", Some(&owner), Some(ctx.session.id))
            .await?;
        match self
            .finish_key_assertion(
                &*self.relying_party()?,
                &owner,
                Some(&ctx.account),
                &state,
                response,
                meta,
            )
            .await
        {
            Ok(used) => {
                self.clear_paid(paid).await?;
                self.finish_second_step(&ctx, used, meta).await
            }
            Err(e @ CoreError::KeyRejected(_)) => {
                self.record_factor_failure(paid, &owner, Some(ctx.account.id), "webauthn", meta)
                    .await?;
                Err(e)
            }
            Err(e) => {
                self.give_back(paid).await?;
                Err(e)
            }
        }
    }

    pub async fn step_up_begin_key(
        &self,
        ctx: &SessionContext,
    ) -> Result<CeremonyStart, CoreError> {
        self.begin_key_assertion(&Owner::Account(ctx.account.id), ctx.session.id)
            .await
    }

    pub async fn step_up_finish_key(
        &self,
        ctx: &SessionContext,
        ceremony: Uuid,
        response: serde_json::Value,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let owner = Owner::Account(ctx.account.id);
        let paid = self.pay_factor_attempt(&owner).await?;
        let state = self
            .take(ceremony, "authenticate", Some(&owner), Some(ctx.session.id))
            .await?;
        match self
            .finish_key_assertion(
                &*self.relying_party()?,
                &owner,
                Some(&ctx.account),
                &state,
                response,
                meta,
            )
            .await
        {
            Ok(used) => {
                self.clear_paid(paid).await?;
                // A key without user verification is not enough for an operator held to
                // passkeys.
                self.require_key_if_bound(&ctx.account, Some(&used)).await?;
                self.record_step_up(ctx, &used.amr()).await?;
                Ok(())
            }
            Err(e @ CoreError::KeyRejected(_)) => {
                self.record_factor_failure(paid, &owner, Some(ctx.account.id), "step_up", meta)
                    .await?;
                Err(e)
            }
            Err(e) => {
                self.give_back(paid).await?;
                Err(e)
            }
        }
    }
}
