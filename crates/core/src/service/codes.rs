//! Checking a second-factor code for any owner (hosted account or API subject): the one place
//! where budgets, replay protection and audit of code checks live.

use super::Core;
use crate::error::CoreError;
use crate::factor::{backup_codes, totp};
use crate::keys::Sealed;
use crate::model::{AuditEvent, Factor, Owner, RequestMeta};
use crate::ports::SessionSwap;
use crate::throttle::BudgetGuard;
use serde_json::json;
use uuid::Uuid;

/// What a correct code was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    Totp {
        factor_id: Uuid,
    },
    BackupCode {
        remaining: u32,
    },
    /// A code sent by SMS or email (`channel` is `sms` or `email`).
    Sent {
        factor_id: Uuid,
        channel: String,
    },
    /// A security key or passkey assertion.
    Key {
        factor_id: Uuid,
        backup_eligible: bool,
        user_verified: bool,
    },
}

impl CodeUse {
    pub fn method(&self) -> &str {
        match self {
            Self::Totp { .. } => "totp",
            Self::BackupCode { .. } => "backup_code",
            Self::Sent { channel, .. } => channel,
            Self::Key { .. } => "webauthn",
        }
    }

    /// RFC 8176 authentication method references for a login completed with this code.
    /// Backup codes have no registered value; email codes count as `otp`.
    pub fn amr(&self) -> Vec<String> {
        if let Self::Key {
            backup_eligible,
            user_verified,
            ..
        } = self
        {
            let mut v = vec!["pwd".to_owned()];
            v.extend(crate::factor::webauthn::amr(
                *backup_eligible,
                *user_verified,
            ));
            v.push("mfa".into());
            return v;
        }
        let second = match self {
            Self::Totp { .. } => "otp",
            Self::BackupCode { .. } => "backup_code",
            Self::Sent { channel, .. } if channel == "sms" => "sms",
            Self::Sent { .. } | Self::Key { .. } => "otp",
        };
        vec!["pwd".into(), second.into(), "mfa".into()]
    }
}

/// What a correct code commits together with its consumption.
#[derive(Debug, Clone, Copy)]
pub(super) enum OnSuccess<'a> {
    /// An audit event, or nothing.
    Audit(Option<&'a AuditEvent>),
    /// A login's second step, prepared for a TOTP code: its step and this session swap go in
    /// one commit, and a TOTP use is only answered once the swap is made. Other kinds of code
    /// consume alone, and the caller swaps.
    SignIn(&'a SessionSwap),
}

impl<'a> OnSuccess<'a> {
    fn audit(self) -> Option<&'a AuditEvent> {
        match self {
            Self::Audit(audit) => audit,
            Self::SignIn(_) => None,
        }
    }
}

impl Core {
    /// What an owner's second-factor budget key is its owner key prefixed with.
    pub(super) const BUDGET_PREFIX: &'static str = "second_factor:";

    pub(super) fn budget_key(owner: &Owner) -> String {
        format!("{}{}", Self::BUDGET_PREFIX, owner.key())
    }

    /// Fails fast when the owner's second-factor budget is spent. `Ok(true)` when earlier
    /// failures are on record (so a success has something to clear).
    pub(super) async fn check_factor_budget(&self, owner: &Owner) -> Result<bool, CoreError> {
        let budget = self.settings.second_factor_budget;
        let record = self.store.attempts(&Self::budget_key(owner)).await?;
        match budget.blocked_for(record, self.clock.now()) {
            Some(retry_after_secs) => Err(CoreError::TooManyAttempts { retry_after_secs }),
            None => Ok(record.is_some()),
        }
    }

    /// Counts one wrong code against the owner, whatever was tried, and audits it.
    pub(super) async fn record_factor_failure(
        &self,
        owner: &Owner,
        account: Option<crate::model::AccountId>,
        what: &str,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let now = self.clock.now();
        let budget = self.settings.second_factor_budget;
        // The store adds the count (`failures`) to the detail.
        let audit = self.audit(
            "second_factor_failed",
            account,
            meta,
            json!({ "owner": owner.key(), "while": what }),
        );
        self.store
            .record_code_failure(&Self::budget_key(owner), now, now - budget.window, &audit)
            .await?;
        Ok(())
    }

    pub(super) fn open_factor_secret(
        &self,
        factor: &Factor,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, CoreError> {
        self.open_sealed(
            factor.id.as_bytes(),
            &Sealed {
                key_id: factor.key_id.clone(),
                blob: factor.secret.clone(),
            },
        )
        .map_err(|e| CoreError::Internal(format!("cannot open factor secret: {e}")))
    }

    pub(super) fn backup_code_hash(&self, normalized: &str) -> Vec<u8> {
        self.keyring()
            .token_hash("backup_code", normalized.as_bytes())
    }

    /// Checks and consumes a code (TOTP of any active factor, or a backup code). `Ok(None)`
    /// for a wrong, replayed or malformed code, already counted and audited. With
    /// [`OnSuccess::SignIn`], a good TOTP code whose partial session was gone meanwhile is
    /// used up and answers [`CoreError::Unauthenticated`].
    pub(super) async fn use_second_factor(
        &self,
        owner: &Owner,
        account: Option<crate::model::AccountId>,
        code: &str,
        session: Option<crate::model::SessionId>,
        meta: &RequestMeta,
        on_success: OnSuccess<'_>,
    ) -> Result<Option<CodeUse>, CoreError> {
        let (factors, budget) = self
            .store
            .code_check_state(&owner.key(), &Self::budget_key(owner))
            .await?;
        self.check_code(
            owner, &factors, budget, account, code, session, meta, on_success,
        )
        .await
    }

    /// [`Core::use_second_factor`] on an owner's active factors and budget record, already read.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn check_code(
        &self,
        owner: &Owner,
        factors: &[Factor],
        budget: Option<crate::model::AttemptRecord>,
        account: Option<crate::model::AccountId>,
        code: &str,
        session: Option<crate::model::SessionId>,
        meta: &RequestMeta,
        on_success: OnSuccess<'_>,
    ) -> Result<Option<CodeUse>, CoreError> {
        let now = self.clock.now();
        if let Some(retry_after_secs) = self.settings.second_factor_budget.blocked_for(budget, now)
        {
            metrics::counter!("twofold_second_factor_checks_total", "method" => "code", "outcome" => "locked_out")
                .increment(1);
            return Err(CoreError::TooManyAttempts { retry_after_secs });
        }
        let had_failures = budget.is_some();
        let guard = BudgetGuard {
            key: Self::budget_key(owner),
            budget: self.settings.second_factor_budget,
        };
        let mut session_gone = false;
        let found = if let Some(normalized) = backup_codes::normalize(code) {
            self.store
                .consume_backup_code(
                    &owner.key(),
                    &self.backup_code_hash(&normalized),
                    now,
                    on_success.audit(),
                    &guard,
                )
                .await?
                .map(|remaining| CodeUse::BackupCode { remaining })
        } else {
            let mut found = None;
            for factor in factors.iter().filter(|f| f.kind == "totp") {
                let secret = self.open_factor_secret(factor)?;
                let Some(m) = totp::verify(
                    &secret,
                    &factor.params,
                    code,
                    now,
                    self.settings.totp_window,
                    Some(factor.last_step),
                ) else {
                    continue;
                };
                // The conditional UPDATE decides: a concurrent request with the same code loses here.
                let consumed = match on_success {
                    OnSuccess::Audit(audit) => self
                        .store
                        .consume_totp_step(factor.id, m.step, m.drift, now, audit, &guard)
                        .await?
                        .then_some(true),
                    OnSuccess::SignIn(swap) => {
                        self.store
                            .sign_in_with_totp_step(factor.id, m.step, m.drift, now, &guard, swap)
                            .await?
                    }
                };
                if let Some(swapped) = consumed {
                    session_gone = !swapped;
                    found = Some(CodeUse::Totp {
                        factor_id: factor.id,
                    });
                    break;
                }
            }
            // Codes sent by SMS or email are only looked up for owners that have such factors,
            // so a TOTP-only check stays at three statements.
            let sent: Vec<Uuid> = factors
                .iter()
                .filter(|f| f.kind == "sms" || f.kind == "email")
                .map(|f| f.id)
                .collect();
            if found.is_none() && !sent.is_empty() {
                found = self
                    .consume_code_of(
                        owner,
                        code,
                        |c| {
                            sent.contains(&c.factor_id)
                                && c.session_id == session
                                && c.purpose != "confirm"
                        },
                        on_success.audit(),
                    )
                    .await?
                    .map(|c| CodeUse::Sent {
                        factor_id: c.factor_id,
                        channel: c.channel,
                    });
            }
            found
        };
        let (method, outcome) = match &found {
            Some(used) => (used.method().to_owned(), "success"),
            None => ("code".to_owned(), "wrong"),
        };
        metrics::counter!("twofold_second_factor_checks_total", "method" => method, "outcome" => outcome)
            .increment(1);
        match &found {
            // A code check stays at three statements (budget, factors, consume) unless there
            // are failures to forget.
            Some(_) if had_failures => self.store.clear_attempts(&Self::budget_key(owner)).await?,
            Some(_) => {}
            None => {
                self.record_factor_failure(owner, account, "verify", meta)
                    .await?
            }
        }
        if session_gone {
            return Err(CoreError::Unauthenticated);
        }
        Ok(found)
    }
}
