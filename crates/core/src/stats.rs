//! Enrollment statistics, the pure parts: what one day's audit events add up to, and the
//! report the console shows from the stored daily rows. The rows are written by a background
//! job (`Core::aggregate_stats`), so a page view reads at most 90 days of rows and scans
//! nothing.

use serde_json::Value;
use std::collections::BTreeMap;
use time::Date;

/// One stored number: `name` and `label` (a method, an outcome, a country) for a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRow {
    pub day: Date,
    pub name: String,
    pub label: String,
    pub value: i64,
}

/// Counted from the state of the database when the job runs (not from events).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Verified, not locked.
    pub active: i64,
    /// Active accounts with at least one active factor.
    pub with_two_factor: i64,
    /// Active accounts with an active factor of each kind.
    pub by_method: Vec<(String, i64)>,
    /// Active accounts without 2FA that the policy does not yet require it of.
    pub without_two_factor_not_required: i64,
}

impl Snapshot {
    pub fn rows(&self, day: Date, in_grace: bool) -> Vec<StatRow> {
        let row = |name: &str, label: &str, value| StatRow {
            day,
            name: name.into(),
            label: label.into(),
            value,
        };
        let mut rows = vec![
            row("active_accounts", "", self.active),
            row("with_two_factor", "", self.with_two_factor),
            row(
                "in_grace",
                "",
                if in_grace {
                    self.without_two_factor_not_required
                } else {
                    0
                },
            ),
        ];
        for (method, n) in &self.by_method {
            rows.push(row("with_method", method, *n));
        }
        rows
    }
}

/// The second-factor method behind a session's `amr` (RFC 8176: authenticator apps and
/// emailed codes are both `otp`).
fn method_of_amr(amr: &Value) -> Option<&'static str> {
    let has = |m: &str| {
        amr.as_array()
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(m)))
    };
    if !has("mfa") {
        return None;
    }
    Some(if has("hwk") || has("swk") {
        "webauthn"
    } else if has("sms") {
        "sms"
    } else {
        "otp"
    })
}

/// The counters one day's events add up to, by (name, label).
pub fn tally<'a>(
    events: impl IntoIterator<Item = (&'a str, &'a Value)>,
) -> BTreeMap<(String, String), i64> {
    let mut out = BTreeMap::new();
    let mut add = |name: &str, label: &str| {
        *out.entry((name.to_owned(), label.to_owned())).or_insert(0) += 1;
    };
    for (event, detail) in events {
        let kind = detail["type"].as_str().unwrap_or("unknown");
        match event {
            "factor_enrollment_started" => add("enroll_started", kind),
            "factor_added" => add("enroll_confirmed", kind),
            "login_succeeded" => {
                if let Some(m) = method_of_amr(&detail["amr"]) {
                    add("second_step", &format!("success:{m}"));
                }
            }
            "backup_code_used" => add("second_step", "success:backup_code"),
            "second_factor_failed" => add("second_step", "wrong_code"),
            "second_step_abandoned" => add("second_step", "expired"),
            "second_step_voided" => add("second_step", "locked_out"),
            "code_sent" if detail["channel"] == "sms" => {
                add("sms_sent", detail["country"].as_str().unwrap_or("unknown"))
            }
            _ => {}
        }
    }
    out
}

/// The events [`tally`] reads.
pub const TALLIED: [&str; 8] = [
    "factor_enrollment_started",
    "factor_added",
    "login_succeeded",
    "backup_code_used",
    "second_factor_failed",
    "second_step_abandoned",
    "second_step_voided",
    "code_sent",
];

/// One day of the trend.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendPoint {
    pub day: Date,
    pub active: i64,
    pub with_two_factor: i64,
    /// Percent of active accounts with 2FA.
    pub share: f64,
}

/// What the statistics page shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsReport {
    pub trend: Vec<TrendPoint>,
    /// (method, accounts with it, percent of active accounts), from the latest day.
    pub methods: Vec<(String, i64, f64)>,
    pub in_grace: i64,
    /// (method, started, confirmed, still active), started/confirmed summed over the period.
    pub funnel: Vec<(String, i64, i64, i64)>,
    /// (outcome label, count) summed over the period.
    pub second_step: Vec<(String, i64)>,
    /// (country, texts) summed over the period.
    pub sms_by_country: Vec<(String, i64)>,
}

fn percent(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64) * 100.0 / (whole as f64)
    }
}

impl StatsReport {
    pub fn from_rows(rows: &[StatRow]) -> Self {
        let mut by_day: BTreeMap<Date, (i64, i64)> = BTreeMap::new();
        let mut sums: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        let latest = rows
            .iter()
            .filter(|r| r.name == "active_accounts")
            .map(|r| r.day)
            .max();
        let mut methods = Vec::new();
        let mut in_grace = 0;
        for r in rows {
            match r.name.as_str() {
                "active_accounts" => by_day.entry(r.day).or_default().0 = r.value,
                "with_two_factor" => by_day.entry(r.day).or_default().1 = r.value,
                "with_method" if Some(r.day) == latest => methods.push((r.label.clone(), r.value)),
                "in_grace" if Some(r.day) == latest => in_grace = r.value,
                "enroll_started" | "enroll_confirmed" | "second_step" | "sms_sent" => {
                    *sums.entry((r.name.as_str(), r.label.as_str())).or_insert(0) += r.value
                }
                _ => {}
            }
        }
        let trend: Vec<TrendPoint> = by_day
            .into_iter()
            .map(|(day, (active, with))| TrendPoint {
                day,
                active,
                with_two_factor: with,
                share: percent(with, active),
            })
            .collect();
        let active_now = trend.last().map(|t| t.active).unwrap_or(0);
        methods.sort();
        let mut funnel_methods: Vec<String> = methods.iter().map(|(m, _)| m.clone()).collect();
        for (name, label) in sums.keys() {
            if (*name == "enroll_started" || *name == "enroll_confirmed")
                && !funnel_methods.iter().any(|m| m == label)
            {
                funnel_methods.push((*label).to_owned());
            }
        }
        funnel_methods.sort();
        let sum = |name: &str, label: &str| sums.get(&(name, label)).copied().unwrap_or(0);
        let funnel = funnel_methods
            .iter()
            .map(|m| {
                let active = methods
                    .iter()
                    .find(|(k, _)| k == m)
                    .map(|(_, n)| *n)
                    .unwrap_or(0);
                (
                    m.clone(),
                    sum("enroll_started", m),
                    sum("enroll_confirmed", m),
                    active,
                )
            })
            .collect();
        let pick = |name: &str| -> Vec<(String, i64)> {
            let mut v: Vec<(String, i64)> = sums
                .iter()
                .filter(|((n, _), _)| *n == name)
                .map(|((_, l), v)| ((*l).to_owned(), *v))
                .collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v
        };
        Self {
            methods: methods
                .into_iter()
                .map(|(m, n)| {
                    let p = percent(n, active_now);
                    (m, n, p)
                })
                .collect(),
            trend,
            in_grace,
            funnel,
            second_step: pick("second_step"),
            sms_by_country: pick("sms_sent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::date;

    #[test]
    fn events_add_up_by_method_outcome_and_country() {
        let events = [
            ("factor_enrollment_started", json!({"type": "totp"})),
            ("factor_enrollment_started", json!({"type": "totp"})),
            ("factor_added", json!({"type": "totp"})),
            ("login_succeeded", json!({"amr": ["pwd", "otp", "mfa"]})),
            ("login_succeeded", json!({"amr": ["pwd"]})),
            ("login_succeeded", json!({"amr": ["hwk", "user", "mfa"]})),
            ("second_factor_failed", json!({})),
            ("code_sent", json!({"channel": "sms", "country": "DE"})),
            ("code_sent", json!({"channel": "email"})),
            ("logout", json!({})),
        ];
        let t = tally(events.iter().map(|(e, d)| (*e, d)));
        let get = |n: &str, l: &str| t.get(&(n.to_owned(), l.to_owned())).copied();
        assert_eq!(get("enroll_started", "totp"), Some(2));
        assert_eq!(get("enroll_confirmed", "totp"), Some(1));
        assert_eq!(get("second_step", "success:otp"), Some(1));
        assert_eq!(get("second_step", "success:webauthn"), Some(1));
        assert_eq!(get("second_step", "wrong_code"), Some(1));
        assert_eq!(get("sms_sent", "DE"), Some(1));
        assert_eq!(t.len(), 6, "{t:?}");
    }

    #[test]
    fn the_report_takes_shares_from_the_latest_day_and_sums_the_rest() {
        let row = |day, name: &str, label: &str, value| StatRow {
            day,
            name: name.into(),
            label: label.into(),
            value,
        };
        let (d1, d2) = (date!(2026 - 11 - 30), date!(2026 - 12 - 01));
        let report = StatsReport::from_rows(&[
            row(d1, "active_accounts", "", 10),
            row(d1, "with_two_factor", "", 2),
            row(d1, "with_method", "totp", 2),
            row(d2, "active_accounts", "", 8),
            row(d2, "with_two_factor", "", 4),
            row(d2, "with_method", "totp", 3),
            row(d2, "with_method", "webauthn", 2),
            row(d2, "in_grace", "", 4),
            row(d1, "enroll_started", "totp", 3),
            row(d2, "enroll_started", "totp", 1),
            row(d2, "enroll_confirmed", "totp", 2),
            row(d2, "sms_sent", "US", 5),
        ]);
        assert_eq!(report.trend.len(), 2);
        assert_eq!(report.trend[0].share, 20.0);
        assert_eq!(report.trend[1].share, 50.0);
        assert_eq!(
            report.methods,
            [("totp".into(), 3, 37.5), ("webauthn".into(), 2, 25.0)]
        );
        assert_eq!(report.in_grace, 4);
        assert_eq!(
            report.funnel,
            [("totp".into(), 4, 2, 3), ("webauthn".into(), 0, 0, 2)]
        );
        assert_eq!(report.sms_by_country, [("US".into(), 5)]);
    }
}
