//! The operator console: finding an account, seeing its factors, sessions, browsers and
//! history, and acting on it. Every method checks the caller itself (an operator, with a
//! second factor proven in this session, phishing-resistant when the policy says so); every
//! action needs a reason, is audited with the operator's id, and tells the account's owner.

use super::{Core, FactorView, NextStep, SessionContext};
use crate::assurance::Assurance;
use crate::error::CoreError;
use crate::mail;
use crate::model::{
    Account, AccountId, AuditFilter, AuditRecord, Effects, KnownDevice, Owner, RequestMeta,
    Session, StampChange, TrustedBrowser,
};
use crate::stats::{StatRow, StatsReport};
use serde_json::json;

/// What an operator can do to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorAction {
    /// Remove every factor and backup code (a lost phone); signs out everywhere.
    ResetTwoFactor,
    /// No sign-in until unlocked; signs out everywhere and ends every app's tokens.
    Lock,
    Unlock,
    RevokeSessions,
    IpVerification(bool),
    ResendVerification,
}

impl OperatorAction {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "reset-2fa" => Self::ResetTwoFactor,
            "lock" => Self::Lock,
            "unlock" => Self::Unlock,
            "revoke-sessions" => Self::RevokeSessions,
            "ip-verification-on" => Self::IpVerification(true),
            "ip-verification-off" => Self::IpVerification(false),
            "resend-verification" => Self::ResendVerification,
            _ => return None,
        })
    }

    fn event(self) -> &'static str {
        match self {
            Self::ResetTwoFactor => "two_factor_reset_by_operator",
            Self::Lock => "account_locked",
            Self::Unlock => "account_unlocked",
            Self::RevokeSessions => "sessions_revoked_by_operator",
            Self::IpVerification(true) => "ip_verification_on",
            Self::IpVerification(false) => "ip_verification_off",
            Self::ResendVerification => "verification_resent_by_operator",
        }
    }

    /// What the owner is told.
    fn notice(self) -> &'static str {
        match self {
            Self::ResetTwoFactor => {
                "An operator removed all second factors and backup codes from your account, and signed out every session. Sign in and set up two-factor authentication again."
            }
            Self::Lock => {
                "An operator locked your account: it cannot be signed in to until it is unlocked, and every session was signed out. Contact support if you did not expect this."
            }
            Self::Unlock => "An operator unlocked your account: you can sign in again.",
            Self::RevokeSessions => {
                "An operator signed out every session of your account. Sign in again to go on."
            }
            Self::IpVerification(true) => {
                "An operator turned verification of new networks back on: a sign-in from a network you have not used needs a code we email you."
            }
            Self::IpVerification(false) => {
                "An operator turned off verification of new networks for your account: a sign-in from a new network no longer needs an emailed code (a new browser still does)."
            }
            Self::ResendVerification => "An operator sent you a new verification link.",
        }
    }
}

/// A reason an operator gives for an action: required, and short enough for the log.
pub(super) fn checked_reason(reason: &str) -> Result<&str, CoreError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(CoreError::invalid(
            "reason",
            "Give a reason; it is kept in the audit log.",
        ));
    }
    if reason.chars().count() > 500 {
        return Err(CoreError::invalid(
            "reason",
            "Keep the reason under 500 characters.",
        ));
    }
    Ok(reason)
}

/// Everything the account page shows.
#[derive(Debug, Clone)]
pub struct AccountDossier {
    pub account: Account,
    pub factors: Vec<FactorView>,
    pub backup_codes_left: u32,
    pub sessions: Vec<Session>,
    pub trusted_browsers: Vec<TrustedBrowser>,
    pub known_devices: Vec<KnownDevice>,
    pub audit: Vec<AuditRecord>,
}

impl Core {
    /// Whether `ctx` may use the console now, or what it must do first. A customer gets
    /// `Forbidden`.
    pub async fn console_access(&self, ctx: &SessionContext) -> Result<NextStep, CoreError> {
        if !ctx.account.operator {
            return Err(CoreError::Forbidden(
                "Only operators can open the operator console.",
            ));
        }
        let required = if self.policy().await?.operators_phishing_resistant {
            Assurance::PhishingResistant
        } else {
            Assurance::TwoFactors
        };
        self.next_step_towards(ctx, required).await
    }

    pub(super) async fn require_console(&self, ctx: &SessionContext) -> Result<(), CoreError> {
        match self.console_access(ctx).await? {
            NextStep::Return => Ok(()),
            NextStep::SetUp { .. } => Err(CoreError::TwoFactorSetupRequired),
            NextStep::StepUp | NextStep::SignIn => Err(CoreError::StepUpRequired),
        }
    }

    pub async fn console_search(
        &self,
        ctx: &SessionContext,
        query: &str,
    ) -> Result<Vec<Account>, CoreError> {
        self.require_console(ctx).await?;
        let query = query.trim();
        if query.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.store.search_accounts(query, 50).await?)
    }

    /// The account with exactly this address (for the audit log's filter).
    pub async fn console_find_account(
        &self,
        ctx: &SessionContext,
        email: &str,
    ) -> Result<Account, CoreError> {
        self.require_console(ctx).await?;
        self.account_by_email(email).await
    }

    pub async fn console_account(
        &self,
        ctx: &SessionContext,
        id: AccountId,
    ) -> Result<AccountDossier, CoreError> {
        self.require_console(ctx).await?;
        let account = self.account(id).await?;
        let owner = Owner::Account(id);
        let now = self.clock.now();
        let idle = self.settings.session_idle_timeout;
        let sessions = self
            .store
            .list_sessions(id)
            .await?
            .into_iter()
            .filter(|s| {
                s.expires_at > now
                    && s.last_seen_at + idle > now
                    && s.security_stamp == account.security_stamp
            })
            .collect();
        Ok(AccountDossier {
            factors: self.factor_views(&owner).await?,
            backup_codes_left: self.store.backup_codes_left(&owner.key()).await?,
            sessions,
            trusted_browsers: self.store.trusted_browsers_of(id).await?,
            known_devices: self.store.known_devices_of(id).await?,
            audit: self.store.audit_for_account(id, 30).await?,
            account,
        })
    }

    /// One operator action on account `id`, with the reason kept in the audit log.
    pub async fn console_act(
        &self,
        ctx: &SessionContext,
        id: AccountId,
        action: OperatorAction,
        reason: &str,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        self.require_console(ctx).await?;
        let reason = checked_reason(reason)?;
        let account = self.account(id).await?;
        let detail = json!({ "operator": ctx.account.id, "operator_email": ctx.account.email, "reason": reason });
        self.operator_act(&account, action, detail, meta)
            .await
            .map(|_| ())
    }

    /// Carries out `action` on `account` with its audit event (`detail`) and the owner's
    /// notice, in the change's own transaction. The caller (console or CLI) has checked who
    /// asks and why. Returns how many factors a reset removed.
    pub(super) async fn operator_act(
        &self,
        account: &Account,
        action: OperatorAction,
        detail: serde_json::Value,
        meta: &RequestMeta,
    ) -> Result<u64, CoreError> {
        let id = account.id;
        let notice = self.outbox_item(
            "operator_action",
            &mail::factor_changed(&self.branding(), &account.email, action.notice()),
        )?;
        let everywhere = || StampChange {
            account: id,
            stamp: self.new_stamp(),
            keep_session: None,
        };
        let effects = |new_stamp| Effects {
            audit: self.audit(action.event(), Some(id), meta, detail.clone()),
            mail: Some(notice.clone()),
            new_stamp,
        };
        let mut removed = 0;
        match action {
            OperatorAction::ResetTwoFactor => {
                removed = self
                    .store
                    .delete_all_factors(&Owner::Account(id).key(), &effects(Some(everywhere())))
                    .await?;
            }
            OperatorAction::Lock | OperatorAction::Unlock => {
                let (locked_at, stamp) = match action {
                    OperatorAction::Lock => (Some(self.clock.now()), Some(everywhere())),
                    _ => (None, None),
                };
                if !self
                    .store
                    .set_locked(id, locked_at, &effects(stamp))
                    .await?
                {
                    return Err(CoreError::invalid(
                        "action",
                        if locked_at.is_some() {
                            "The account is locked already."
                        } else {
                            "The account is not locked."
                        },
                    ));
                }
            }
            OperatorAction::RevokeSessions => {
                self.store
                    .record_effects(&effects(Some(everywhere())))
                    .await?;
            }
            OperatorAction::IpVerification(on) => {
                self.store
                    .set_ip_verification_notified(id, on, &effects(None))
                    .await?;
            }
            OperatorAction::ResendVerification => {
                if account.is_verified() {
                    return Err(CoreError::invalid(
                        "action",
                        "The address is verified already.",
                    ));
                }
                let (token, mail) = self.verification_link(id, &account.email)?;
                let audit = effects(None).audit;
                self.store.issue_token(&token, &mail, Some(&audit)).await?;
            }
        }
        self.outbox_wakeup.notify_one();
        Ok(removed)
    }

    /// The audit log, newest first, filtered.
    pub async fn console_audit(
        &self,
        ctx: &SessionContext,
        filter: &AuditFilter,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, CoreError> {
        self.require_console(ctx).await?;
        Ok(self.store.search_audit(filter, limit.min(10_000)).await?)
    }
}

impl Core {
    /// The statistics job: today's snapshot, and the event counters of today and yesterday
    /// (yesterday again, for events that came in after its last run). Run by a background
    /// task; rerunning it replaces the same rows.
    pub async fn aggregate_stats(&self) -> Result<(), CoreError> {
        let now = self.clock.now();
        let today = now.date();
        let snapshot = self.store.stats_snapshot().await?;
        let in_grace = matches!(
            self.policy().await?.enforce_from,
            Some(day) if day > today
        );
        self.store
            .replace_stats(
                today,
                &[
                    "active_accounts",
                    "with_two_factor",
                    "in_grace",
                    "with_method",
                ],
                &snapshot.rows(today, in_grace),
            )
            .await?;
        for day in [today.previous_day().unwrap_or(today), today] {
            let start = day.midnight().assume_utc();
            let events = self
                .store
                .tallied_events(start, start + time::Duration::days(1))
                .await?;
            let rows: Vec<StatRow> =
                crate::stats::tally(events.iter().map(|(e, d)| (e.as_str(), d)))
                    .into_iter()
                    .map(|((name, label), value)| StatRow {
                        day,
                        name,
                        label,
                        value,
                    })
                    .collect();
            self.store
                .replace_stats(
                    day,
                    &[
                        "enroll_started",
                        "enroll_confirmed",
                        "second_step",
                        "sms_sent",
                    ],
                    &rows,
                )
                .await?;
        }
        Ok(())
    }

    /// The last 90 days of statistics, and the rows themselves (for the CSV export).
    pub async fn console_stats(
        &self,
        ctx: &SessionContext,
    ) -> Result<(StatsReport, Vec<StatRow>), CoreError> {
        self.require_console(ctx).await?;
        let since = self.clock.now().date() - time::Duration::days(89);
        let rows = self.store.stats_since(since).await?;
        Ok((StatsReport::from_rows(&rows), rows))
    }

    /// Days until the policy's deadline for existing accounts, if one is ahead.
    pub async fn days_to_deadline(&self) -> Result<Option<i64>, CoreError> {
        let today = self.clock.now().date();
        Ok(self
            .policy()
            .await?
            .enforce_from
            .filter(|d| *d > today)
            .map(|d| (d - today).whole_days()))
    }
}
