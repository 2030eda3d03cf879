//! Text messages through a gateway: Twilio's Messages API, or a signed HTTPS webhook the
//! operator runs. The `[sms]` section of the configuration picks one; `log` (the default) is
//! for development only.

mod twilio;
mod webhook;

pub use twilio::{TwilioConfig, TwilioSms};
pub use webhook::{WebhookConfig, WebhookSms, webhook_signature};

use crate::LogDelivery;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use twofold_core::ports::{Deliver, DeliveryError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsAdapter {
    /// Development: texts are printed to the log, codes included.
    #[default]
    Log,
    Twilio,
    Webhook,
}

impl SmsAdapter {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Twilio => "twilio",
            Self::Webhook => "webhook",
        }
    }
}

/// `[sms]`: `adapter` names the gateway, and that gateway's own section must be present.
/// `Debug` is safe to log: the adapters' configurations redact their secrets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    pub adapter: SmsAdapter,
    pub twilio: Option<TwilioConfig>,
    pub webhook: Option<WebhookConfig>,
}

/// Why the `[sms]` section cannot be used. Raised at start-up, so the messages name the key
/// an operator has to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsConfigError {
    #[error("sms.adapter is \"{0}\" but there is no [sms.{0}] section")]
    MissingSection(&'static str),
    #[error("sms.{key}: {problem}")]
    Invalid { key: &'static str, problem: String },
    #[error("cannot build the HTTP client for the SMS gateway: {0}")]
    HttpClient(String),
}

impl SmsConfigError {
    pub(crate) fn invalid(key: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            key,
            problem: problem.into(),
        }
    }
}

/// The adapter the configuration names, ready to send.
pub fn build_sms(config: &SmsConfig) -> Result<Arc<dyn Deliver>, SmsConfigError> {
    let missing = || SmsConfigError::MissingSection(config.adapter.as_str());
    Ok(match config.adapter {
        SmsAdapter::Log => Arc::new(LogDelivery),
        SmsAdapter::Twilio => Arc::new(TwilioSms::new(config.twilio.clone().ok_or_else(missing)?)?),
        SmsAdapter::Webhook => Arc::new(WebhookSms::new(
            config.webhook.clone().ok_or_else(missing)?,
        )?),
    })
}

/// Checks a gateway URL; plain http is allowed (local relays, tests) but warned about when
/// it leaves the machine, because the texts carry live codes.
fn check_url(key: &'static str, raw: &str) -> Result<reqwest::Url, SmsConfigError> {
    let url = reqwest::Url::parse(raw)
        .map_err(|e| SmsConfigError::invalid(key, format!("not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let host = url.host_str().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let local = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !local {
                tracing::warn!(
                    "sms.{key} uses plain http: text messages and their codes travel unencrypted"
                );
            }
        }
        _ => return Err(SmsConfigError::invalid(key, "must be an https:// URL")),
    }
    Ok(url)
}

fn check_timeout(key: &'static str, secs: u64) -> Result<Duration, SmsConfigError> {
    if (1..=120).contains(&secs) {
        Ok(Duration::from_secs(secs))
    } else {
        Err(SmsConfigError::invalid(key, "must be 1 to 120 seconds"))
    }
}

/// One client per adapter, built once: rustls on the ring provider (never aws-lc or OpenSSL),
/// no redirects (a gateway that redirects is misconfigured, and a redirect would carry the
/// code to another host).
fn client(timeout: Duration) -> Result<reqwest::Client, SmsConfigError> {
    // The binary installs it at start; libraries and tests may not have.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Twofold/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SmsConfigError::HttpClient(e.to_string()))
}

/// 429 and 5xx (and no answer at all) are worth retrying; any other refusal is not.
fn classify(status: StatusCode, detail: String) -> Result<(), DeliveryError> {
    if status.is_success() {
        Ok(())
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(DeliveryError::Temporary(format!(
            "gateway answered {status}{detail}"
        )))
    } else {
        Err(DeliveryError::Permanent(format!(
            "gateway refused the message: {status}{detail}"
        )))
    }
}

fn transport_error(e: reqwest::Error) -> DeliveryError {
    // Strip the URL: a webhook URL may carry a token in its query.
    let e = e.without_url();
    let mut text = if e.is_timeout() {
        "no answer in time".to_owned()
    } else {
        e.to_string()
    };
    // reqwest's own text is "error sending request"; the operator needs the cause below it
    // (connection refused, DNS, TLS).
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    DeliveryError::Temporary(format!("gateway unreachable: {text}"))
}
