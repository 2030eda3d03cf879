//! Configuration: built-in defaults < TOML file (`--config`) < `TWOFOLD_*` environment
//! variables (`__` separates levels: `TWOFOLD_DATABASE__URL`) < command-line flags.
//! Unknown keys are an error, so a typo never silently falls back to a default.

use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use twofold_delivery::SmsConfig;
use twofold_web::Branding;

mod limits;
mod sections;

pub use limits::LimitsSettings;
pub use sections::*;

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
    /// Connection and request time limits of the HTTP server.
    pub server: crate::http::ServerSettings,
    /// Attempt budgets for passwords and second factors.
    pub limits: LimitsSettings,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
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
            server: Default::default(),
            limits: Default::default(),
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
        let config = builder.build().context("reading configuration")?;
        let mut settings: Settings = match config.clone().try_deserialize() {
            Ok(settings) => settings,
            Err(e) => bail!("invalid configuration: {}", explain(&config, e)),
        };
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
        self.server.check().map_err(anyhow::Error::msg)?;
        self.limits.check().map_err(anyhow::Error::msg)?;
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
/// The config crate names an unknown enum value by its Rust type ("enum LogFormat does not
/// have variant constructor xml"); serde's own message lists the values allowed. The same
/// settings are then read once more through serde_json, only to say that.
fn explain(config: &config::Config, e: config::ConfigError) -> String {
    let original = e.to_string();
    if !original.contains("does not have variant constructor") {
        return original;
    }
    let Ok(value) = config.clone().try_deserialize::<serde_json::Value>() else {
        return original;
    };
    match serde_path_to_error::deserialize::<_, Settings>(value) {
        Err(e) if e.inner().to_string().contains("unknown variant") => {
            format!("{}: {}", e.path(), e.inner())
        }
        _ => original,
    }
}

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
