//! Ways to deliver messages — SMTP for mail, SMS gateways (Twilio, a signed HTTPS webhook),
//! the log for development — and the worker that drains the outbox through them.

mod http;
mod log;
mod router;
mod sms_config;
mod smtp;
mod twilio;
mod webhook;
mod worker;

pub use log::LogDelivery;
pub use router::Deliveries;
pub use sms_config::{SmsAdapter, SmsConfig, build_sms};
pub use smtp::{SmtpConfig, SmtpMailer, SmtpSecurity};
pub use twilio::{TwilioConfig, TwilioSms};
pub use webhook::{WebhookConfig, WebhookSms, webhook_signature};
pub use worker::run_outbox_worker;
