//! The mandatory-2FA policy at work: reading and changing it while servers run, the grace
//! banner, reminders before the deadline, forced enrollment at sign-in, and the rules on
//! adding and removing factors that follow from it. The decisions themselves are the pure
//! functions of [`crate::policy`].

use super::{Core, SessionContext};
use crate::error::CoreError;
use crate::mail;
use crate::model::{Account, Owner, RequestMeta, Session, SessionKind};
use crate::policy::{Policy, Requirement, reminder_due};
use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

const POLICY_KEY: &str = "policy";
/// Reminders queued per housekeeping round; the rest follow in the next rounds.
const REMINDER_BATCH: u32 = 200;

/// Where the current policy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    /// Set by an operator (`twofold policy set`), stored in the database.
    Database,
    /// The `[policy]` section of the configuration (or the built-in default).
    Configuration,
}

/// What the account page says about the policy: set up 2FA before `deadline`.
#[derive(Debug, Clone, Copy)]
pub struct GraceNotice {
    pub deadline: OffsetDateTime,
    pub days_left: i64,
}

impl Core {
    /// The policy in force: the operator's stored one, else the configured one.
    pub async fn policy_with_source(&self) -> Result<(Policy, PolicySource), CoreError> {
        match self.store.setting(POLICY_KEY).await? {
            Some(json) => {
                let policy: Policy = serde_json::from_str(&json)
                    .map_err(|e| CoreError::Internal(format!("stored policy: {e}")))?;
                Ok((policy, PolicySource::Database))
            }
            None => Ok((self.settings.policy.clone(), PolicySource::Configuration)),
        }
    }

    pub async fn policy(&self) -> Result<Policy, CoreError> {
        Ok(self.policy_with_source().await?.0)
    }

    /// Whether the policy holds this account to phishing-resistant sign-in (keys only). The
    /// rule binds operators alone, so other accounts never need the policy read for it — which
    /// spares every customer login two reads.
    pub(super) async fn keys_only(&self, account: &Account) -> Result<bool, CoreError> {
        if !account.operator {
            return Ok(false);
        }
        Ok(self.policy().await?.phishing_resistant_for(true))
    }

    /// Stores a new policy; every node uses it from its next decision on.
    pub async fn set_policy(&self, policy: &Policy, meta: &RequestMeta) -> Result<(), CoreError> {
        policy
            .validate()
            .map_err(|m| CoreError::invalid("policy", m))?;
        let json = serde_json::to_string(policy)
            .map_err(|e| CoreError::Internal(format!("encode policy: {e}")))?;
        let audit = self.audit(
            "policy_changed",
            None,
            meta,
            serde_json::to_value(policy).unwrap_or_default(),
        );
        self.store
            .put_setting(POLICY_KEY, &json, self.clock.now(), &audit)
            .await?;
        Ok(())
    }

    /// Whether the owner has an active factor (backup codes alone do not count).
    pub(super) async fn has_active_factor(&self, owner: &Owner) -> Result<bool, CoreError> {
        Ok(!self.active_factors(owner).await?.is_empty())
    }

    /// The grace banner for an account without 2FA before the deadline.
    pub async fn grace_notice(
        &self,
        ctx: &SessionContext,
    ) -> Result<Option<GraceNotice>, CoreError> {
        let now = self.clock.now();
        let requirement = self
            .policy()
            .await?
            .requirement(ctx.account.two_factor_required, now);
        let Requirement::Grace { deadline } = requirement else {
            return Ok(None);
        };
        if self
            .has_active_factor(&Owner::Account(ctx.account.id))
            .await?
        {
            return Ok(None);
        }
        Ok(requirement.days_left(now).map(|days_left| GraceNotice {
            deadline,
            days_left,
        }))
    }

    /// The factor types this account can set up here: those `policy` allows it, without
    /// security keys and passkeys when this server cannot offer them (browsers refuse a
    /// public URL that is an IP address, and the pages hide the key buttons then).
    pub fn methods_to_set_up(&self, policy: &Policy, operator: bool) -> Vec<&'static str> {
        let mut methods = policy.allowed_for(operator);
        if !self.webauthn_available() {
            methods.retain(|m| *m != "webauthn");
        }
        methods
    }

    /// Adding a factor needs a recent second factor (when there is one) and a method the
    /// policy allows.
    pub(super) async fn require_may_add(
        &self,
        ctx: &SessionContext,
        kind: &str,
    ) -> Result<(), CoreError> {
        if !self
            .policy()
            .await?
            .allowed_for(ctx.account.operator)
            .contains(&kind)
        {
            return Err(CoreError::PolicyForbids(
                "Your organisation does not allow this method. Choose another one.",
            ));
        }
        self.require_step_up(ctx).await
    }

    /// An account the policy binds cannot remove its last factor (that would turn 2FA off).
    pub(super) async fn require_may_remove(
        &self,
        ctx: &SessionContext,
        factor: Uuid,
    ) -> Result<(), CoreError> {
        let required = self
            .policy()
            .await?
            .requirement(ctx.account.two_factor_required, self.clock.now())
            == Requirement::Required;
        if !required {
            return Ok(());
        }
        let others = self
            .active_factors(&Owner::Account(ctx.account.id))
            .await?
            .iter()
            .filter(|f| f.id != factor)
            .count();
        if others == 0 {
            return Err(CoreError::PolicyForbids(
                "Two-step verification is required for your account. Add another method before removing this one.",
            ));
        }
        Ok(())
    }

    /// A session that may add a factor: a full one, or the forced-enrollment session that
    /// the sign-in of an account without the required 2FA gets.
    pub async fn authenticate_enrolling(&self, token: &str) -> Result<SessionContext, CoreError> {
        let ctx = self.resolve_session(token).await?;
        match ctx.session.kind {
            SessionKind::Full | SessionKind::Enrollment => Ok(ctx),
            SessionKind::Partial | SessionKind::Device => Err(CoreError::Unauthenticated),
        }
    }

    /// After forced enrollment added a factor: the enrollment session becomes a full one (a
    /// new token). The code or key that confirmed the factor was proven just now, so the
    /// session counts both steps. `None` for a session that was already full.
    pub async fn complete_enrollment(
        &self,
        ctx: &SessionContext,
        meta: &RequestMeta,
    ) -> Result<Option<(SecretString, Session)>, CoreError> {
        if ctx.session.kind != SessionKind::Enrollment {
            return Ok(None);
        }
        // Adding the factor gave the account a new security stamp: read it again.
        let account = self.account(ctx.account.id).await?;
        let owner = Owner::Account(account.id);
        let newest = self
            .active_factors(&owner)
            .await?
            .into_iter()
            .max_by_key(|f| f.confirmed_at)
            .ok_or(CoreError::Unauthenticated)?;
        let second = match newest.kind.as_str() {
            "sms" => "sms",
            "webauthn" => "hwk",
            _ => "otp",
        };
        let amr = vec!["pwd".into(), second.into(), "mfa".into()];
        let (token, swap) = self.swap_to_full(&account, ctx.session.id, amr, "enrollment", meta);
        if !self.store.complete_partial_session(&swap).await? {
            return Err(CoreError::Unauthenticated);
        }
        Ok(Some((token, swap.full.session)))
    }

    /// Housekeeping: reminders 14, 3 and 1 days before the deadline to accounts still without
    /// 2FA. Each goes out once per account and stage, whichever node gets there first.
    pub async fn send_policy_reminders(&self) -> Result<usize, CoreError> {
        let now = self.clock.now();
        let Some(deadline) = self.policy().await?.deadline() else {
            return Ok(0);
        };
        let Some(days) = reminder_due(deadline, now) else {
            return Ok(0);
        };
        let stage = (deadline.unix_timestamp(), days);
        if self.reminders_done.lock().is_ok_and(|d| d.contains(&stage)) {
            return Ok(0);
        }
        let candidates = self
            .store
            .reminder_candidates(deadline, days, REMINDER_BATCH)
            .await?;
        let mut sent = 0;
        let day = crate::policy::day::format(deadline.date());
        for account in &candidates {
            let item = self.outbox_item(
                "two_factor_reminder",
                &mail::two_factor_reminder(&self.branding(), &account.email, days, &day),
            )?;
            if self
                .store
                .record_reminder(account.id, deadline, days, now, &item)
                .await?
            {
                sent += 1;
            }
        }
        if candidates.len() < REMINDER_BATCH as usize
            && let Ok(mut done) = self.reminders_done.lock()
        {
            // This node has seen every account for this stage; it need not scan again.
            done.insert(stage);
        }
        if sent > 0 {
            self.outbox_wakeup.notify_one();
        }
        Ok(sent)
    }
}
