//! Configuration: built-in defaults < TOML file (`--config`) < `TWOFOLD_*` environment
//! variables (`__` separates levels: `TWOFOLD_DATABASE__URL`) < command-line flags.
//! Unknown keys are an error, so a typo never silently falls back to a default.

use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use twofold_delivery::{SmsConfig, SmtpConfig};
use twofold_web::Branding;

/// Environment variables with the prefix that are not configuration keys.
const NOT_CONFIG: &[&str] = &["TWOFOLD_LOG", "TWOFOLD_BIN"];
const NOT_CONFIG_PREFIXES: &[&str] = &["TWOFOLD_TEST_", "TWOFOLD_E2E_", "TWOFOLD_BENCH_"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address and port to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Where the SQLite database and the data-encryption keys live.
    pub data_dir: PathBuf,
    /// The URL users reach Twofold at (scheme, host, port). Default: derived from `listen`.
    pub public_url: Option<String>,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` is trusted. Empty: ignore the header.
    #[serde(deserialize_with = "crate::proxies::deserialize")]
    pub trusted_proxies: Vec<IpNet>,
    /// A directory whose templates override the built-in ones of the same name.
    pub templates_dir: Option<PathBuf>,
    /// The data-encryption key file. Default: `<data_dir>/data-keys`.
    pub keys_file: Option<PathBuf>,
    pub database: DatabaseSettings,
    pub mail: MailSettings,
    /// Which gateway sends text messages (`log` in development).
    pub sms: SmsConfig,
    pub webauthn: WebauthnSettings,
    pub session: SessionSettings,
    pub password_hashing: HashingSettings,
    pub second_factor: SecondFactorSettings,
    /// Who must use two-step verification. `twofold policy set` stores a policy in the
    /// database, which then wins over this section (and applies without a restart).
    pub policy: twofold_core::policy::Policy,
    /// A sign-in from a browser or IP network the account has not used needs a code sent by
    /// email first (on by default), and the owner hears of every new device.
    pub devices: twofold_core::device::DeviceSettings,
    /// What requests a reverse proxy checks with `GET /api/v1/forward-auth` need, per host
    /// and path prefix: `public`, `one_factor`, `two_factors` or `phishing_resistant`.
    pub forward_auth: twofold_core::assurance::ForwardAuthRules,
    /// Lifetimes of what the OpenID Connect provider hands out.
    pub oidc: OidcSettings,
    pub metrics: MetricsSettings,
    pub branding: Branding,
}

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

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
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

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("twofold-data"),
            public_url: None,
            log_format: LogFormat::Text,
            trusted_proxies: Vec::new(),
            templates_dir: None,
            keys_file: None,
            database: DatabaseSettings::default(),
            mail: MailSettings::default(),
            sms: SmsConfig::default(),
            webauthn: WebauthnSettings::default(),
            session: SessionSettings::default(),
            password_hashing: HashingSettings::default(),
            second_factor: SecondFactorSettings::default(),
            policy: Default::default(),
            devices: Default::default(),
            forward_auth: Default::default(),
            oidc: Default::default(),
            metrics: Default::default(),
            branding: Branding::default(),
        }
    }
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

/// Flags that override everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
}

impl Settings {
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if !path.is_file() {
                bail!("configuration file {} does not exist", path.display());
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("TWOFOLD_"))
            .filter(|(k, _)| !NOT_CONFIG.contains(&k.as_str()))
            .filter(|(k, _)| !NOT_CONFIG_PREFIXES.iter().any(|p| k.starts_with(p)))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("TWOFOLD")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("trusted_proxies")
                .with_list_parse_key("webauthn.origins")
                .with_list_parse_key("webauthn.allowed_aaguids")
                .with_list_parse_key("second_factor.send_limits.sms_countries")
                .with_list_parse_key("policy.allowed_methods")
                .try_parsing(true)
                .source(Some(env.into_iter().collect())),
        );
        let mut settings: Settings = builder
            .build()
            .context("reading configuration")?
            .try_deserialize()
            .context("invalid configuration")?;
        if let Some(l) = overrides.listen {
            settings.listen = l;
        }
        if let Some(d) = &overrides.data_dir {
            settings.data_dir = d.clone();
        }
        if let Some(f) = overrides.log_format {
            settings.log_format = f;
        }
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<()> {
        if self.mail.delivery == MailDelivery::Smtp && self.mail.smtp.is_none() {
            bail!("mail.delivery = \"smtp\" needs a [mail.smtp] section");
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("public_url must start with http:// or https://");
        }
        twofold_delivery::build_sms(&self.sms).map_err(|e| anyhow::anyhow!(e))?;
        if let Some(public) = &self.public_url {
            twofold_core::factor::webauthn::relying_party(
                &self.webauthn.relying_party(),
                public,
                "Twofold",
            )
            .map_err(|e| anyhow::anyhow!("webauthn: {e}"))?;
        }
        let sf = &self.second_factor;
        if !(4..=10).contains(&sf.code_length) {
            bail!("second_factor.code_length must be 4 to 10 digits");
        }
        if !(1..=60).contains(&sf.code_ttl_minutes) {
            bail!("second_factor.code_ttl_minutes must be 1 to 60");
        }
        if !(1..=10).contains(&sf.code_attempts) {
            bail!("second_factor.code_attempts must be 1 to 10");
        }
        if let Some(c) = sf
            .send_limits
            .sms_countries
            .iter()
            .find(|c| c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_alphabetic()))
        {
            bail!(
                "second_factor.send_limits.sms_countries: {c:?} is not a two-letter country code"
            );
        }
        if self.second_factor.totp_window > 3 {
            bail!("second_factor.totp_window must be 0 to 3 steps");
        }
        if self.session.trusted_browser_days > 365 {
            bail!("session.trusted_browser_days must be 0 (off) to 365");
        }
        if !(1..=3600).contains(&self.session.step_up_seconds) {
            bail!("session.step_up_seconds must be 1 to 3600");
        }
        if self.session.idle_timeout_minutes == 0 || self.session.lifetime_hours == 0 {
            bail!("session timeouts must be positive");
        }
        if self.oidc.access_token_minutes == 0
            || self.oidc.id_token_minutes == 0
            || self.oidc.refresh_token_days == 0
        {
            bail!("oidc: token lifetimes must be at least 1");
        }
        if let Err(m) = self.devices.validate() {
            bail!("{m}");
        }
        if let Err(m) = self.policy.validate() {
            bail!("policy: {m}");
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        use secrecy::ExposeSecret;
        match &self.database.url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("twofold.db").display()
            ),
        }
    }

    pub fn keys_path(&self) -> PathBuf {
        self.keys_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("data-keys"))
    }

    /// The public URL, derived from the bound address when not configured.
    pub fn public_url_for(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let host = if bound.ip().is_unspecified() {
                    "127.0.0.1".to_owned()
                } else if bound.is_ipv6() {
                    format!("[{}]", bound.ip())
                } else {
                    bound.ip().to_string()
                };
                format!("http://{host}:{}", bound.port())
            }
        }
    }

    /// The effective configuration as TOML, with every secret replaced by `[redacted]`.
    pub fn redacted_toml(&self) -> Result<String> {
        let mut value = toml::Value::try_from(self).context("serializing configuration")?;
        let url = redact_url(&self.database_url());
        if let Some(db) = value.get_mut("database").and_then(|v| v.as_table_mut()) {
            db.insert("url".into(), toml::Value::String(url));
        }
        if let Some(smtp) = &self.mail.smtp
            && smtp.password.is_some()
            && let Some(t) = value
                .get_mut("mail")
                .and_then(|m| m.get_mut("smtp"))
                .and_then(|s| s.as_table_mut())
        {
            t.insert("password".into(), toml::Value::String("[redacted]".into()));
        }
        if self.metrics.bearer_token.is_some()
            && let Some(t) = value.get_mut("metrics").and_then(|m| m.as_table_mut())
        {
            t.insert(
                "bearer_token".into(),
                toml::Value::String("[redacted]".into()),
            );
        }
        toml::to_string_pretty(&value).context("formatting configuration")
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:[redacted]@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_database_password() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/twofold"),
            "postgres://app:[redacted]@db:5432/twofold"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twofold.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9999\"\nlisen = 1\n").unwrap();
        let err = Settings::load(Some(&path), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twofold.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\n[mail]\ndelivery = \"smtp\"\n[mail.smtp]\nhost = \"mail\"\nport = 587\nsecurity = \"starttls\"\nusername = \"u\"\npassword = \"topsecret\"\nfrom = \"a@example.com\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path), &Overrides::default()).unwrap();
        assert_eq!(s.listen.port(), 9999);
        let printed = s.redacted_toml().unwrap();
        assert!(!printed.contains("topsecret"));
        assert!(printed.contains("[redacted]"));
        assert!(!format!("{s:?}").contains("topsecret"));
        let o = Overrides {
            listen: Some("127.0.0.1:7000".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(Settings::load(Some(&path), &o).unwrap().listen.port(), 7000);
    }

    #[test]
    fn forward_auth_rules_are_canonical_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twofold.toml");
        let load = |rule: &str| {
            let toml = format!("[[forward_auth.rules]]\nrequire = \"public\"\n{rule}\n");
            std::fs::write(&path, toml).unwrap();
            Settings::load(Some(&path), &Overrides::default()).map_err(|e| format!("{e:#}"))
        };
        let s = load("host = \"A.example.:8443\"\npath_prefix = \"//x/\"").unwrap();
        let r = &s.forward_auth.rules[0];
        assert_eq!(format!("{} {}", r.host, r.path_prefix), "a.example:8443 /x");
        let bad = |rule| load(rule).is_err_and(|e| e.contains("forward_auth.rules"));
        assert!(bad("host = \"u@a.example\"") && bad("host = \"a\"\npath_prefix = \"/%2F\""));
    }
}
