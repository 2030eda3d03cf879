//! Paying for attempts. Every use case that checks a secret (password, code, key) reserves
//! its attempt here first and evaluates the guess only once the reservation is granted; it
//! then settles the [`Paid`] attempt: kept as a failure, cleared by a success, or given back
//! when the guess proved nothing.

use super::Core;
use crate::error::CoreError;
use crate::model::{AccountId, Owner, RequestMeta};
use crate::throttle::{AttemptKey, Budget, Reservation};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use time::{Duration, OffsetDateTime};

/// How recently a code must have been used for a guess that matches it to count as a replay
/// racing the request that used it: a TOTP step is only accepted within a minute and a half
/// of its time, and a sent code is used once.
pub(super) const REPLAY_GRACE: Duration = Duration::minutes(2);

/// An attempt refused: the wait, and whether this node answered from memory (see
/// [`RefusedKeys`]) rather than the database.
#[derive(Debug, Clone, Copy)]
pub(super) struct Refused {
    pub retry_after_secs: u64,
    pub remembered: bool,
}

/// An attempt paid for against a budget, not yet settled.
#[derive(Debug)]
#[must_use = "a paid attempt is kept, cleared or given back"]
pub(super) struct Paid {
    pub key: AttemptKey,
    /// Attempts on record with this one.
    pub count: u32,
}

/// How long this node refuses a key the database refused, without asking again. A flood
/// against one address or account is then one reservation statement a second per node, not
/// one per request, and checks of other keys do not queue behind it. A success on another
/// node that clears the key is seen here at most this late.
const REFUSED_MEMO: Duration = Duration::seconds(1);
const REFUSED_MAX: usize = 10_000;

/// Keys recently refused on this node, and keys given back or cleared since a payment began.
/// Full at [`REFUSED_MAX`] keys, it starts afresh (a flood of distinct keys is refused by the
/// database as before).
#[derive(Default)]
pub(super) struct RefusedKeys(Mutex<HashMap<String, Memo>>);

#[derive(Default)]
struct Memo {
    /// Bumped whenever the key is given back or cleared, so that a refusal answered before
    /// that (but seen after it) is not remembered.
    generation: u64,
    /// (refused until, opens at).
    refused: Option<(OffsetDateTime, OffsetDateTime)>,
}

impl RefusedKeys {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Memo>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the key opens, if it is still refused here at `now`; else the key's generation,
    /// to hand to [`RefusedKeys::remember`].
    fn check(&self, key: &str, now: OffsetDateTime) -> Result<u64, OffsetDateTime> {
        let mut keys = self.lock();
        let Some(memo) = keys.get_mut(key) else {
            return Ok(0);
        };
        match memo.refused {
            Some((until, open_at)) if now < until && now >= until - REFUSED_MEMO => Err(open_at),
            _ => {
                memo.refused = None;
                Ok(memo.generation)
            }
        }
    }

    fn remember(&self, key: String, generation: u64, now: OffsetDateTime, open_at: OffsetDateTime) {
        let mut keys = self.lock();
        if keys.len() >= REFUSED_MAX {
            keys.clear();
        }
        let memo = keys.entry(key).or_default();
        if memo.generation == generation {
            memo.refused = Some(((now + REFUSED_MEMO).min(open_at), open_at));
        }
    }

    fn forget(&self, key: &str) {
        let mut keys = self.lock();
        if let Some(memo) = keys.get_mut(key) {
            memo.generation += 1;
            memo.refused = None;
        } else if keys.len() < REFUSED_MAX {
            keys.insert(
                key.to_owned(),
                Memo {
                    generation: 1,
                    refused: None,
                },
            );
        }
    }
}

impl Core {
    /// Reserves one attempt against `key`, or refuses it with the wait.
    pub(super) async fn pay_attempt(
        &self,
        key: AttemptKey,
        budget: Budget,
    ) -> Result<Paid, CoreError> {
        self.try_pay(key, budget)
            .await?
            .map_err(|refused| CoreError::TooManyAttempts {
                retry_after_secs: refused.retry_after_secs,
            })
    }

    /// The wait, when this node refused `key` a moment ago: a request that is refused anyway
    /// can be answered before any other work.
    pub(super) fn remembered_refusal(&self, key: &AttemptKey) -> Option<u64> {
        let now = self.clock.now();
        self.refused_keys
            .check(&key.to_string(), now)
            .err()
            .map(|open_at| whole_secs_until(open_at, now))
    }

    /// As [`Core::pay_attempt`], telling a refusal the database gave from one this node
    /// remembered (a use case may record only the former).
    pub(super) async fn try_pay(
        &self,
        key: AttemptKey,
        budget: Budget,
    ) -> Result<Result<Paid, Refused>, CoreError> {
        let now = self.clock.now();
        let stored = key.to_string();
        let generation = match self.refused_keys.check(&stored, now) {
            Ok(generation) => generation,
            Err(open_at) => {
                return Ok(Err(Refused {
                    retry_after_secs: whole_secs_until(open_at, now),
                    remembered: true,
                }));
            }
        };
        Ok(
            match self.store.reserve_attempt(&key, &budget, now).await? {
                Reservation::Granted { count } => Ok(Paid { key, count }),
                Reservation::Refused { retry_after_secs } => {
                    let wait =
                        Duration::seconds(i64::try_from(retry_after_secs).unwrap_or(i64::MAX));
                    self.refused_keys
                        .remember(stored, generation, now, now.saturating_add(wait));
                    Err(Refused {
                        retry_after_secs,
                        remembered: false,
                    })
                }
            },
        )
    }

    /// The guess proved nothing new (a replay racing the request that used the code, or no
    /// guess evaluated after all): the attempt does not count.
    pub(super) async fn give_back(&self, paid: Paid) -> Result<(), CoreError> {
        // After the write: a refusal the database gave before it must not be remembered.
        self.store.give_back_attempt(&paid.key).await?;
        self.refused_keys.forget(&paid.key.to_string());
        Ok(())
    }

    /// The secret was proven: earlier failures are forgotten with this attempt.
    pub(super) async fn clear_paid(&self, paid: Paid) -> Result<(), CoreError> {
        // The clear is queued ahead of every later reservation of this node, so forgetting
        // once it is queued is soon enough.
        self.store.clear_attempts(&paid.key).await?;
        self.refused_keys.forget(&paid.key.to_string());
        Ok(())
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

/// Whole seconds from `now` until `at`, at least one.
fn whole_secs_until(at: OffsetDateTime, now: OffsetDateTime) -> u64 {
    let ms = (at - now).whole_milliseconds().max(0);
    u64::try_from(ms).unwrap_or(u64::MAX).div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_800_000_000 + secs)
    }

    #[test]
    fn a_refused_key_is_refused_here_for_a_second_at_most() {
        let keys = RefusedKeys::default();
        let generation = keys.check("k", at(0)).unwrap();
        keys.remember("k".into(), generation, at(0), at(30));
        assert_eq!(keys.check("k", at(0)), Err(at(30)));
        assert_eq!(
            keys.check("k", at(0) + Duration::milliseconds(999)),
            Err(at(30))
        );
        // Then the database is asked again.
        assert!(keys.check("k", at(1)).is_ok());
        // Never past the moment the key opens.
        keys.remember("k".into(), 0, at(2), at(2) + Duration::milliseconds(200));
        assert!(keys.check("k", at(2) + Duration::milliseconds(200)).is_ok());
        // A clock that went back does not keep a key refused.
        keys.remember("k".into(), 0, at(10), at(40));
        assert!(keys.check("k", at(5)).is_ok());
    }

    #[test]
    fn a_refusal_from_before_a_give_back_is_not_remembered() {
        let keys = RefusedKeys::default();
        let generation = keys.check("k", at(0)).unwrap();
        // The database refused, then a racing request gave its attempt back: the refusal
        // reaches this node only after that.
        keys.forget("k");
        keys.remember("k".into(), generation, at(0), at(30));
        assert!(keys.check("k", at(0)).is_ok());
        // A success clears a remembered refusal at once.
        let generation = keys.check("k", at(0)).unwrap();
        keys.remember("k".into(), generation, at(0), at(30));
        keys.forget("k");
        assert!(keys.check("k", at(0)).is_ok());
    }
}
