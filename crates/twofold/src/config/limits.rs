//! `[limits]`: the attempt budgets for passwords and second factors, and the tries one
//! sign-in gets. The defaults are the documented ones; every check pays its attempt against
//! these before it looks at the guess.

use serde::{Deserialize, Serialize};
use twofold_core::throttle::Budget;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "LimitsInput")]
pub struct LimitsSettings {
    /// Passwords tried for one account (or one address without an account).
    pub login_per_account: BudgetSettings,
    /// Passwords tried from one client address, whatever the account.
    pub login_per_address: BudgetSettings,
    /// Second-factor codes, keys and backup codes, and new-device codes, per account or API
    /// subject, across sign-ins.
    pub second_factor: BudgetSettings,
    /// Codes one waiting sign-in may try (second step or new-device code) before it ends.
    pub tries_per_sign_in: u32,
}

/// One budget: `free` attempts, then a wait of `base_delay_seconds` doubling with each
/// further attempt up to `max_delay_seconds`; attempts older than `window_minutes` are
/// forgotten, and a success forgets them at once.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BudgetSettings {
    pub free: u32,
    pub base_delay_seconds: u32,
    pub max_delay_seconds: u32,
    pub window_minutes: u32,
}

/// `[limits]` as written: any field of a budget may be left out, and keeps its default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct LimitsInput {
    login_per_account: BudgetInput,
    login_per_address: BudgetInput,
    second_factor: BudgetInput,
    tries_per_sign_in: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct BudgetInput {
    free: Option<u32>,
    base_delay_seconds: Option<u32>,
    max_delay_seconds: Option<u32>,
    window_minutes: Option<u32>,
}

impl BudgetInput {
    fn over(self, default: Budget) -> BudgetSettings {
        let d = BudgetSettings::from(default);
        BudgetSettings {
            free: self.free.unwrap_or(d.free),
            base_delay_seconds: self.base_delay_seconds.unwrap_or(d.base_delay_seconds),
            max_delay_seconds: self.max_delay_seconds.unwrap_or(d.max_delay_seconds),
            window_minutes: self.window_minutes.unwrap_or(d.window_minutes),
        }
    }
}

impl From<LimitsInput> for LimitsSettings {
    fn from(i: LimitsInput) -> Self {
        Self {
            login_per_account: i.login_per_account.over(Budget::login_per_account()),
            login_per_address: i.login_per_address.over(Budget::login_per_ip()),
            second_factor: i.second_factor.over(Budget::second_factor()),
            tries_per_sign_in: i.tries_per_sign_in.unwrap_or(5),
        }
    }
}

impl From<Budget> for BudgetSettings {
    fn from(b: Budget) -> Self {
        let secs = |d: time::Duration| u32::try_from(d.whole_seconds()).unwrap_or(u32::MAX);
        Self {
            free: b.free_failures,
            base_delay_seconds: secs(b.base_delay),
            max_delay_seconds: secs(b.max_delay),
            window_minutes: u32::try_from(b.window.whole_minutes()).unwrap_or(u32::MAX),
        }
    }
}

impl BudgetSettings {
    pub fn budget(&self) -> Budget {
        Budget {
            free_failures: self.free,
            base_delay: time::Duration::seconds(i64::from(self.base_delay_seconds)),
            max_delay: time::Duration::seconds(i64::from(self.max_delay_seconds)),
            window: time::Duration::minutes(i64::from(self.window_minutes)),
        }
    }

    fn check(&self, name: &str) -> Result<(), String> {
        if self.free > 1000 {
            return Err(format!("limits.{name}.free must be at most 1000"));
        }
        if self.base_delay_seconds == 0 || self.base_delay_seconds > self.max_delay_seconds {
            return Err(format!(
                "limits.{name}: base_delay_seconds must be at least 1 and at most max_delay_seconds"
            ));
        }
        if self.max_delay_seconds > 86_400 {
            return Err(format!(
                "limits.{name}.max_delay_seconds must be at most 86400"
            ));
        }
        if !(1..=10_080).contains(&self.window_minutes) {
            return Err(format!(
                "limits.{name}.window_minutes must be 1 to 10080 (a week)"
            ));
        }
        Ok(())
    }
}

impl Default for LimitsSettings {
    fn default() -> Self {
        LimitsInput::default().into()
    }
}

impl LimitsSettings {
    pub fn check(&self) -> Result<(), String> {
        self.login_per_account.check("login_per_account")?;
        self.login_per_address.check("login_per_address")?;
        self.second_factor.check("second_factor")?;
        if !(1..=20).contains(&self.tries_per_sign_in) {
            return Err("limits.tries_per_sign_in must be 1 to 20".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_documented_budgets() {
        let l = LimitsSettings::default();
        assert_eq!(l.login_per_account.budget(), Budget::login_per_account());
        assert_eq!(l.login_per_address.budget(), Budget::login_per_ip());
        assert_eq!(l.second_factor.budget(), Budget::second_factor());
        assert!(l.check().is_ok());
    }

    #[test]
    fn a_budget_field_left_out_keeps_its_own_default() {
        let l: LimitsSettings =
            toml::from_str("[second_factor]\nfree = 3\n[login_per_account]\nwindow_minutes = 5")
                .unwrap();
        assert_eq!(l.second_factor.free, 3);
        assert_eq!(l.second_factor.base_delay_seconds, 30);
        assert_eq!(l.login_per_account.window_minutes, 5);
        assert_eq!(l.login_per_account.free, 5);
        assert_eq!(l.login_per_address.budget(), Budget::login_per_ip());
        assert!(toml::from_str::<LimitsSettings>("[second_factor]\nfre = 3").is_err());
    }
}
