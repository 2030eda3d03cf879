//! Assurance levels and the forward-auth rules that ask for them: which level a request to a
//! host and path needs, and whether a session reaches it. Pure functions of the rules and the
//! session's `amr`, shared by forward-auth and (later) OIDC `acr_values`.

use crate::canonical::{CanonicalPath, Origin, PathView, RequestTarget, RuleHost, UrlError};
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
    /// The host the proxy protects (`app.example.com`: its default http and https ports;
    /// `app.example.com:8443`: that port), or `*` for any host and port.
    pub host: RuleHost,
    /// Paths under this prefix; the most specific matching prefix wins.
    #[serde(default = "root")]
    pub path_prefix: CanonicalPath,
    pub require: Assurance,
}

impl Rule {
    /// A rule from configuration-style strings, made canonical (or why it cannot be).
    pub fn new(host: &str, path_prefix: &str, require: Assurance) -> Result<Self, UrlError> {
        Ok(Self {
            host: RuleHost::parse(host)?,
            path_prefix: CanonicalPath::parse(path_prefix)?,
            require,
        })
    }
}

fn root() -> CanonicalPath {
    CanonicalPath::parse("/").expect("/ is canonical")
}

/// Rules are canonical once deserialized: a host or prefix without a canonical form fails the
/// configuration load, naming the rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthRules {
    /// What a request no rule matches needs.
    pub default: Assurance,
    pub rules: Vec<Rule>,
}

impl ForwardAuthRules {
    /// The level a request needs: the strictest over every reading of its path (see
    /// [`crate::canonical::PathReadings`]), each matched by whole segments and as text, so
    /// that neither a spelling nor a partial segment (`/adminx`, `/publicity`) gets past a
    /// rule or into a more lenient one.
    pub fn required(&self, target: &RequestTarget) -> Assurance {
        target
            .path
            .views()
            .iter()
            .flat_map(|v| [true, false].map(|whole| self.required_reading(target, v, whole)))
            .max()
            .unwrap_or(self.default)
    }

    /// For one reading: an exact host beats `*`, then the most specific prefix, then (between
    /// equals) the stricter rule.
    fn required_reading(&self, target: &RequestTarget, view: &PathView, whole: bool) -> Assurance {
        let origin = &target.origin;
        self.rules
            .iter()
            .filter(|r| r.host.covers(origin.scheme, &origin.authority))
            .filter(|r| r.path_prefix.matches(view, whole))
            .max_by_key(|r| (!r.host.is_any(), r.path_prefix.specificity(), r.require))
            .map(|r| r.require)
            .unwrap_or(self.default)
    }

    /// Whether a rule names `origin`'s host and port (`*` does not), so that a sign-in may
    /// send the browser back there.
    pub fn names(&self, origin: &Origin) -> bool {
        self.rules
            .iter()
            .any(|r| !r.host.is_any() && r.host.covers(origin.scheme, &origin.authority))
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

    fn need(rules: &ForwardAuthRules, url: &str) -> Assurance {
        rules.required(&RequestTarget::from_url(url).unwrap())
    }

    fn rules() -> ForwardAuthRules {
        ForwardAuthRules {
            default: Assurance::TwoFactors,
            rules: vec![
                Rule::new("*", "/health", Assurance::Public).unwrap(),
                Rule::new("app.example.com", "/", Assurance::OneFactor).unwrap(),
                Rule::new("app.example.com", "/admin", Assurance::PhishingResistant).unwrap(),
                Rule::new("app.example.com", "/admin/static", Assurance::Public).unwrap(),
                Rule::new("app.example.com:8443", "/", Assurance::Public).unwrap(),
            ],
        }
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let r = rules();
        assert_eq!(
            need(&r, "https://app.example.com/admin/users"),
            Assurance::PhishingResistant
        );
        assert_eq!(need(&r, "http://APP.example.com./"), Assurance::OneFactor);
        assert_eq!(
            need(&r, "https://app.example.com/health"),
            Assurance::OneFactor,
            "exact host beats *"
        );
        assert_eq!(
            need(&r, "https://other.example.com/health"),
            Assurance::Public
        );
        assert_eq!(
            need(&r, "https://other.example.com/x"),
            Assurance::TwoFactors
        );
        assert_eq!(
            need(&r, "https://app.example.com/admin/static/a.css"),
            Assurance::Public
        );
    }

    #[test]
    fn ports_are_part_of_the_host() {
        let r = rules();
        assert_eq!(
            need(&r, "https://app.example.com:8443/admin"),
            Assurance::Public
        );
        assert_eq!(
            need(&r, "https://app.example.com:9443/"),
            Assurance::TwoFactors
        );
        assert_eq!(
            need(&r, "http://app.example.com:443/"),
            Assurance::TwoFactors
        );
        assert_eq!(
            need(&r, "https://app.example.com:443/"),
            Assurance::OneFactor
        );
        let origin = |u: &str| RequestTarget::from_url(u).unwrap().origin;
        assert!(r.names(&origin("https://app.example.com./x")));
        assert!(r.names(&origin("http://app.example.com:8443/")));
        assert!(!r.names(&origin("https://app.example.com:1/")));
        assert!(
            !r.names(&origin("https://evil.example/")),
            "* names no host"
        );
    }

    #[test]
    fn no_spelling_lowers_the_requirement() {
        let r = rules();
        for path in [
            "/%61dmin",
            "//admin",
            "/Admin",
            "/./admin",
            "/x/../admin",
            "/adminx",
            "/admin/static/../users",
            "/admin/x/../static",
            "/admin/STATIC",
            "/admin/staticx",
            "/admin/%73tatic",
            "/admin/x;/../static",
            "/admin//../static",
        ] {
            assert_eq!(
                need(&r, &format!("https://app.example.com{path}")),
                Assurance::PhishingResistant,
                "{path}"
            );
        }
    }

    #[test]
    fn rules_are_canonical_when_loaded() {
        let parsed: ForwardAuthRules = serde_json::from_value(serde_json::json!({
            "default": "one_factor",
            "rules": [{ "host": "App.Example.com.", "path_prefix": "//x/../Admin/", "require": "public" }]
        }))
        .unwrap();
        assert_eq!(parsed.rules[0].host.to_string(), "app.example.com");
        assert_eq!(parsed.rules[0].path_prefix.to_string(), "/Admin");
        for (host, path) in [
            ("a.example", "admin"),
            ("a.example", "/a%2Fb"),
            ("a.example/x", "/"),
            ("user@a.example", "/"),
            ("*.example", "/"),
            ("", "/"),
        ] {
            let bad = serde_json::json!({ "rules": [{ "host": host, "path_prefix": path, "require": "public" }] });
            assert!(
                serde_json::from_value::<ForwardAuthRules>(bad).is_err(),
                "{host} {path}"
            );
        }
    }
}
