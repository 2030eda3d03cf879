//! SMS through any HTTPS endpoint the operator runs: a JSON body signed with HMAC-SHA-256 over
//! the timestamp and the body, so the receiver can check it came from us, unchanged and fresh.

use crate::http;
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeMap;
use twofold_core::phone;
use twofold_core::ports::{Deliver, DeliveryError, Message};
use uuid::Uuid;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Shared with the receiver; signs every request.
    #[serde(skip_serializing)]
    pub secret: SecretString,
    /// Extra headers sent with every request (an API key of the receiver, say).
    #[serde(default, skip_serializing)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    10
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `v1=` and the lowercase hex HMAC-SHA-256 of `"{timestamp}.{body}"` under `secret`.
pub fn webhook_signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1={}",
        data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes())
    )
}

pub struct WebhookSms {
    config: WebhookConfig,
    headers: reqwest::header::HeaderMap,
    client: reqwest::Client,
}

impl WebhookSms {
    pub fn new(config: WebhookConfig) -> Result<Self, String> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| format!("sms.webhook.url is not a URL: {e}"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err("sms.webhook.url must be an https:// URL".into());
        }
        if config.secret.expose_secret().len() < 16 {
            return Err("sms.webhook.secret must be at least 16 characters".into());
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &config.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("sms.webhook.headers: {name:?} is not a header name"))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| format!("sms.webhook.headers: the value of {name} is not valid"))?;
            headers.insert(name, value);
        }
        let client = http::client(config.timeout_secs)?;
        Ok(Self {
            config,
            headers,
            client,
        })
    }
}

#[async_trait]
impl Deliver for WebhookSms {
    async fn deliver(&self, id: Uuid, message: &Message) -> Result<(), DeliveryError> {
        let Message::Sms(sms) = message else {
            return Err(DeliveryError::Permanent(
                "the webhook adapter sends text messages only".into(),
            ));
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "message_id": id,
            "to": sms.to,
            "text": sms.text,
        }))
        .map_err(|e| DeliveryError::Permanent(format!("cannot encode the message: {e}")))?;
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = webhook_signature(
            self.config.secret.expose_secret().as_bytes(),
            timestamp,
            &body,
        );
        tracing::debug!(to = %phone::mask(&sms.to), message_id = %id, "sending SMS through the webhook");
        let response = self
            .client
            .post(&self.config.url)
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Twofold-Timestamp", timestamp.to_string())
            .header("X-Twofold-Signature", signature)
            .header("Idempotency-Key", id.to_string())
            .body(body)
            .send()
            .await
            .map_err(http::transport_error)?;
        http::classify(response.status(), String::new())
    }
}
