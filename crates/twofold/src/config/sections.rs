//! The sections of the configuration below the top level, with their defaults.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use twofold_delivery::SmtpConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcSettings {
    pub access_token_minutes: u32,
    pub id_token_minutes: u32,
    /// From the sign-in; each use rotates the token but does not extend this.
    pub refresh_token_days: u32,
    /// How long a replaced signing key stays in the JWK Set.
    pub retired_key_days: u32,
}

impl Default for OidcSettings {
    fn default() -> Self {
        let d = twofold_core::oidc::OidcSettings::default();
        Self {
            access_token_minutes: d.access_token_ttl.whole_minutes() as u32,
            id_token_minutes: d.id_token_ttl.whole_minutes() as u32,
            refresh_token_days: d.refresh_token_ttl.whole_days() as u32,
            retired_key_days: d.retired_key_ttl.whole_days() as u32,
        }
    }
}

impl OidcSettings {
    pub fn core(&self) -> twofold_core::oidc::OidcSettings {
        use time::Duration;
        twofold_core::oidc::OidcSettings {
            access_token_ttl: Duration::minutes(self.access_token_minutes.into()),
            id_token_ttl: Duration::minutes(self.id_token_minutes.into()),
            refresh_token_ttl: Duration::days(self.refresh_token_days.into()),
            retired_key_ttl: Duration::days(self.retired_key_days.into()),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// `/metrics` answers `Authorization: Bearer <token>`; without a token, loopback only.
    /// Printed by `config check` redacted.
    #[serde(skip_serializing)]
    pub bearer_token: Option<SecretString>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecondFactorSettings {
    /// TOTP steps accepted either side of the current one (clock drift of phones).
    pub totp_window: u32,
    /// Digits of codes sent by SMS or email (4–10).
    pub code_length: u8,
    /// How long a sent code stays valid.
    pub code_ttl_minutes: u32,
    /// Wrong tries one sent code takes before it is dead.
    pub code_attempts: u32,
    /// Minimum wait before another code goes to the same phone or address.
    pub resend_cooldown_seconds: u32,
    pub send_limits: SendLimits,
}

impl Default for SecondFactorSettings {
    fn default() -> Self {
        let codes = twofold_core::factor::otp_code::CodeSettings::default();
        Self {
            totp_window: 1,
            code_length: codes.length,
            code_ttl_minutes: codes.ttl.whole_minutes() as u32,
            code_attempts: codes.max_attempts,
            resend_cooldown_seconds: codes.resend_cooldown.whole_seconds() as u32,
            send_limits: SendLimits::default(),
        }
    }
}

/// The relying party security keys and passkeys are bound to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebauthnSettings {
    /// The relying party id: the public URL's host, or a parent domain of it (so that passkeys
    /// work on every subdomain). Default: the host of `public_url`.
    pub rp_id: String,
    /// Origins allowed to use the keys. Default: the origin of `public_url`.
    pub origins: Vec<String>,
    /// Authenticator models (AAGUIDs, e.g. "cb69481e-8ff7-4039-93ec-0a2729a154a8") allowed to
    /// register. Empty: any. The model is what the authenticator reports in its (direct)
    /// attestation; without an attestation CA list it is not cryptographically proven, so
    /// this guards against the wrong kind of key, not against a forged one.
    pub allowed_aaguids: Vec<uuid::Uuid>,
}

/// Quotas against SMS pumping and toll fraud. Counted in the database, so shared by all nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendLimits {
    pub sms_per_number_per_hour: u32,
    pub per_account_per_hour: u32,
    pub per_ip_per_hour: u32,
    pub sms_per_country_per_hour: u32,
    /// Text messages per UTC day for the whole installation; when spent, SMS is switched off
    /// until the next day (circuit breaker) and users are offered their other methods.
    pub sms_per_day: u32,
    /// ISO 3166 country codes (`["US", "DE"]`) phone numbers may be in. Empty: all.
    pub sms_countries: Vec<String>,
    pub emails_per_address_per_hour: u32,
}

impl Default for SendLimits {
    fn default() -> Self {
        let q = twofold_core::factor::otp_code::SendQuotas::default();
        Self {
            sms_per_number_per_hour: q.per_number_per_hour,
            per_account_per_hour: q.per_owner_per_hour,
            per_ip_per_hour: q.per_ip_per_hour,
            sms_per_country_per_hour: q.per_country_per_hour,
            sms_per_day: q.sms_per_day,
            sms_countries: q.allowed_countries,
            emails_per_address_per_hour: q.per_email_per_hour,
        }
    }
}

impl WebauthnSettings {
    pub fn relying_party(&self) -> twofold_core::factor::webauthn::RelyingParty {
        twofold_core::factor::webauthn::RelyingParty {
            id: self.rp_id.clone(),
            origins: self.origins.clone(),
            allowed_aaguids: self.allowed_aaguids.clone(),
        }
    }
}

impl SecondFactorSettings {
    pub fn code_settings(&self) -> twofold_core::factor::otp_code::CodeSettings {
        twofold_core::factor::otp_code::CodeSettings {
            length: self.code_length,
            ttl: time::Duration::minutes(i64::from(self.code_ttl_minutes)),
            max_attempts: self.code_attempts,
            resend_cooldown: time::Duration::seconds(i64::from(self.resend_cooldown_seconds)),
        }
    }

    pub fn send_quotas(&self) -> twofold_core::factor::otp_code::SendQuotas {
        let l = &self.send_limits;
        twofold_core::factor::otp_code::SendQuotas {
            per_number_per_hour: l.sms_per_number_per_hour,
            per_owner_per_hour: l.per_account_per_hour,
            per_ip_per_hour: l.per_ip_per_hour,
            per_country_per_hour: l.sms_per_country_per_hour,
            sms_per_day: l.sms_per_day,
            allowed_countries: l.sms_countries.iter().map(|c| c.to_uppercase()).collect(),
            per_email_per_hour: l.emails_per_address_per_hour,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://path?mode=rwc` or `postgres://user:password@host/db`. Default: SQLite in `data_dir`.
    /// Printed by `config check` with the password redacted.
    #[serde(skip_serializing)]
    pub url: Option<SecretString>,
    /// The main pool's size (SQLite: at most 4). Code checks keep 4 connections of their own
    /// besides (`twofold-code-checks` in PostgreSQL's `pg_stat_activity`).
    pub max_connections: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailSettings {
    /// `log` prints every message to the log (development); `smtp` sends it.
    pub delivery: MailDelivery,
    pub smtp: Option<SmtpConfig>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailDelivery {
    Log,
    Smtp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// Signed out after this long without activity.
    pub idle_timeout_minutes: u32,
    /// Signed out this long after signing in, active or not.
    pub lifetime_hours: u32,
    /// How recent a second factor must be for sensitive changes (adding or removing factors,
    /// new backup codes).
    pub step_up_seconds: u32,
    /// How long "remember this browser" lasts, from the moment it is ticked (signing in again
    /// does not extend it). 0 removes the option.
    pub trusted_browser_days: u32,
    /// Share the session cookie with this domain and its subdomains, so that forward-auth
    /// protects `app.example.com` while Twofold runs at `login.example.com`. Default: host only.
    pub cookie_domain: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashingSettings {
    /// Threads hashing passwords at once. Default: the number of cores.
    pub workers: Option<usize>,
    /// Logins allowed to wait for a worker; beyond that they get 503 with Retry-After.
    pub queue: usize,
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 16,
        }
    }
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            delivery: MailDelivery::Log,
            smtp: None,
        }
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle_timeout_minutes: 24 * 60,
            lifetime_hours: 14 * 24,
            step_up_seconds: 300,
            trusted_browser_days: 30,
            cookie_domain: None,
        }
    }
}

impl Default for HashingSettings {
    fn default() -> Self {
        Self {
            workers: None,
            queue: 32,
            memory_kib: 19 * 1024,
            iterations: 2,
        }
    }
}
