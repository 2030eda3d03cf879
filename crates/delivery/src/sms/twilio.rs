//! SMS through Twilio's Messages API.

use super::{SmsConfigError, check_timeout, check_url, classify, client, transport_error};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use twofold_core::phone;
use twofold_core::ports::{Deliver, DeliveryError, Message, Sms};
use uuid::Uuid;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    pub account_sid: String,
    #[serde(skip_serializing)]
    pub auth_token: SecretString,
    /// The sending number (E.164) or sender id; or use `messaging_service_sid`.
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
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// Where a message comes from: Twilio takes exactly one of the two.
enum Sender {
    From(String),
    MessagingService(String),
}

pub struct TwilioSms {
    account_sid: String,
    auth_token: SecretString,
    sender: Sender,
    messages_url: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for TwilioSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioSms")
            .field("account_sid", &self.account_sid)
            .field("messages_url", &self.messages_url)
            .finish_non_exhaustive()
    }
}

impl TwilioSms {
    pub fn new(config: TwilioConfig) -> Result<Self, SmsConfigError> {
        let sid = config.account_sid.trim().to_owned();
        // It goes into the URL path: anything but letters and digits would change the path.
        if sid.is_empty() || !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(SmsConfigError::invalid(
                "twilio.account_sid",
                "must be the account SID (letters and digits, AC…)",
            ));
        }
        if config.auth_token.expose_secret().trim().is_empty() {
            return Err(SmsConfigError::invalid("twilio.auth_token", "is empty"));
        }
        let set = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let sender = match (set(config.from), set(config.messaging_service_sid)) {
            (Some(from), None) => Sender::From(from),
            (None, Some(service)) => Sender::MessagingService(service),
            (Some(_), Some(_)) => {
                return Err(SmsConfigError::invalid(
                    "twilio",
                    "set either `from` or `messaging_service_sid`, not both",
                ));
            }
            (None, None) => {
                return Err(SmsConfigError::invalid(
                    "twilio",
                    "set `from` (the sending number) or `messaging_service_sid`",
                ));
            }
        };
        let base = check_url("twilio.base_url", &config.base_url)?;
        let timeout = check_timeout("twilio.timeout_secs", config.timeout_secs)?;
        Ok(Self {
            messages_url: format!(
                "{}/2010-04-01/Accounts/{sid}/Messages.json",
                base.as_str().trim_end_matches('/')
            ),
            account_sid: sid,
            auth_token: config.auth_token,
            sender,
            client: client(timeout)?,
        })
    }
}

#[async_trait]
impl Deliver for TwilioSms {
    async fn deliver(&self, id: Uuid, message: &Message) -> Result<(), DeliveryError> {
        let Message::Sms(sms) = message else {
            return Err(DeliveryError::Permanent(
                "the Twilio adapter sends text messages only".into(),
            ));
        };
        let mut form = vec![("To", sms.to.as_str()), ("Body", sms.text.as_str())];
        form.push(match &self.sender {
            Sender::From(from) => ("From", from),
            Sender::MessagingService(service) => ("MessagingServiceSid", service),
        });
        tracing::debug!(to = %phone::mask(&sms.to), message_id = %id, "sending SMS through Twilio");
        let response = self
            .client
            .post(&self.messages_url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            // Twilio drops a second request with the same token: a retry after a lost
            // answer does not text the code twice.
            .header("I-Twilio-Idempotency-Token", id.to_string())
            .form(&form)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.bytes().await.unwrap_or_default();
        classify(status, error_detail(&body, sms))
    }
}

#[derive(Deserialize)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}

/// Twilio's error code and message (21211: invalid 'To' number), for the outbox's error
/// column. Twilio's messages may quote the number: it is masked, and the text, should it
/// ever be quoted, is cut out, because it holds a live code.
fn error_detail(body: &[u8], sms: &Sms) -> String {
    let Ok(TwilioError { code, message }) = serde_json::from_slice(body) else {
        return String::new();
    };
    if code.is_none() && message.is_none() {
        return String::new();
    }
    let mut message = message.unwrap_or_default();
    if !sms.text.trim().is_empty() {
        message = message.replace(sms.text.trim(), "[message text]");
    }
    if !sms.to.is_empty() {
        message = message.replace(&sms.to, &phone::mask(&sms.to));
    }
    let message: String = message.chars().take(200).collect();
    let code = code.map(|c| c.to_string()).unwrap_or_else(|| "?".into());
    format!(" (Twilio error {code}: {message})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_detail_masks_the_number_and_cuts_the_text() {
        let sms = Sms {
            to: "+14155558318".into(),
            text: "482913 is your code".into(),
        };
        let body =
            br#"{"code":21610,"message":"Cannot send to +14155558318: 482913 is your code"}"#;
        let detail = error_detail(body, &sms);
        assert!(
            detail.contains("21610") && detail.contains("8318"),
            "{detail}"
        );
        assert!(
            !detail.contains("+14155558318") && !detail.contains("482913"),
            "{detail}"
        );
        assert_eq!(error_detail(b"<html>bad gateway</html>", &sms), "");
        assert_eq!(error_detail(b"{}", &sms), "");
    }
}
