//! Attempt budgets: a number of free attempts per key, then exponential backoff. The counters
//! live in the database so every node sees the same budget, and an attempt is paid for
//! before its guess is evaluated: the store's reservation counts it in the one statement that
//! refuses it once the budget is spent, so a burst of parallel guesses evaluates at most
//! `free_failures + 1` of them. Guesses that prove nothing (a right one, or one matching a
//! code that a concurrent request has just used) give their reservation back.
//!
//! The backoff rule itself (which count waits how long) is written once, as the SQL of the
//! reservation in the store, over these parameters.

use std::fmt;
use std::net::IpAddr;

use time::Duration;

use crate::email::Email;
use crate::model::{AccountId, Owner};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Attempts allowed before any delay: the next one is still granted, and starts the wait.
    pub free_failures: u32,
    /// Delay after the first attempt past the free ones; doubles with each further attempt.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Attempts older than this are forgotten.
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
    /// attempt within an hour starts the backoff, and each further one doubles the wait.
    pub const fn second_factor() -> Self {
        Self {
            free_failures: 9,
            base_delay: Duration::seconds(30),
            max_delay: Duration::hours(1),
            window: Duration::hours(1),
        }
    }

    /// The most attempts a burst arriving at one instant can have evaluated.
    pub const fn burst(&self) -> u32 {
        self.free_failures + 1
    }
}

/// What an attempt budget counts: one key per kind of secret and whose it is. Budgets key on
/// the canonical account id; an address with no account keys on the canonical address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptKey {
    /// Passwords tried at sign-in for an account.
    Login(AccountId),
    /// Passwords tried at sign-in for an address that has no account (`None`: input that is
    /// no address at all); from outside it behaves like [`AttemptKey::Login`].
    LoginAddress(Option<Email>),
    /// Passwords tried at sign-in from one client address.
    LoginIp(IpAddr),
    /// The current password, asked again before a password or address change.
    CurrentPassword(AccountId),
    /// Second-factor codes, keys and backup codes of an account or API subject.
    SecondFactor(Owner),
    /// Codes emailed to confirm a sign-in from a new browser or network.
    NewDeviceCode(AccountId),
}

/// The stored key. These spellings are what rows written by earlier versions hold.
impl fmt::Display for AttemptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Login(id) => write!(f, "login:account:{id}"),
            Self::LoginAddress(Some(email)) => write!(f, "login:email:{}", email.as_str()),
            Self::LoginAddress(None) => f.write_str("login:email:invalid"),
            Self::LoginIp(ip) => write!(f, "login:ip:{ip}"),
            Self::CurrentPassword(id) => write!(f, "password_change:account:{id}"),
            Self::SecondFactor(owner) => write!(f, "second_factor:{}", owner.key()),
            Self::NewDeviceCode(id) => write!(f, "device:account:{id}"),
        }
    }
}

/// The answer to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The attempt is paid for; `count` attempts (this one included) are on record.
    Granted { count: u32 },
    /// The budget is spent: nothing was counted, and the guess must not be evaluated.
    Refused { retry_after_secs: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_stored_spelling() {
        let id: AccountId = uuid::Uuid::nil();
        assert_eq!(
            AttemptKey::Login(id).to_string(),
            "login:account:00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(
            AttemptKey::SecondFactor(Owner::Subject(uuid::Uuid::nil())).to_string(),
            "second_factor:subject:00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(
            AttemptKey::LoginIp("192.0.2.1".parse().unwrap()).to_string(),
            "login:ip:192.0.2.1"
        );
        assert_eq!(
            AttemptKey::LoginAddress(None).to_string(),
            "login:email:invalid"
        );
    }

    #[test]
    fn a_burst_is_the_free_attempts_and_one() {
        assert_eq!(Budget::second_factor().burst(), 10);
        assert_eq!(Budget::login_per_account().burst(), 6);
    }
}
