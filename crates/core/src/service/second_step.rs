//! The second step of login, and step-up for sensitive changes.

use super::{Checked, Core, OnSuccess, SessionContext};
use crate::error::CoreError;
use crate::mail;
use crate::model::{Account, Effects, FactorStatus, Owner, RequestMeta, Session, SessionKind};
use crate::ports::SessionSwap;
use secrecy::SecretString;
use serde_json::json;

impl Core {
    /// The account's second-factor methods, the last used first; empty means no 2FA.
    pub async fn second_factor_methods(&self, account: &Account) -> Result<Vec<String>, CoreError> {
        let owner = Owner::Account(account.id);
        let (factors, backup_codes_left) = self
            .store
            .factors_and_backup_codes_left(&owner.key())
            .await?;
        let mut factors: Vec<_> = factors
            .into_iter()
            .filter(|f| f.status == FactorStatus::Active)
            .collect();
        if factors.is_empty() {
            return Ok(Vec::new());
        }
        factors.sort_by_key(|f| std::cmp::Reverse(f.last_used_at));
        let mut methods: Vec<String> = Vec::new();
        for f in factors {
            if !methods.contains(&f.kind) {
                methods.push(f.kind);
            }
        }
        if backup_codes_left > 0 {
            methods.push("backup_code".into());
        }
        Ok(methods)
    }

    /// Operators the policy holds to phishing-resistant sign-in may complete the second step
    /// only with a key that verified the user (`used`; `None` refuses anything before it is
    /// tried).
    pub(super) async fn require_key_if_bound(
        &self,
        account: &Account,
        used: Option<&super::CodeUse>,
    ) -> Result<(), CoreError> {
        if !self.keys_only(account).await? {
            return Ok(());
        }
        match used {
            Some(super::CodeUse::Key {
                user_verified: true,
                ..
            }) => Ok(()),
            _ => Err(CoreError::PolicyForbids(
                "Operator accounts sign in with their passkey: use “Sign in with a passkey” on the sign-in page.",
            )),
        }
    }

    /// A partial session (password done, second factor pending), for the second-step pages.
    pub async fn authenticate_partial(&self, token: &str) -> Result<SessionContext, CoreError> {
        let ctx = self.resolve_session(token).await?;
        if ctx.session.kind != SessionKind::Partial {
            return Err(CoreError::Unauthenticated);
        }
        Ok(ctx)
    }

    /// Completes login with a code or backup code. The partial session is replaced by a new
    /// full session (new token), so nothing learned before the second step carries over.
    /// Returns the new token and session, and the backup codes left when one was used.
    pub async fn complete_second_factor(
        &self,
        partial_token: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<(SecretString, Session, Option<u32>), CoreError> {
        let ctx = self.authenticate_partial(partial_token).await?;
        // Refused before anything is checked or consumed.
        self.require_key_if_bound(&ctx.account, None).await?;
        // Made ready for a TOTP code, the usual one, so that its step and the session swap
        // commit together; any other code swaps in a commit of its own.
        let totp = super::CodeUse::Totp {
            factor_id: uuid::Uuid::nil(),
        };
        let (token, swap) = self.full_session_after(&ctx, &totp, meta).await?;
        // The sign-in's own tries are paid first; once they are all taken nothing is checked.
        // Taken is not failed (one of them may be the right code, still being checked): the
        // try that fails last ends the sign-in.
        let limit = self.settings.partial_session_attempts;
        let Some(tried) = self
            .store
            .reserve_session_attempt(ctx.session.id, limit)
            .await?
        else {
            return Err(CoreError::SecondStepVoid);
        };
        let owner = Owner::Account(ctx.account.id);
        let checked = match self
            .use_second_factor(
                &owner,
                Some(ctx.account.id),
                code,
                Some(ctx.session.id),
                meta,
                OnSuccess::SignIn(&swap),
            )
            .await
        {
            // Not tried after all: the account's budget refused it.
            Err(e @ CoreError::TooManyAttempts { .. }) => {
                self.store.give_back_session_attempt(ctx.session.id).await?;
                return Err(e);
            }
            other => other?,
        };
        match checked {
            // Swapped with the step's commit (`OnSuccess::SignIn`).
            Checked::Used(super::CodeUse::Totp { .. }) => Ok((token, swap.full.session, None)),
            Checked::Used(other) => self.finish_second_step(&ctx, other, meta).await,
            Checked::Replayed => {
                self.store.give_back_session_attempt(ctx.session.id).await?;
                Err(CoreError::WrongCode)
            }
            Checked::Wrong if tried >= limit => {
                self.void_second_step(&ctx, "too_many_wrong_codes", meta)
                    .await?;
                Err(CoreError::SecondStepVoid)
            }
            Checked::Wrong => Err(CoreError::WrongCode),
        }
    }

    /// The full session that replaces `ctx`'s partial one after `used`, and the swap that
    /// records it. Every way through the second step gets its session here: the one place
    /// the operator rule holds.
    async fn full_session_after(
        &self,
        ctx: &SessionContext,
        used: &super::CodeUse,
        meta: &RequestMeta,
    ) -> Result<(SecretString, SessionSwap), CoreError> {
        self.require_key_if_bound(&ctx.account, Some(used)).await?;
        Ok(self.swap_to_full(
            &ctx.account,
            ctx.session.id,
            used.amr(),
            used.method(),
            meta,
        ))
    }

    /// A new full session for `account` (token and record) to replace session `partial`, with
    /// its `login_succeeded` row naming how the sign-in was completed (`method`).
    pub(super) fn swap_to_full(
        &self,
        account: &Account,
        partial: crate::model::SessionId,
        amr: Vec<String>,
        method: &str,
        meta: &RequestMeta,
    ) -> (SecretString, SessionSwap) {
        let (token, full) = self.new_session(account, SessionKind::Full, amr, meta);
        let audit = self.audit(
            "login_succeeded",
            Some(account.id),
            meta,
            json!({ "session_id": full.session.id, "amr": full.session.amr, "method": method }),
        );
        let swap = SessionSwap {
            partial,
            full,
            audit,
        };
        (token, swap)
    }

    /// Replaces the partial session by a full one after a good second factor.
    pub(super) async fn finish_second_step(
        &self,
        ctx: &SessionContext,
        used: super::CodeUse,
        meta: &RequestMeta,
    ) -> Result<(SecretString, Session, Option<u32>), CoreError> {
        let (token, swap) = self.full_session_after(ctx, &used, meta).await?;
        if !self.store.complete_partial_session(&swap).await? {
            return Err(CoreError::Unauthenticated);
        }
        let remaining = match used {
            super::CodeUse::BackupCode { remaining } => {
                self.notify_backup_code_used(&ctx.account, remaining, meta)
                    .await?;
                Some(remaining)
            }
            super::CodeUse::Totp { .. }
            | super::CodeUse::Sent { .. }
            | super::CodeUse::Key { .. } => None,
        };
        Ok((token, swap.full.session, remaining))
    }

    async fn notify_backup_code_used(
        &self,
        account: &Account,
        remaining: u32,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let item = self.outbox_item(
            "backup_code_used",
            &mail::backup_code_used(&self.branding(), &account.email, remaining),
        )?;
        let audit = self.audit(
            "backup_code_used",
            Some(account.id),
            meta,
            json!({ "remaining": remaining }),
        );
        self.store.enqueue(&item, Some(&audit)).await?;
        self.forget_all_trusted_browsers(account.id).await?;
        self.outbox_wakeup.notify_one();
        Ok(())
    }

    /// Ends a second step that failed, and tells the owner someone has their password.
    async fn void_second_step(
        &self,
        ctx: &SessionContext,
        why: &str,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let effects = Effects {
            audit: self.audit(
                "second_step_voided",
                Some(ctx.account.id),
                meta,
                json!({ "reason": why }),
            ),
            mail: Some(self.outbox_item(
                "second_step_failed",
                &mail::second_step_failed(&self.branding(), &ctx.account.email),
            )?),
            new_stamp: None,
        };
        self.store
            .void_partial_session(ctx.session.id, &effects)
            .await?;
        self.outbox_wakeup.notify_one();
        Ok(())
    }

    /// Housekeeping: second steps abandoned past their time. Each owner is told once.
    pub async fn notify_abandoned_second_steps(&self) -> Result<usize, CoreError> {
        let accounts = self
            .store
            .take_expired_partial_sessions(self.clock.now())
            .await?;
        let mut told = std::collections::HashSet::new();
        for id in accounts {
            if !told.insert(id) {
                continue;
            }
            let Some(account) = self.store.account_by_id(id).await? else {
                continue;
            };
            let item = self.outbox_item(
                "second_step_failed",
                &mail::second_step_failed(&self.branding(), &account.email),
            )?;
            let audit = self.audit(
                "second_step_abandoned",
                Some(id),
                &RequestMeta::default(),
                json!({}),
            );
            self.store.enqueue(&item, Some(&audit)).await?;
        }
        if !told.is_empty() {
            self.outbox_wakeup.notify_one();
        }
        Ok(told.len())
    }

    /// Whether this session proved a second factor recently enough for a sensitive change.
    /// Accounts without any factor have nothing to prove.
    pub async fn require_step_up(&self, ctx: &SessionContext) -> Result<(), CoreError> {
        if self.second_factor_methods(&ctx.account).await?.is_empty() {
            return Ok(());
        }
        let fresh = ctx
            .session
            .step_up_at
            .is_some_and(|at| self.clock.now() - at <= self.settings.step_up_window);
        if fresh {
            Ok(())
        } else {
            Err(CoreError::StepUpRequired)
        }
    }

    /// Records a second factor proven inside a full session: the step-up time, and its
    /// methods added to the session's `amr` (so that forward-auth and OIDC see them).
    pub(super) async fn record_step_up(
        &self,
        ctx: &SessionContext,
        used: &[String],
    ) -> Result<(), CoreError> {
        let mut amr = ctx.session.amr.clone();
        for m in used {
            if !amr.contains(m) {
                amr.push(m.clone());
            }
        }
        // `mfa` last, as logins write it.
        if amr.iter().any(|m| m == "mfa") {
            amr.retain(|m| m != "mfa");
            amr.push("mfa".into());
        }
        self.store
            .mark_step_up(ctx.session.id, self.clock.now(), &amr)
            .await?;
        Ok(())
    }

    /// Proves a second factor again inside a full session.
    pub async fn step_up(
        &self,
        ctx: &SessionContext,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        // Operators held to passkeys prove them again with the key, never with a code; the
        // code is refused before anything is consumed or counted.
        if self.keys_only(&ctx.account).await? {
            return Err(CoreError::PolicyForbids(
                "Operator accounts confirm with their passkey: use “Use your security key or passkey”.",
            ));
        }
        let owner = Owner::Account(ctx.account.id);
        match self
            .use_second_factor(
                &owner,
                Some(ctx.account.id),
                code,
                Some(ctx.session.id),
                meta,
                OnSuccess::Audit(None),
            )
            .await?
        {
            Checked::Used(used) => {
                self.record_step_up(ctx, &used.amr()).await?;
                let audit = self.audit(
                    "step_up",
                    Some(ctx.account.id),
                    meta,
                    json!({ "method": used.method() }),
                );
                self.store.record_audit(&audit).await?;
                if let super::CodeUse::BackupCode { remaining } = used {
                    self.notify_backup_code_used(&ctx.account, remaining, meta)
                        .await?;
                }
                Ok(())
            }
            Checked::Wrong | Checked::Replayed => Err(CoreError::WrongCode),
        }
    }
}
