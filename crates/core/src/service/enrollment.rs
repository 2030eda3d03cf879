//! Adding, naming and removing second factors, and backup codes, for hosted accounts and API
//! subjects alike. Hosted changes need a recent second factor (step-up), bump the security
//! stamp and mail the owner.

use super::{Core, SessionContext};
use crate::error::CoreError;
use crate::factor::{backup_codes, totp};
use crate::mail;
use crate::model::{Effects, Factor, FactorStatus, Owner, RequestMeta, StampChange};
use crate::random::random_bytes;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

/// An authenticator waiting for its first code: everything needed to show the QR page.
#[derive(Clone)]
pub struct PendingTotp {
    pub factor_id: Uuid,
    pub label: String,
    /// Base32 in groups of four, for typing.
    pub secret_text: String,
    pub secret_base32: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for PendingTotp {
    // The secret, the URI and the QR code all carry the seed: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingTotp")
            .field("factor_id", &self.factor_id)
            .field("label", &self.label)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Drop for PendingTotp {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.secret_text.zeroize();
        self.secret_base32.zeroize();
        self.otpauth_uri.zeroize();
    }
}

#[derive(Debug, Clone)]
pub struct FactorView {
    pub id: Uuid,
    pub kind: String,
    pub label: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    /// Masked destination of an `sms`/`email` factor.
    pub hint: Option<String>,
}

/// Who is changing factors; decides the side effects.
#[derive(Clone, Copy)]
pub(super) enum Changer<'a> {
    Session(&'a SessionContext),
    Api,
}

pub(super) fn clean_label(label: &str, default: &str) -> Result<String, CoreError> {
    let label: String = label.trim().chars().filter(|c| !c.is_control()).collect();
    if label.chars().count() > 64 {
        return Err(CoreError::invalid(
            "label",
            "Use at most 64 characters for the name.",
        ));
    }
    Ok(if label.is_empty() {
        default.to_owned()
    } else {
        label
    })
}

impl Core {
    /// A new set of backup codes (when `wanted`) and their keyed hashes, to store.
    pub(super) fn backup_codes_for(&self, wanted: bool) -> (Vec<String>, Vec<Vec<u8>>) {
        if !wanted {
            return (Vec::new(), Vec::new());
        }
        let codes = backup_codes::generate(self.random.as_ref());
        let hashes = codes
            .iter()
            .filter_map(|c| backup_codes::normalize(c))
            .map(|n| self.backup_code_hash(&n))
            .collect();
        (codes, hashes)
    }

    pub(super) fn effects(
        &self,
        changer: Changer<'_>,
        event: &'static str,
        owner: &Owner,
        what: &str,
        meta: &RequestMeta,
        detail: serde_json::Value,
    ) -> Result<Effects, CoreError> {
        match changer {
            Changer::Session(ctx) => Ok(Effects {
                audit: self.audit(event, Some(ctx.account.id), meta, detail),
                mail: Some(self.outbox_item(
                    "factor_changed",
                    &mail::factor_changed(&self.branding(), &ctx.account.email, what),
                )?),
                new_stamp: Some(StampChange {
                    account: ctx.account.id,
                    stamp: self.new_stamp(),
                    keep_session: Some(ctx.session.id),
                }),
            }),
            Changer::Api => {
                let mut detail = detail;
                if let Some(obj) = detail.as_object_mut() {
                    obj.insert("owner".into(), json!(owner.key()));
                }
                Ok(Effects {
                    audit: self.audit(event, None, meta, detail),
                    mail: None,
                    new_stamp: None,
                })
            }
        }
    }

    pub(super) async fn active_factors(&self, owner: &Owner) -> Result<Vec<Factor>, CoreError> {
        Ok(self
            .store
            .factors_of(&owner.key())
            .await?
            .into_iter()
            .filter(|f| f.status == FactorStatus::Active)
            .collect())
    }

    pub(super) async fn factor_views(&self, owner: &Owner) -> Result<Vec<FactorView>, CoreError> {
        Ok(self
            .active_factors(owner)
            .await?
            .into_iter()
            .map(|f| FactorView {
                id: f.id,
                kind: f.kind,
                label: f.label,
                created_at: f.created_at,
                last_used_at: f.last_used_at,
                hint: f.hint,
            })
            .collect())
    }

    fn pending_view(&self, factor: &Factor, account_label: &str) -> Result<PendingTotp, CoreError> {
        let secret = self.open_factor_secret(factor)?;
        let uri = totp::otpauth_uri(
            &secret,
            &factor.params,
            &self.settings.product_name,
            account_label,
        );
        let qr_svg = totp::qr_svg(&uri)
            .ok_or_else(|| CoreError::Internal("QR code could not be drawn".into()))?;
        Ok(PendingTotp {
            factor_id: factor.id,
            label: factor.label.clone(),
            secret_text: totp::grouped_secret(&secret),
            secret_base32: totp::encode_secret(&secret),
            otpauth_uri: uri,
            qr_svg,
            expires_at: factor.expires_at.unwrap_or(factor.created_at),
        })
    }

    /// Creates a pending authenticator with a fresh 160-bit secret, sealed at rest.
    pub(super) async fn begin_totp(
        &self,
        owner: &Owner,
        label: &str,
        account_label: &str,
        account: Option<crate::model::AccountId>,
        meta: &RequestMeta,
    ) -> Result<PendingTotp, CoreError> {
        let label = clean_label(label, "Authenticator app")?;
        let now = self.clock.now();
        let id = self.new_id();
        let secret: zeroize::Zeroizing<[u8; 20]> =
            zeroize::Zeroizing::new(random_bytes(self.random.as_ref()));
        let sealed = self
            .keyring()
            .seal(self.random.as_ref(), id.as_bytes(), secret.as_ref());
        let factor = Factor {
            id,
            owner: owner.key(),
            kind: "totp".into(),
            label,
            status: FactorStatus::Pending,
            key_id: sealed.key_id,
            secret: sealed.blob,
            params: totp::TotpParams::default(),
            last_step: -1,
            last_drift: 0,
            drift_matches: 0,
            created_at: now,
            expires_at: Some(now + self.settings.pending_factor_ttl),
            confirmed_at: None,
            last_used_at: None,
            hint: None,
        };
        let mut detail = json!({ "factor_id": id, "type": "totp" });
        if account.is_none()
            && let Some(o) = detail.as_object_mut()
        {
            o.insert("owner".into(), json!(owner.key()));
        }
        let audit = self.audit("factor_enrollment_started", account, meta, detail);
        self.store.create_factor(&factor, &audit).await?;
        self.pending_view(&factor, account_label)
    }

    /// A pending authenticator that has not expired, to show its QR code again.
    pub(super) async fn pending_totp_of(
        &self,
        owner: &Owner,
        id: Uuid,
        account_label: &str,
    ) -> Result<PendingTotp, CoreError> {
        let now = self.clock.now();
        let factor = self
            .store
            .factors_of(&owner.key())
            .await?
            .into_iter()
            .find(|f| {
                f.id == id
                    && f.status == FactorStatus::Pending
                    && f.expires_at.is_some_and(|e| e > now)
            })
            .ok_or(CoreError::NotFound)?;
        self.pending_view(&factor, account_label)
    }

    /// Activates a pending authenticator with a current code (that step is then used up).
    /// The first factor of an owner also creates its backup codes, returned to show once.
    pub(super) async fn confirm_totp(
        &self,
        owner: &Owner,
        id: Uuid,
        code: &str,
        changer: Changer<'_>,
        meta: &RequestMeta,
    ) -> Result<Option<Vec<String>>, CoreError> {
        let account = match changer {
            Changer::Session(ctx) => Some(ctx.account.id),
            Changer::Api => None,
        };
        let paid = self.pay_factor_attempt(owner).await?;
        let now = self.clock.now();
        let factors = self.store.factors_of(&owner.key()).await?;
        let factor = factors
            .iter()
            .find(|f| {
                f.id == id
                    && f.status == FactorStatus::Pending
                    && f.expires_at.is_some_and(|e| e > now)
            })
            .ok_or(CoreError::NotFound)?;
        let first = !factors.iter().any(|f| f.status == FactorStatus::Active);
        let secret = self.open_factor_secret(factor)?;
        let Some(m) = totp::verify(
            &secret,
            &factor.params,
            code,
            now,
            self.settings.totp_window,
            None,
        ) else {
            self.record_factor_failure(paid, owner, account, "enrollment", meta)
                .await?;
            return Err(CoreError::WrongCode);
        };
        let (codes, hashes) = self.backup_codes_for(first);
        let effects = self.effects(
            changer,
            "factor_added",
            owner,
            &format!(
                "An authenticator app ({}) was added to your account.",
                factor.label
            ),
            meta,
            json!({ "factor_id": id, "type": "totp", "backup_codes_created": first }),
        )?;
        if !self
            .store
            .activate_factor(&owner.key(), id, m.step, now, &hashes, &effects)
            .await?
        {
            return Err(CoreError::NotFound);
        }
        self.clear_paid(paid).await?;
        self.outbox_wakeup.notify_one();
        Ok(first.then_some(codes))
    }

    pub(super) async fn remove_factor_of(
        &self,
        owner: &Owner,
        id: Uuid,
        changer: Changer<'_>,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let factors = self.store.factors_of(&owner.key()).await?;
        let factor = factors
            .iter()
            .find(|f| f.id == id)
            .ok_or(CoreError::NotFound)?;
        let others_active = factors
            .iter()
            .any(|f| f.id != id && f.status == FactorStatus::Active);
        let hint = factor.hint.as_deref().unwrap_or_default();
        let name = match factor.kind.as_str() {
            "sms" => format!("The phone number {hint} (codes by text message)"),
            "email" => format!("The address {hint} (codes by email)"),
            _ => format!("The authenticator \"{}\"", factor.label),
        };
        let what = if others_active {
            format!("{name} was removed from your account.")
        } else {
            format!(
                "{name} was removed. Two-factor authentication is now off for your account, and your backup codes no longer work."
            )
        };
        let effects = self.effects(
            changer,
            "factor_removed",
            owner,
            &what,
            meta,
            json!({ "factor_id": id, "two_factor_off": !others_active }),
        )?;
        if !self
            .store
            .delete_factor(&owner.key(), id, !others_active, &effects)
            .await?
        {
            return Err(CoreError::NotFound);
        }
        self.outbox_wakeup.notify_one();
        Ok(())
    }

    pub(super) async fn new_backup_codes(
        &self,
        owner: &Owner,
        changer: Changer<'_>,
        meta: &RequestMeta,
    ) -> Result<Vec<String>, CoreError> {
        if self.active_factors(owner).await?.is_empty() {
            return Err(CoreError::invalid(
                "backup_codes",
                "Add a second factor before creating backup codes.",
            ));
        }
        let (codes, hashes) = self.backup_codes_for(true);
        let effects = self.effects(
            changer,
            "backup_codes_regenerated",
            owner,
            "A new set of backup codes was created; the old codes no longer work.",
            meta,
            json!({}),
        )?;
        self.store
            .replace_backup_codes(&owner.key(), &hashes, self.clock.now(), &effects)
            .await?;
        self.outbox_wakeup.notify_one();
        Ok(codes)
    }

    // ---- hosted accounts ----

    pub async fn account_factors(
        &self,
        ctx: &SessionContext,
    ) -> Result<Vec<FactorView>, CoreError> {
        self.factor_views(&Owner::Account(ctx.account.id)).await
    }

    pub async fn account_backup_codes_left(&self, ctx: &SessionContext) -> Result<u32, CoreError> {
        Ok(self
            .store
            .backup_codes_left(&Owner::Account(ctx.account.id).key())
            .await?)
    }

    /// Starts adding an authenticator. With a factor already active, a fresh second factor
    /// is required first.
    pub async fn account_begin_totp(
        &self,
        ctx: &SessionContext,
        meta: &RequestMeta,
    ) -> Result<PendingTotp, CoreError> {
        self.require_may_add(ctx, "totp").await?;
        self.begin_totp(
            &Owner::Account(ctx.account.id),
            "",
            &ctx.account.email,
            Some(ctx.account.id),
            meta,
        )
        .await
    }

    pub async fn account_pending_totp(
        &self,
        ctx: &SessionContext,
        id: Uuid,
    ) -> Result<PendingTotp, CoreError> {
        self.pending_totp_of(&Owner::Account(ctx.account.id), id, &ctx.account.email)
            .await
    }

    /// Confirms a new authenticator with a code from it, naming it. Returns the first backup codes.
    pub async fn account_confirm_totp(
        &self,
        ctx: &SessionContext,
        id: Uuid,
        code: &str,
        label: &str,
        meta: &RequestMeta,
    ) -> Result<Option<Vec<String>>, CoreError> {
        self.require_step_up(ctx).await?;
        let owner = Owner::Account(ctx.account.id);
        let label = clean_label(label, "Authenticator app")?;
        self.store.rename_factor(&owner.key(), id, &label).await?;
        let codes = self
            .confirm_totp(&owner, id, code, Changer::Session(ctx), meta)
            .await?;
        // Typing a code from the new authenticator proves a second factor just now.
        self.record_step_up(ctx, &["pwd".into(), "otp".into(), "mfa".into()])
            .await?;
        Ok(codes)
    }

    pub async fn account_rename_factor(
        &self,
        ctx: &SessionContext,
        id: Uuid,
        label: &str,
    ) -> Result<(), CoreError> {
        let label = clean_label(label, "Authenticator app")?;
        if self
            .store
            .rename_factor(&Owner::Account(ctx.account.id).key(), id, &label)
            .await?
        {
            Ok(())
        } else {
            Err(CoreError::NotFound)
        }
    }

    pub async fn account_remove_factor(
        &self,
        ctx: &SessionContext,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        self.require_step_up(ctx).await?;
        self.require_may_remove(ctx, id).await?;
        self.remove_factor_of(
            &Owner::Account(ctx.account.id),
            id,
            Changer::Session(ctx),
            meta,
        )
        .await
    }

    pub async fn account_regenerate_backup_codes(
        &self,
        ctx: &SessionContext,
        meta: &RequestMeta,
    ) -> Result<Vec<String>, CoreError> {
        self.require_step_up(ctx).await?;
        self.new_backup_codes(&Owner::Account(ctx.account.id), Changer::Session(ctx), meta)
            .await
    }
}
