use async_trait::async_trait;
use std::sync::Arc;
use twofold_core::ports::{Deliver, DeliveryError, Message};
use uuid::Uuid;

/// The adapters in use, one per channel, chosen in the configuration file; the outbox worker
/// hands every message to this and it picks the adapter by the message's channel.
#[derive(Clone)]
pub struct Deliveries {
    pub email: Arc<dyn Deliver>,
    pub sms: Arc<dyn Deliver>,
}

#[async_trait]
impl Deliver for Deliveries {
    async fn deliver(&self, id: Uuid, message: &Message) -> Result<(), DeliveryError> {
        match message {
            Message::Email(_) => self.email.deliver(id, message).await,
            Message::Sms(_) => self.sms.deliver(id, message).await,
        }
    }
}
