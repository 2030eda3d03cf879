use async_trait::async_trait;
use twofold_core::ports::{DeliveryError, Mail, Mailer};

/// Development delivery: each message is written to the log as one block, links in full, so a
/// developer (or a script) can follow them without a mail server. Never use it in production:
/// the links are bearer secrets.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogMailer;

pub const BLOCK_START: &str = "===== DEVELOPMENT MAIL (not sent) =====";
pub const BLOCK_END: &str = "===== END OF MAIL =====";

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: &Mail) -> Result<(), DeliveryError> {
        tracing::info!(
            target: "twofold::mail",
            "development mail delivery\n{BLOCK_START}\nTo: {}\nSubject: {}\n\n{}\n{BLOCK_END}",
            mail.to,
            mail.subject,
            mail.text.trim_end()
        );
        Ok(())
    }
}
