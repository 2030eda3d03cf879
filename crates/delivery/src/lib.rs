//! Ways to deliver messages: SMTP for real mail, the log for development, and the worker that
//! drains the outbox through either.

mod log;
mod smtp;
mod worker;

pub use log::LogMailer;
pub use smtp::{SmtpConfig, SmtpMailer, SmtpSecurity};
pub use worker::run_outbox_worker;
