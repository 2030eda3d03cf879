//! The public entry points for codes sent by SMS and email: the hosted security settings, the
//! login second step and step-up, and the verification API. Each is a thin wrapper that finds
//! the owner and session, then calls the shared logic in `code_factors`.

use super::code_factors::{CodePurpose, SentCode};
use super::enrollment::Changer;
use super::{ApiCaller, Core, SessionContext};
use crate::error::CoreError;
use crate::model::*;
use crate::ports::Channel;
use secrecy::SecretString;
use uuid::Uuid;

/// A factor that receives codes, as the pages and the API show it.
#[derive(Debug, Clone)]
pub struct CodeFactorView {
    pub id: Uuid,
    pub channel: Channel,
    pub label: String,
    pub hint: String,
    pub status: FactorStatus,
    pub expires_at: Option<time::OffsetDateTime>,
}

/// Where the latest code of a waiting second step is.
#[derive(Debug, Clone)]
pub struct SecondStepStatus {
    /// The emailed link was opened and approved (in any browser).
    pub approved: bool,
    pub delivery: Option<DeliveryState>,
    pub channel: Option<String>,
    pub factor_id: Option<Uuid>,
}

fn view(f: &Factor) -> Option<CodeFactorView> {
    let channel = match f.kind.as_str() {
        "sms" => Channel::Sms,
        "email" => Channel::Email,
        _ => return None,
    };
    Some(CodeFactorView {
        id: f.id,
        channel,
        label: f.label.clone(),
        hint: f.hint.clone().unwrap_or_default(),
        status: f.status,
        expires_at: f.expires_at,
    })
}

impl Core {
    async fn code_factors_of(&self, owner: &Owner) -> Result<Vec<CodeFactorView>, CoreError> {
        let now = self.clock.now();
        Ok(self
            .store
            .factors_of(&owner.key())
            .await?
            .iter()
            .filter(|f| f.status == FactorStatus::Active || f.expires_at.is_some_and(|e| e > now))
            .filter_map(view)
            .collect())
    }

    /// The latest challenge a session asked for, if it is still open or was just approved.
    async fn session_challenge(
        &self,
        owner: &Owner,
        session: SessionId,
    ) -> Result<Option<CodeChallenge>, CoreError> {
        Ok(self
            .store
            .open_code_challenges(
                &owner.key(),
                self.clock.now(),
                self.settings.codes.max_attempts,
            )
            .await?
            .into_iter()
            .find(|c| c.session_id == Some(session)))
    }

    // ---- hosted accounts: security settings ----

    /// Registers a phone (`Channel::Sms`) or address (`Channel::Email`) and sends it a code.
    pub async fn account_begin_code_factor(
        &self,
        ctx: &SessionContext,
        channel: Channel,
        destination: &str,
        meta: &RequestMeta,
    ) -> Result<SentCode, CoreError> {
        self.require_may_add(ctx, channel.as_str()).await?;
        let owner = Owner::Account(ctx.account.id);
        let factor = self
            .begin_code_factor(&owner, channel, destination, "", Some(ctx.account.id), meta)
            .await?;
        self.send_code(
            &owner,
            factor.id,
            CodePurpose::Confirm,
            Some(ctx.session.id),
            None,
            Some(ctx.account.id),
            meta,
        )
        .await
    }

    pub async fn account_resend_confirmation(
        &self,
        ctx: &SessionContext,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<SentCode, CoreError> {
        self.require_step_up(ctx).await?;
        self.send_code(
            &Owner::Account(ctx.account.id),
            id,
            CodePurpose::Confirm,
            Some(ctx.session.id),
            None,
            Some(ctx.account.id),
            meta,
        )
        .await
    }

    /// A pending code factor and where its latest code is, for the confirmation page.
    pub async fn account_pending_code_factor(
        &self,
        ctx: &SessionContext,
        id: Uuid,
    ) -> Result<(CodeFactorView, Option<DeliveryState>), CoreError> {
        let owner = Owner::Account(ctx.account.id);
        let factor = self
            .code_factors_of(&owner)
            .await?
            .into_iter()
            .find(|f| f.id == id && f.status == FactorStatus::Pending)
            .ok_or(CoreError::NotFound)?;
        let delivery = match self.session_challenge(&owner, ctx.session.id).await? {
            Some(c) if c.factor_id == id => Some(self.challenge_delivery(&c).await?),
            _ => None,
        };
        Ok((factor, delivery))
    }

    pub async fn account_confirm_code_factor(
        &self,
        ctx: &SessionContext,
        id: Uuid,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<Option<Vec<String>>, CoreError> {
        self.require_step_up(ctx).await?;
        let owner = Owner::Account(ctx.account.id);
        let is_sms = self
            .store
            .factors_of(&owner.key())
            .await?
            .iter()
            .any(|f| f.id == id && f.kind == "sms");
        let codes = self
            .confirm_code_factor(
                &Owner::Account(ctx.account.id),
                id,
                code,
                Changer::Session(ctx),
                meta,
            )
            .await?;
        // Typing the code sent to the new factor proves a second factor just now.
        let method = if is_sms { "sms" } else { "otp" };
        self.record_step_up(ctx, &["pwd".into(), method.into(), "mfa".into()])
            .await?;
        Ok(codes)
    }

    // ---- hosted accounts: second step and step-up ----

    /// The account's active factors that receive codes, for "Text me a code" buttons.
    pub async fn account_code_factors(
        &self,
        account: &Account,
    ) -> Result<Vec<CodeFactorView>, CoreError> {
        Ok(self
            .code_factors_of(&Owner::Account(account.id))
            .await?
            .into_iter()
            .filter(|f| f.status == FactorStatus::Active)
            .collect())
    }

    /// Sends a login code for a waiting second step (by email, with a sign-in link).
    pub async fn second_step_send_code(
        &self,
        partial_token: &str,
        factor_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<SentCode, CoreError> {
        let ctx = self.authenticate_partial(partial_token).await?;
        // No text or mail for an account that may not use the code.
        self.require_key_if_bound(&ctx.account, None).await?;
        self.send_code(
            &Owner::Account(ctx.account.id),
            factor_id,
            CodePurpose::Login,
            Some(ctx.session.id),
            None,
            Some(ctx.account.id),
            meta,
        )
        .await
    }

    pub async fn step_up_send_code(
        &self,
        ctx: &SessionContext,
        factor_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<SentCode, CoreError> {
        self.send_code(
            &Owner::Account(ctx.account.id),
            factor_id,
            CodePurpose::StepUp,
            Some(ctx.session.id),
            None,
            Some(ctx.account.id),
            meta,
        )
        .await
    }

    /// Whether the waiting second step's code went out, and whether its link was approved.
    pub async fn second_step_status(
        &self,
        partial_token: &str,
    ) -> Result<SecondStepStatus, CoreError> {
        let ctx = self.authenticate_partial(partial_token).await?;
        let owner = Owner::Account(ctx.account.id);
        Ok(
            match self.session_challenge(&owner, ctx.session.id).await? {
                Some(c) => SecondStepStatus {
                    approved: c.approved_at.is_some(),
                    delivery: Some(self.challenge_delivery(&c).await?),
                    channel: Some(c.channel),
                    factor_id: Some(c.factor_id),
                },
                None => SecondStepStatus {
                    approved: false,
                    delivery: None,
                    channel: None,
                    factor_id: None,
                },
            },
        )
    }

    /// Completes login in the browser that started it, once its emailed link was approved.
    pub async fn complete_with_sign_in_link(
        &self,
        partial_token: &str,
        meta: &RequestMeta,
    ) -> Result<(SecretString, Session, Option<u32>), CoreError> {
        let ctx = self.authenticate_partial(partial_token).await?;
        let challenge = self
            .store
            .consume_approved_link(ctx.session.id, self.clock.now())
            .await?
            .ok_or(CoreError::WrongCode)?;
        let used = super::CodeUse::Sent {
            factor_id: challenge.factor_id,
            channel: challenge.channel,
        };
        self.finish_second_step(&ctx, used, meta).await
    }

    // ---- verification API ----

    pub async fn api_begin_code_factor(
        &self,
        caller: &ApiCaller,
        subject: &str,
        channel: Channel,
        destination: &str,
        label: &str,
        meta: &RequestMeta,
    ) -> Result<CodeFactorView, CoreError> {
        let owner = self.subject_owner(caller, subject, true).await?;
        let factor = self
            .begin_code_factor(&owner, channel, destination, label, None, meta)
            .await?;
        view(&factor).ok_or_else(|| CoreError::Internal("not a code factor".into()))
    }

    /// Sends a code to a subject's factor: a pending one to confirm it, an active one to verify.
    pub async fn api_send_code(
        &self,
        caller: &ApiCaller,
        subject: &str,
        factor_id: Uuid,
        idempotency_key: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<SentCode, CoreError> {
        if idempotency_key.is_some_and(|k| k.is_empty() || k.len() > 200) {
            return Err(CoreError::invalid(
                "Idempotency-Key",
                "An idempotency key is 1 to 200 characters.",
            ));
        }
        let owner = self.subject_owner(caller, subject, false).await?;
        let factor = self
            .code_factors_of(&owner)
            .await?
            .into_iter()
            .find(|f| f.id == factor_id)
            .ok_or(CoreError::NotFound)?;
        let purpose = match factor.status {
            FactorStatus::Pending => CodePurpose::Confirm,
            FactorStatus::Active => CodePurpose::Verify,
        };
        self.send_code(
            &owner,
            factor_id,
            purpose,
            None,
            idempotency_key,
            None,
            meta,
        )
        .await
    }

    pub async fn api_challenge(
        &self,
        caller: &ApiCaller,
        subject: &str,
        id: Uuid,
    ) -> Result<(CodeChallenge, &'static str, DeliveryState), CoreError> {
        let owner = self.subject_owner(caller, subject, false).await?;
        let c = self
            .store
            .code_challenge(&owner.key(), id)
            .await?
            .ok_or(CoreError::NotFound)?;
        let delivery = self.challenge_delivery(&c).await?;
        let status = c.status(self.clock.now(), self.settings.codes.max_attempts);
        Ok((c, status, delivery))
    }
}
