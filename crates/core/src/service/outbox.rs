use super::Core;
use crate::error::CoreError;
use crate::keys::Sealed;
use crate::model::OutboxItem;
use crate::ports::{Deliver, DeliveryError, Mail, Message};
use time::Duration;

/// How long a claimed message stays invisible to other nodes while one node sends it.
const LEASE: Duration = Duration::minutes(2);
/// After this many tries (about two days of backoff) a message is given up and logged.
const MAX_ATTEMPTS: u32 = 25;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: u32,
    pub retrying: u32,
    pub given_up: u32,
}

/// Backoff before try `attempt + 1`: 5 s, 10 s, 20 s … capped at 1 hour.
pub fn retry_delay(attempt: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    Duration::seconds(secs.min(3600) as i64)
}

impl Core {
    /// Sends one batch of due messages. Called in a loop by the delivery worker of each node;
    /// the lease keeps two nodes from sending the same message.
    pub async fn deliver_due(
        &self,
        delivery: &dyn Deliver,
        batch: u32,
    ) -> Result<DeliveryReport, CoreError> {
        let now = self.clock.now();
        let items = self.store.claim_outbox(now, now + LEASE, batch).await?;
        let mut report = DeliveryReport::default();
        for item in items {
            let message = match self.open_outbox_item(&item) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(message_id = %item.id, kind = %item.kind, error = %e, "cannot open queued message; giving up");
                    self.store
                        .mark_failed(item.id, &e.to_string(), None, self.clock.now())
                        .await?;
                    report.given_up += 1;
                    continue;
                }
            };
            let channel = message.channel().as_str();
            // A code nobody can use any more is not worth a text message.
            if item.give_up_at.is_some_and(|at| at <= self.clock.now()) {
                tracing::warn!(message_id = %item.id, kind = %item.kind, attempts = item.attempts, "message expired before it could be delivered; dropped");
                self.store
                    .mark_failed(item.id, "expired before delivery", None, self.clock.now())
                    .await?;
                metrics::counter!("twofold_messages_total", "channel" => channel, "outcome" => "expired").increment(1);
                report.given_up += 1;
                continue;
            }
            let result = delivery.deliver(item.id, &message).await;
            let outcome = match &result {
                Ok(()) => "sent",
                Err(DeliveryError::Temporary(_)) => "temporary_failure",
                Err(DeliveryError::Permanent(_)) => "permanent_failure",
            };
            metrics::counter!("twofold_messages_total", "channel" => channel, "outcome" => outcome)
                .increment(1);
            match result {
                Ok(()) => {
                    self.store.mark_sent(item.id, self.clock.now()).await?;
                    tracing::info!(message_id = %item.id, kind = %item.kind, attempts = item.attempts, "message delivered");
                    report.sent += 1;
                }
                Err(DeliveryError::Temporary(e))
                    if item.attempts < MAX_ATTEMPTS
                        && item.give_up_at.is_none_or(|at| {
                            self.clock.now() + retry_delay(item.attempts) < at
                        }) =>
                {
                    let retry_at = self.clock.now() + retry_delay(item.attempts);
                    tracing::warn!(message_id = %item.id, kind = %item.kind, attempts = item.attempts, error = %e, "delivery failed; will retry");
                    self.store
                        .mark_failed(item.id, &e, Some(retry_at), self.clock.now())
                        .await?;
                    report.retrying += 1;
                }
                Err(e) => {
                    tracing::error!(message_id = %item.id, kind = %item.kind, attempts = item.attempts, error = %e, "delivery failed; giving up");
                    self.store
                        .mark_failed(item.id, &e.to_string(), None, self.clock.now())
                        .await?;
                    report.given_up += 1;
                }
            }
        }
        Ok(report)
    }

    fn open_outbox_item(&self, item: &OutboxItem) -> Result<Message, CoreError> {
        let sealed = Sealed {
            key_id: item.key_id.clone(),
            blob: item.payload.clone(),
        };
        let json = self
            .open_sealed(item.id.as_bytes(), &sealed)
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        // Messages queued before text messages existed are bare mails.
        serde_json::from_slice::<Message>(&json)
            .or_else(|_| serde_json::from_slice::<Mail>(&json).map(Message::Email))
            .map_err(|e| CoreError::Internal(format!("decode message: {e}")))
    }

    pub async fn pending_messages(&self) -> Result<u64, CoreError> {
        Ok(self.store.pending_outbox().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_and_caps() {
        assert_eq!(retry_delay(1), Duration::seconds(5));
        assert_eq!(retry_delay(2), Duration::seconds(10));
        assert_eq!(retry_delay(3), Duration::seconds(20));
        assert_eq!(retry_delay(30), Duration::hours(1));
    }
}
