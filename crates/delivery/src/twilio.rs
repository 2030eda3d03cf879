//! SMS through Twilio's Messages API.

use crate::http;
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use twofold_core::phone;
use twofold_core::ports::{Deliver, DeliveryError, Message};
use uuid::Uuid;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    pub account_sid: String,
    #[serde(skip_serializing)]
    pub auth_token: SecretString,
    /// The sending number (E.164); or use `messaging_service_sid`.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_base_url() -> String {
    "https://api.twilio.com".into()
}

fn default_timeout() -> u64 {
    10
}

impl std::fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"[redacted]")
            .field("from", &self.from)
            .field("messaging_service_sid", &self.messaging_service_sid)
            .field("base_url", &self.base_url)
            .finish()
    }
}

pub struct TwilioSms {
    config: TwilioConfig,
    client: reqwest::Client,
}

impl TwilioSms {
    pub fn new(config: TwilioConfig) -> Result<Self, String> {
        if config.account_sid.trim().is_empty() || config.auth_token.expose_secret().is_empty() {
            return Err("sms.twilio needs account_sid and auth_token".into());
        }
        match (&config.from, &config.messaging_service_sid) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(
                    "sms.twilio needs exactly one of `from` and `messaging_service_sid`".into(),
                );
            }
        }
        let client = http::client(config.timeout_secs)?;
        Ok(Self { config, client })
    }
}

#[derive(Deserialize)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}

#[async_trait]
impl Deliver for TwilioSms {
    async fn deliver(&self, id: Uuid, message: &Message) -> Result<(), DeliveryError> {
        let Message::Sms(sms) = message else {
            return Err(DeliveryError::Permanent(
                "the Twilio adapter sends text messages only".into(),
            ));
        };
        let c = &self.config;
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            c.base_url.trim_end_matches('/'),
            c.account_sid
        );
        let mut form = vec![("To", sms.to.as_str()), ("Body", sms.text.as_str())];
        if let Some(from) = &c.from {
            form.push(("From", from));
        }
        if let Some(service) = &c.messaging_service_sid {
            form.push(("MessagingServiceSid", service));
        }
        tracing::debug!(to = %phone::mask(&sms.to), message_id = %id, "sending SMS through Twilio");
        let response = self
            .client
            .post(url)
            .basic_auth(&c.account_sid, Some(c.auth_token.expose_secret()))
            .header("I-Twilio-Idempotency-Token", id.to_string())
            .form(&form)
            .send()
            .await
            .map_err(http::transport_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Twilio's error body names the problem (21211: invalid 'To' number); never the text.
        let detail = match response.json::<TwilioError>().await {
            Ok(TwilioError { code, message }) => format!(
                " (Twilio error {}: {})",
                code.map(|c| c.to_string()).unwrap_or_default(),
                message.unwrap_or_default()
            ),
            Err(_) => String::new(),
        };
        http::classify(status, detail)
    }
}
