//! The `[sms]` section: which gateway sends text messages.

use crate::LogDelivery;
use crate::twilio::{TwilioConfig, TwilioSms};
use crate::webhook::{WebhookConfig, WebhookSms};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use twofold_core::ports::Deliver;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsAdapter {
    /// Development: texts are printed to the log, codes included.
    #[default]
    Log,
    Twilio,
    Webhook,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    pub adapter: SmsAdapter,
    pub twilio: Option<TwilioConfig>,
    pub webhook: Option<WebhookConfig>,
}

/// The adapter the configuration names; an error says what is missing.
pub fn build_sms(config: &SmsConfig) -> Result<Arc<dyn Deliver>, String> {
    Ok(match config.adapter {
        SmsAdapter::Log => Arc::new(LogDelivery),
        SmsAdapter::Twilio => {
            Arc::new(TwilioSms::new(config.twilio.clone().ok_or(
                "sms.adapter is \"twilio\" but there is no [sms.twilio] section",
            )?)?)
        }
        SmsAdapter::Webhook => {
            Arc::new(WebhookSms::new(config.webhook.clone().ok_or(
                "sms.adapter is \"webhook\" but there is no [sms.webhook] section",
            )?)?)
        }
    })
}
