use async_trait::async_trait;
use twofold_core::phone;
use twofold_core::ports::{Deliver, DeliveryError, Message};
use uuid::Uuid;

/// Development delivery: each message is written to the log as one block, links and codes in
/// full, so a developer (or a script) can follow them without a mail server or an SMS gateway.
/// Never use it in production: the links and codes are bearer secrets.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogDelivery;

pub const BLOCK_START: &str = "===== DEVELOPMENT MAIL (not sent) =====";
pub const BLOCK_END: &str = "===== END OF MAIL =====";
pub const SMS_BLOCK_START: &str = "===== DEVELOPMENT SMS (not sent) =====";
pub const SMS_BLOCK_END: &str = "===== END OF SMS =====";

#[async_trait]
impl Deliver for LogDelivery {
    async fn deliver(&self, _id: Uuid, message: &Message) -> Result<(), DeliveryError> {
        match message {
            Message::Email(mail) => tracing::info!(
                target: "twofold::mail",
                "development mail delivery\n{BLOCK_START}\nTo: {}\nSubject: {}\n\n{}\n{BLOCK_END}",
                mail.to,
                mail.subject,
                mail.text.trim_end()
            ),
            Message::Sms(sms) => tracing::info!(
                target: "twofold::sms",
                "development SMS delivery to {}\n{SMS_BLOCK_START}\nTo: {}\n\n{}\n{SMS_BLOCK_END}",
                phone::mask(&sms.to),
                sms.to,
                sms.text.trim_end()
            ),
        }
        Ok(())
    }
}
