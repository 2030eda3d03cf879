//! Ways to deliver messages — SMTP for mail, SMS gateways (Twilio, a signed HTTPS webhook),
//! the log for development — and the worker that drains the outbox through them.

mod log;
mod router;
mod sms;
mod smtp;
mod worker;

pub use log::LogDelivery;
pub use router::Deliveries;
pub use sms::{
    SmsAdapter, SmsConfig, SmsConfigError, TwilioConfig, TwilioSms, WebhookConfig, WebhookSms,
    build_sms, webhook_signature,
};
pub use smtp::{SmtpConfig, SmtpMailer, SmtpSecurity};
pub use worker::run_outbox_worker;
