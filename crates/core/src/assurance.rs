//! Assurance levels and the forward-auth rules that ask for them: which level a request to a
//! host and path needs, and whether a session reaches it. Pure functions of the rules and the
//! session's `amr`, shared by forward-auth and (later) OIDC `acr_values`.

use crate::model::{Session, SessionKind};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assurance {
    /// Anyone, signed in or not.
    Public,
    /// A full session: the password (and the second step, where the account has 2FA; a
    /// remembered browser skips it).
    OneFactor,
    /// A second factor proven in this session (`amr` has `mfa`).
    #[default]
    TwoFactors,
    /// A security key or passkey that verified the user (`amr` has `hwk` or `swk`, and `user`).
    PhishingResistant,
}

impl Assurance {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::OneFactor => "one_factor",
            Self::TwoFactors => "two_factors",
            Self::PhishingResistant => "phishing_resistant",
        }
    }

    /// The highest level `session` reaches.
    pub fn of(session: &Session) -> Self {
        if session.kind != SessionKind::Full {
            return Self::Public;
        }
        let has = |m: &str| session.amr.iter().any(|a| a == m);
        if (has("hwk") || has("swk")) && has("user") {
            Self::PhishingResistant
        } else if has("mfa") {
            Self::TwoFactors
        } else {
            Self::OneFactor
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The host the proxy protects (`app.example.com`), or `*` for any; ports are ignored.
    pub host: String,
    /// Paths starting with this; the longest matching prefix wins.
    #[serde(default = "root")]
    pub path_prefix: String,
    pub require: Assurance,
}

fn root() -> String {
    "/".into()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthRules {
    /// What a request no rule matches needs.
    pub default: Assurance,
    pub rules: Vec<Rule>,
}

impl ForwardAuthRules {
    pub fn validate(&self) -> Result<(), String> {
        for r in &self.rules {
            if r.host.trim().is_empty() || r.host.contains('/') {
                return Err(format!("forward_auth.rules: bad host {:?}", r.host));
            }
            if !r.path_prefix.starts_with('/') {
                return Err(format!(
                    "forward_auth.rules: path_prefix {:?} must start with /",
                    r.path_prefix
                ));
            }
        }
        Ok(())
    }

    /// The level a request to `host` (with or without port) and `path` needs. An exact host
    /// beats `*`; then the longest prefix.
    pub fn required(&self, host: &str, path: &str) -> Assurance {
        let host = strip_port(host).to_ascii_lowercase();
        self.rules
            .iter()
            .filter(|r| r.host == "*" || r.host.eq_ignore_ascii_case(&host))
            .filter(|r| path.starts_with(&r.path_prefix))
            .max_by_key(|r| (r.host != "*", r.path_prefix.len()))
            .map(|r| r.require)
            .unwrap_or(self.default)
    }

    /// Whether `host` is one the rules name, so a sign-in may send the browser back there.
    pub fn names_host(&self, host: &str) -> bool {
        let host = strip_port(host);
        self.rules.iter().any(|r| r.host.eq_ignore_ascii_case(host))
    }
}

/// `example.com:8443` → `example.com`; `[::1]:80` → `[::1]`.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;
    use uuid::Uuid;

    fn session(kind: SessionKind, amr: &[&str]) -> Session {
        let now = OffsetDateTime::UNIX_EPOCH;
        Session {
            id: Uuid::nil(),
            account_id: Uuid::nil(),
            kind,
            factor_failures: 0,
            step_up_at: None,
            amr: amr.iter().map(|s| s.to_string()).collect(),
            auth_time: now,
            created_at: now,
            last_seen_at: now,
            expires_at: now,
            ip: None,
            user_agent: None,
            security_stamp: String::new(),
        }
    }

    #[test]
    fn levels_of_sessions() {
        use SessionKind::*;
        assert_eq!(
            Assurance::of(&session(Partial, &["pwd"])),
            Assurance::Public
        );
        assert_eq!(Assurance::of(&session(Device, &["pwd"])), Assurance::Public);
        assert_eq!(
            Assurance::of(&session(Enrollment, &["pwd"])),
            Assurance::Public
        );
        assert_eq!(
            Assurance::of(&session(Full, &["pwd"])),
            Assurance::OneFactor
        );
        assert_eq!(
            Assurance::of(&session(Full, &["pwd", "otp", "mfa"])),
            Assurance::TwoFactors
        );
        // A key without user verification is a second factor, not phishing-resistant.
        assert_eq!(
            Assurance::of(&session(Full, &["pwd", "hwk", "mfa"])),
            Assurance::TwoFactors
        );
        assert_eq!(
            Assurance::of(&session(Full, &["hwk", "user", "mfa"])),
            Assurance::PhishingResistant
        );
        assert!(Assurance::PhishingResistant > Assurance::TwoFactors);
        assert!(Assurance::TwoFactors > Assurance::OneFactor);
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let rules = ForwardAuthRules {
            default: Assurance::TwoFactors,
            rules: vec![
                Rule {
                    host: "*".into(),
                    path_prefix: "/health".into(),
                    require: Assurance::Public,
                },
                Rule {
                    host: "app.example.com".into(),
                    path_prefix: "/".into(),
                    require: Assurance::OneFactor,
                },
                Rule {
                    host: "app.example.com".into(),
                    path_prefix: "/admin".into(),
                    require: Assurance::PhishingResistant,
                },
            ],
        };
        assert_eq!(
            rules.required("app.example.com:8443", "/admin/users"),
            Assurance::PhishingResistant
        );
        assert_eq!(rules.required("APP.example.com", "/"), Assurance::OneFactor);
        assert_eq!(
            rules.required("app.example.com", "/health"),
            Assurance::OneFactor,
            "exact host beats *"
        );
        assert_eq!(
            rules.required("other.example.com", "/health"),
            Assurance::Public
        );
        assert_eq!(
            rules.required("other.example.com", "/x"),
            Assurance::TwoFactors
        );
        assert!(rules.names_host("app.example.com:443"));
        assert!(!rules.names_host("evil.example"));
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
    }

    #[test]
    fn validation() {
        let bad = ForwardAuthRules {
            default: Assurance::OneFactor,
            rules: vec![Rule {
                host: "a.example".into(),
                path_prefix: "admin".into(),
                require: Assurance::Public,
            }],
        };
        assert!(bad.validate().is_err());
        assert!(ForwardAuthRules::default().validate().is_ok());
    }
}
