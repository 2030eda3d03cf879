//! Who must use two-step verification, and from when. Everything here is a pure function of
//! the policy, the account and the time, so the grace countdown and the enforcement day are
//! tested with a fake clock and no database.

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};

/// The factor types a policy can allow or forbid.
pub const METHODS: &[&str] = &["totp", "webauthn", "sms", "email"];

/// Days before the deadline on which owners without 2FA are reminded, latest first.
pub const REMINDER_DAYS: &[i64] = &[1, 3, 14];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Required {
    /// Two-step verification is the owner's choice.
    #[default]
    Off,
    /// Accounts created from now on must set it up at their first sign-in.
    NewAccounts,
    /// Every account: new ones at once, existing ones from `enforce_from` (or at once).
    All,
}

impl Required {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::NewAccounts => "new_accounts",
            Self::All => "all",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub required: Required,
    /// With `required = all`: the day (from 00:00 UTC) from which accounts that existed
    /// before the requirement must have 2FA. Until then they may turn it on and off.
    #[serde(with = "day", skip_serializing_if = "Option::is_none")]
    pub enforce_from: Option<Date>,
    /// Factor types that count and may be added. Empty: all of them.
    pub allowed_methods: Vec<String>,
    /// Operator accounts must sign in with a security key or passkey that verifies the user
    /// (WebAuthn with user verification): no codes, no backup codes, no remembered browser.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub operators_phishing_resistant: bool,
}

/// What the policy asks of one account now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    Optional,
    /// Required from `deadline`; until then a reminder, not a gate.
    Grace {
        deadline: OffsetDateTime,
    },
    Required,
}

impl Requirement {
    /// Whole days left until the deadline, counting a started day as one.
    pub fn days_left(&self, now: OffsetDateTime) -> Option<i64> {
        match self {
            Self::Grace { deadline } => {
                let left = *deadline - now;
                Some((left.whole_seconds() + 86_399).div_euclid(86_400).max(0))
            }
            _ => None,
        }
    }
}

impl Policy {
    /// Whether accounts created now must have 2FA from their first sign-in.
    pub fn covers_new_accounts(&self) -> bool {
        self.required != Required::Off
    }

    /// The requirement for an account; `required_at_creation` is whether it was created while
    /// the policy covered new accounts.
    pub fn requirement(&self, required_at_creation: bool, now: OffsetDateTime) -> Requirement {
        match self.required {
            Required::Off => Requirement::Optional,
            Required::NewAccounts if required_at_creation => Requirement::Required,
            Required::NewAccounts => Requirement::Optional,
            Required::All if required_at_creation => Requirement::Required,
            Required::All => match self.deadline() {
                Some(deadline) if now < deadline => Requirement::Grace { deadline },
                _ => Requirement::Required,
            },
        }
    }

    /// When existing accounts must have 2FA, if the policy sets a day for it.
    pub fn deadline(&self) -> Option<OffsetDateTime> {
        match self.required {
            Required::All => self.enforce_from.map(|d| d.midnight().assume_utc()),
            _ => None,
        }
    }

    /// Whether a factor of this type counts and may be added.
    pub fn allows(&self, kind: &str) -> bool {
        self.allowed_methods.is_empty() || self.allowed_methods.iter().any(|m| m == kind)
    }

    /// The factor types that may be added, in display order.
    pub fn allowed(&self) -> Vec<&'static str> {
        METHODS.iter().copied().filter(|m| self.allows(m)).collect()
    }

    /// Whether this account must sign in with a phishing-resistant factor (a key with user
    /// verification), whatever else it has.
    pub fn phishing_resistant_for(&self, operator: bool) -> bool {
        operator && self.operators_phishing_resistant
    }

    /// The factor types that count and may be added for this account.
    pub fn allowed_for(&self, operator: bool) -> Vec<&'static str> {
        if self.phishing_resistant_for(operator) {
            vec!["webauthn"]
        } else {
            self.allowed()
        }
    }

    /// Refuses a policy that cannot mean what its author wanted.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(m) = self
            .allowed_methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return Err(format!(
                "unknown method \"{m}\" in allowed_methods (known: {})",
                METHODS.join(", ")
            ));
        }
        if self.operators_phishing_resistant && !self.allows("webauthn") {
            return Err(
                "operators_phishing_resistant needs security keys and passkeys: add \"webauthn\" to allowed_methods"
                    .into(),
            );
        }
        if self.enforce_from.is_some() && self.required != Required::All {
            return Err(
                "enforce_from is the deadline for existing accounts: it needs required = \"all\""
                    .into(),
            );
        }
        Ok(())
    }
}

/// Which reminder (days before the deadline) is due now, if any: the latest stage reached.
/// A policy set 2 days before its deadline sends the 1-day reminder only when that day comes,
/// and no 14-day reminder at all.
pub fn reminder_due(deadline: OffsetDateTime, now: OffsetDateTime) -> Option<i64> {
    if now >= deadline {
        return None;
    }
    // REMINDER_DAYS runs from the latest stage to the earliest: the first reached is current.
    REMINDER_DAYS
        .iter()
        .copied()
        .find(|days| now >= deadline - Duration::days(*days))
}

/// `2027-01-21` in TOML, JSON and on the command line.
pub mod day {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Date;

    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]");

    pub fn parse(s: &str) -> Result<Date, String> {
        Date::parse(s.trim(), FORMAT).map_err(|_| format!("\"{s}\" is not a date like 2027-01-21"))
    }

    pub fn format(d: Date) -> String {
        d.format(FORMAT).unwrap_or_default()
    }

    pub fn serialize<S: Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.filter(|s| !s.trim().is_empty())
            .map(|s| parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn all_from(d: Date) -> Policy {
        Policy {
            required: Required::All,
            enforce_from: Some(d),
            allowed_methods: vec![],
            operators_phishing_resistant: false,
        }
    }

    #[test]
    fn off_requires_nothing_even_for_accounts_created_under_a_requirement() {
        let p = Policy::default();
        assert_eq!(
            p.requirement(true, datetime!(2027-01-01 0:00 UTC)),
            Requirement::Optional
        );
        assert!(!p.covers_new_accounts());
    }

    #[test]
    fn new_accounts_only_binds_accounts_created_under_it() {
        let p = Policy {
            required: Required::NewAccounts,
            ..Policy::default()
        };
        let now = datetime!(2027-01-01 0:00 UTC);
        assert_eq!(p.requirement(true, now), Requirement::Required);
        assert_eq!(p.requirement(false, now), Requirement::Optional);
        assert!(p.covers_new_accounts());
    }

    #[test]
    fn grace_counts_down_to_the_enforcement_day() {
        let p = all_from(date!(2027 - 01 - 21));
        let deadline = datetime!(2027-01-21 0:00 UTC);
        let before = datetime!(2027-01-07 0:00 UTC);
        assert_eq!(
            p.requirement(false, before),
            Requirement::Grace { deadline }
        );
        assert_eq!(p.requirement(false, before).days_left(before), Some(14));
        let almost = datetime!(2027-01-20 23:59 UTC);
        assert_eq!(p.requirement(false, almost).days_left(almost), Some(1));
        let mid = datetime!(2027-01-18 12:00 UTC);
        assert_eq!(p.requirement(false, mid).days_left(mid), Some(3));
        // From the first second of the day on, it is a gate.
        assert_eq!(p.requirement(false, deadline), Requirement::Required);
        assert_eq!(
            p.requirement(false, datetime!(2027-03-01 0:00 UTC)),
            Requirement::Required
        );
        // New accounts under `all` are required at once, deadline or not.
        assert_eq!(p.requirement(true, before), Requirement::Required);
    }

    #[test]
    fn all_without_a_day_is_required_at_once() {
        let p = Policy {
            required: Required::All,
            ..Policy::default()
        };
        assert_eq!(
            p.requirement(false, datetime!(2027-01-01 0:00 UTC)),
            Requirement::Required
        );
    }

    #[test]
    fn reminders_fall_on_14_3_and_1_days_before() {
        let deadline = datetime!(2027-01-21 0:00 UTC);
        let at = |s: OffsetDateTime| reminder_due(deadline, s);
        assert_eq!(at(datetime!(2027-01-06 23:59 UTC)), None);
        assert_eq!(at(datetime!(2027-01-07 0:00 UTC)), Some(14));
        assert_eq!(at(datetime!(2027-01-17 23:59 UTC)), Some(14));
        assert_eq!(at(datetime!(2027-01-18 0:00 UTC)), Some(3));
        assert_eq!(at(datetime!(2027-01-20 0:00 UTC)), Some(1));
        assert_eq!(at(datetime!(2027-01-20 23:59 UTC)), Some(1));
        assert_eq!(at(deadline), None);
    }

    #[test]
    fn operators_can_be_held_to_keys() {
        let p = Policy {
            operators_phishing_resistant: true,
            ..Policy::default()
        };
        assert!(p.phishing_resistant_for(true) && !p.phishing_resistant_for(false));
        assert_eq!(p.allowed_for(true), vec!["webauthn"]);
        assert_eq!(p.allowed_for(false), p.allowed());
        assert!(p.validate().is_ok());
        let contradiction = Policy {
            allowed_methods: vec!["totp".into()],
            ..p
        };
        assert!(contradiction.validate().is_err());
        let json = serde_json::to_string(&Policy::default()).unwrap();
        assert!(
            !json.contains("operators"),
            "off is the default and is not written: {json}"
        );
    }

    #[test]
    fn allowed_methods_filter_and_validate() {
        let p = Policy {
            allowed_methods: vec!["totp".into(), "webauthn".into()],
            ..Policy::default()
        };
        assert!(p.allows("totp") && !p.allows("sms"));
        assert_eq!(p.allowed(), vec!["totp", "webauthn"]);
        assert!(Policy::default().allows("sms"));
        let bad = Policy {
            allowed_methods: vec!["carrier-pigeon".into()],
            ..Policy::default()
        };
        assert!(bad.validate().is_err());
        let orphan_day = Policy {
            required: Required::NewAccounts,
            enforce_from: Some(date!(2027 - 01 - 21)),
            allowed_methods: vec![],
            operators_phishing_resistant: false,
        };
        assert!(orphan_day.validate().is_err());
        assert!(all_from(date!(2027 - 01 - 21)).validate().is_ok());
    }

    #[test]
    fn round_trips_through_json_with_a_plain_date() {
        let p = all_from(date!(2027 - 01 - 21));
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"2027-01-21\""), "{json}");
        let back: Policy = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        let unknown: Result<Policy, _> = serde_json::from_str(r#"{"required":"sometimes"}"#);
        assert!(unknown.is_err());
    }
}
