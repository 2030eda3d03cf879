//! Checking a second-factor code for any owner (hosted account or API subject): the one place
//! where payment, replay protection and audit of code checks live.

use super::Core;
use super::attempts::{Paid, REPLAY_GRACE};
use crate::error::CoreError;
use crate::factor::{backup_codes, totp};
use crate::keys::Sealed;
use crate::model::{AuditEvent, Factor, Owner, RequestMeta};
use crate::ports::{Consumed, SessionSwap};
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

/// What a paid-for code check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Checked {
    /// A right code, now used up.
    Used(CodeUse),
    /// A wrong code, kept on the budget.
    Wrong,
    /// A code that a request used moments ago: its attempt was given back.
    Replayed,
}

impl Core {
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

    /// Pays for a code attempt of `owner` (refused with [`CoreError::TooManyAttempts`] once
    /// the budget is spent), then checks and consumes the code (TOTP of any active factor, a
    /// code sent to one, or a backup code). With [`OnSuccess::SignIn`], a good TOTP code whose
    /// partial session was gone meanwhile is used up and answers
    /// [`CoreError::Unauthenticated`].
    pub(super) async fn use_second_factor(
        &self,
        owner: &Owner,
        account: Option<crate::model::AccountId>,
        code: &str,
        session: Option<crate::model::SessionId>,
        meta: &RequestMeta,
        on_success: OnSuccess<'_>,
    ) -> Result<Checked, CoreError> {
        // Reading the factors is not evaluating the guess, so it runs beside the payment.
        let (paid, factors) = tokio::try_join!(self.pay_factor_attempt(owner), async {
            Ok(self.store.code_check_state(&owner.key()).await?)
        })?;
        self.check_code(
            paid, owner, &factors, account, code, session, meta, on_success,
        )
        .await
    }

    /// [`Core::use_second_factor`] once the attempt is paid, on the owner's active factors.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn check_code(
        &self,
        paid: Paid,
        owner: &Owner,
        factors: &[Factor],
        account: Option<crate::model::AccountId>,
        code: &str,
        session: Option<crate::model::SessionId>,
        meta: &RequestMeta,
        on_success: OnSuccess<'_>,
    ) -> Result<Checked, CoreError> {
        let mut session_gone = false;
        let found = match backup_codes::normalize(code) {
            Some(normalized) => self.consume_backup(owner, &normalized, on_success).await?,
            None => {
                let (found, gone) = self.consume_totp(factors, code, on_success).await?;
                session_gone = gone;
                match found {
                    Consumed::No => {
                        self.consume_sent(owner, factors, code, session, on_success)
                            .await?
                    }
                    other => other,
                }
            }
        };
        let (method, outcome) = match &found {
            Consumed::Now(used) => (used.method().to_owned(), "success"),
            Consumed::Already => ("code".to_owned(), "replayed"),
            Consumed::No => ("code".to_owned(), "wrong"),
        };
        metrics::counter!("twofold_second_factor_checks_total", "method" => method, "outcome" => outcome)
            .increment(1);
        let checked = match found {
            Consumed::Now(used) => {
                self.clear_paid(paid).await?;
                Checked::Used(used)
            }
            Consumed::Already => {
                self.give_back(paid).await?;
                Checked::Replayed
            }
            Consumed::No => {
                self.record_factor_failure(paid, owner, account, "verify", meta)
                    .await?;
                Checked::Wrong
            }
        };
        if session_gone {
            return Err(CoreError::Unauthenticated);
        }
        Ok(checked)
    }

    async fn consume_backup(
        &self,
        owner: &Owner,
        normalized: &str,
        on_success: OnSuccess<'_>,
    ) -> Result<Consumed<CodeUse>, CoreError> {
        let now = self.clock.now();
        let found = self
            .store
            .consume_backup_code(
                &owner.key(),
                &self.backup_code_hash(normalized),
                now,
                now - REPLAY_GRACE,
                on_success.audit(),
            )
            .await?;
        Ok(match found {
            Consumed::Now(remaining) => Consumed::Now(CodeUse::BackupCode { remaining }),
            Consumed::Already => Consumed::Already,
            Consumed::No => Consumed::No,
        })
    }

    /// A TOTP code against each authenticator app of the owner, and whether a sign-in's
    /// partial session was gone when its step was consumed.
    async fn consume_totp(
        &self,
        factors: &[Factor],
        code: &str,
        on_success: OnSuccess<'_>,
    ) -> Result<(Consumed<CodeUse>, bool), CoreError> {
        let now = self.clock.now();
        let window = self.settings.totp_window;
        let mut found = Consumed::No;
        for factor in factors.iter().filter(|f| f.kind == "totp") {
            let secret = self.open_factor_secret(factor)?;
            let params = &factor.params;
            let Some(m) = totp::verify(&secret, params, code, now, window, Some(factor.last_step))
            else {
                // A step already used: a replay, unless the code is plainly wrong.
                if totp::verify(&secret, params, code, now, window, None).is_some() {
                    found = Consumed::Already;
                }
                continue;
            };
            // The conditional UPDATE decides: a concurrent request with the same code loses here.
            let consumed = match on_success {
                OnSuccess::Audit(audit) => self
                    .store
                    .consume_totp_step(factor.id, m.step, m.drift, now, audit)
                    .await?
                    .then_some(true),
                OnSuccess::SignIn(swap) => {
                    self.store
                        .sign_in_with_totp_step(factor.id, m.step, m.drift, now, swap)
                        .await?
                }
            };
            match consumed {
                Some(swapped) => {
                    let used = CodeUse::Totp {
                        factor_id: factor.id,
                    };
                    return Ok((Consumed::Now(used), !swapped));
                }
                None => found = Consumed::Already,
            }
        }
        Ok((found, false))
    }

    /// A code sent by SMS or email, looked up only for owners that have such factors, so a
    /// TOTP-only check stays at its few statements.
    async fn consume_sent(
        &self,
        owner: &Owner,
        factors: &[Factor],
        code: &str,
        session: Option<crate::model::SessionId>,
        on_success: OnSuccess<'_>,
    ) -> Result<Consumed<CodeUse>, CoreError> {
        let sent: Vec<Uuid> = factors
            .iter()
            .filter(|f| f.kind == "sms" || f.kind == "email")
            .map(|f| f.id)
            .collect();
        if sent.is_empty() {
            return Ok(Consumed::No);
        }
        let found = self
            .consume_code_of(
                owner,
                code,
                |c| {
                    sent.contains(&c.factor_id) && c.session_id == session && c.purpose != "confirm"
                },
                on_success.audit(),
            )
            .await?;
        Ok(match found {
            Consumed::Now(c) => Consumed::Now(CodeUse::Sent {
                factor_id: c.factor_id,
                channel: c.channel,
            }),
            Consumed::Already => Consumed::Already,
            Consumed::No => Consumed::No,
        })
    }
}
