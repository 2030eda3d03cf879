//! Paying for attempts. Every use case that checks a secret (password, code, key) reserves
//! its attempt here first and evaluates the guess only once the reservation is granted; it
//! then settles the [`Paid`] attempt: kept as a failure, cleared by a success, or given back
//! when the guess proved nothing.

use super::Core;
use crate::error::CoreError;
use crate::model::{AccountId, Owner, RequestMeta};
use crate::throttle::{AttemptKey, Budget, Reservation};
use serde_json::json;
use time::Duration;

/// How recently a code must have been used for a guess that matches it to count as a replay
/// racing the request that used it: a TOTP step is only accepted within a minute and a half
/// of its time, and a sent code is used once.
pub(super) const REPLAY_GRACE: Duration = Duration::minutes(2);

/// An attempt paid for against a budget, not yet settled.
#[derive(Debug)]
#[must_use = "a paid attempt is kept, cleared or given back"]
pub(super) struct Paid {
    pub key: AttemptKey,
    /// Attempts on record with this one.
    pub count: u32,
}

impl Core {
    /// Reserves one attempt against `key`, or refuses it with the wait.
    pub(super) async fn pay_attempt(
        &self,
        key: AttemptKey,
        budget: Budget,
    ) -> Result<Paid, CoreError> {
        match self
            .store
            .reserve_attempt(&key, &budget, self.clock.now())
            .await?
        {
            Reservation::Granted { count } => Ok(Paid { key, count }),
            Reservation::Refused { retry_after_secs } => {
                Err(CoreError::TooManyAttempts { retry_after_secs })
            }
        }
    }

    /// The guess proved nothing new (a replay racing the request that used the code, or no
    /// guess evaluated after all): the attempt does not count.
    pub(super) async fn give_back(&self, paid: Paid) -> Result<(), CoreError> {
        Ok(self.store.give_back_attempt(&paid.key).await?)
    }

    /// The secret was proven: earlier failures are forgotten with this attempt.
    pub(super) async fn clear_paid(&self, paid: Paid) -> Result<(), CoreError> {
        Ok(self.store.clear_attempts(&paid.key).await?)
    }

    /// Pays for a second-factor attempt of `owner` (code, backup code or key).
    pub(super) async fn pay_factor_attempt(&self, owner: &Owner) -> Result<Paid, CoreError> {
        let paid = self
            .pay_attempt(
                AttemptKey::SecondFactor(*owner),
                self.settings.second_factor_budget,
            )
            .await;
        if paid.is_err() {
            metrics::counter!("twofold_second_factor_checks_total", "method" => "code", "outcome" => "locked_out")
                .increment(1);
        }
        paid
    }

    /// Keeps a wrong second factor on the owner's budget and audits it with the count.
    pub(super) async fn record_factor_failure(
        &self,
        paid: Paid,
        owner: &Owner,
        account: Option<AccountId>,
        what: &str,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let audit = self.audit(
            "second_factor_failed",
            account,
            meta,
            json!({ "owner": owner.key(), "while": what, "failures": paid.count }),
        );
        self.store.record_audit(&audit).await?;
        Ok(())
    }
}
