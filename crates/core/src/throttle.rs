//! Attempt budgets: a number of free failures per key, then exponential backoff.
//! The counters live in the database so every node sees the same budget.

use time::{Duration, OffsetDateTime};

use crate::model::AttemptRecord;

#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Failures allowed before any delay.
    pub free_failures: u32,
    /// Delay after the first failure past the free ones; doubles with each further failure.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Failures older than this are forgotten.
    pub window: Duration,
}

impl Budget {
    pub const fn login_per_account() -> Self {
        Self {
            free_failures: 5,
            base_delay: Duration::seconds(2),
            max_delay: Duration::minutes(15),
            window: Duration::hours(1),
        }
    }

    pub const fn login_per_ip() -> Self {
        Self {
            free_failures: 20,
            base_delay: Duration::seconds(2),
            max_delay: Duration::minutes(15),
            window: Duration::hours(1),
        }
    }

    /// Wrong second-factor codes per account (or API subject), across sessions: the tenth
    /// failure within an hour starts the backoff, and each further one doubles the wait.
    pub const fn second_factor() -> Self {
        Self {
            free_failures: 9,
            base_delay: Duration::seconds(30),
            max_delay: Duration::hours(1),
            window: Duration::hours(1),
        }
    }

    /// How long a key must wait after `failures` failures.
    pub fn delay_after(&self, failures: u32) -> Duration {
        if failures <= self.free_failures {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free_failures - 1).min(30);
        let delay = self.base_delay * 2f64.powi(doublings as i32);
        delay.min(self.max_delay)
    }

    /// `Some(seconds)` to wait if the key is currently blocked.
    pub fn blocked_for(&self, record: Option<AttemptRecord>, now: OffsetDateTime) -> Option<u64> {
        let record = record?;
        if record.last_failure_at < now - self.window {
            return None;
        }
        let until = record.last_failure_at + self.delay_after(record.failures);
        (until > now).then(|| {
            let secs = (until - now).as_seconds_f64().ceil();
            secs.max(1.0) as u64
        })
    }
}

/// A budget that the statement accepting a code checks again, inside the database: requests
/// that passed the first check together cannot have a code accepted once the failures of the
/// others have spent it.
#[derive(Debug, Clone)]
pub struct BudgetGuard {
    pub key: String,
    pub budget: Budget,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn backoff_doubles_after_free_failures_and_caps() {
        let b = Budget::login_per_account();
        assert_eq!(b.delay_after(5), Duration::ZERO);
        assert_eq!(b.delay_after(6), Duration::seconds(2));
        assert_eq!(b.delay_after(7), Duration::seconds(4));
        assert_eq!(b.delay_after(40), Duration::minutes(15));
    }

    #[test]
    fn blocked_until_delay_passes_and_window_forgets() {
        let b = Budget::login_per_account();
        let t = datetime!(2026-01-01 00:00 UTC);
        let rec = AttemptRecord {
            failures: 7,
            last_failure_at: t,
        };
        assert_eq!(b.blocked_for(Some(rec), t), Some(4));
        assert_eq!(b.blocked_for(Some(rec), t + Duration::seconds(3)), Some(1));
        assert_eq!(b.blocked_for(Some(rec), t + Duration::seconds(4)), None);
        assert_eq!(b.blocked_for(None, t), None);
        let heavy = AttemptRecord {
            failures: 30,
            last_failure_at: t,
        };
        assert_eq!(
            b.blocked_for(Some(heavy), t + Duration::minutes(14)),
            Some(60)
        );
        assert_eq!(b.blocked_for(Some(heavy), t + Duration::hours(2)), None);
    }
}
