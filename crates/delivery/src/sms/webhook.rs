//! SMS through any HTTPS endpoint the operator runs: a JSON body signed with HMAC-SHA-256 over
//! the timestamp and the body, so the receiver can check it came from us, unchanged and fresh.

use super::{SmsConfigError, check_timeout, check_url, classify, client, transport_error};
use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
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
    /// Shared with the receiver; signs every request. At least 16 characters.
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
            .field("url", &redact_query(&self.url))
            .field("secret", &"[redacted]")
            // Header values are often credentials of the receiver.
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// The query of a webhook URL may carry the receiver's token.
fn redact_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?[redacted]"),
        None => url.to_owned(),
    }
}

/// Headers the adapter sets itself: a configured one would be sent twice or break the body.
const RESERVED: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "x-twofold-timestamp",
    "x-twofold-signature",
    "idempotency-key",
];

/// `v1=` and the lowercase hex HMAC-SHA-256 of `"{timestamp}.{body}"` under `secret`: what
/// `X-Twofold-Signature` carries, and what a receiver recomputes to check a request.
pub fn webhook_signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1={}",
        data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes())
    )
}

/// The body, fields in this order (the signature covers the exact bytes).
#[derive(Serialize)]
struct Payload<'a> {
    message_id: Uuid,
    to: &'a str,
    text: &'a str,
}

pub struct WebhookSms {
    url: reqwest::Url,
    secret: SecretString,
    headers: HeaderMap,
    client: reqwest::Client,
}

impl std::fmt::Debug for WebhookSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSms")
            .field("url", &redact_query(self.url.as_str()))
            .finish_non_exhaustive()
    }
}

impl WebhookSms {
    pub fn new(config: WebhookConfig) -> Result<Self, SmsConfigError> {
        let url = check_url("webhook.url", &config.url)?;
        if config.secret.expose_secret().chars().count() < 16 {
            return Err(SmsConfigError::invalid(
                "webhook.secret",
                "must be at least 16 characters",
            ));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                SmsConfigError::invalid("webhook.headers", format!("{name:?} is not a header name"))
            })?;
            if RESERVED.contains(&name.as_str()) {
                return Err(SmsConfigError::invalid(
                    "webhook.headers",
                    format!("{name} is set by Twofold itself"),
                ));
            }
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                SmsConfigError::invalid(
                    "webhook.headers",
                    format!("the value of {name} is not valid"),
                )
            })?;
            // Keeps it out of reqwest's and hyper's debug output.
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let timeout = check_timeout("webhook.timeout_secs", config.timeout_secs)?;
        Ok(Self {
            url,
            secret: config.secret,
            headers,
            client: client(timeout)?,
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
        let body = serde_json::to_vec(&Payload {
            message_id: id,
            to: &sms.to,
            text: &sms.text,
        })
        .map_err(|e| DeliveryError::Permanent(format!("cannot encode the message: {e}")))?;
        // Wall-clock time, not the service clock: the receiver checks freshness against its own.
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = webhook_signature(self.secret.expose_secret().as_bytes(), timestamp, &body);
        tracing::debug!(to = %phone::mask(&sms.to), message_id = %id, "sending SMS through the webhook");
        let response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Twofold-Timestamp", timestamp.to_string())
            .header("X-Twofold-Signature", signature)
            .header("Idempotency-Key", id.to_string())
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        // The receiver's body is not quoted in the error: it might echo the text and its code.
        classify(response.status(), String::new())
    }
}
