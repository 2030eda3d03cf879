use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use twofold_core::Core;
use twofold_core::ports::Deliver;

const BATCH: u32 = 20;
/// Also poll, because retries come due with no wake-up and other nodes queue messages too.
const POLL: Duration = Duration::from_secs(2);

/// Drains the outbox until `shutdown` is cancelled. A message being sent when shutdown comes
/// finishes first; anything left stays queued for the next start (or another node).
pub async fn run_outbox_worker(
    core: Arc<Core>,
    delivery: Arc<dyn Deliver>,
    shutdown: CancellationToken,
) {
    let wakeup = core.outbox_wakeup();
    loop {
        let busy = match core.deliver_due(delivery.as_ref(), BATCH).await {
            Ok(report) => report.sent + report.retrying + report.given_up >= BATCH,
            Err(e) => {
                tracing::warn!(error = %e, "outbox delivery pass failed; will retry");
                false
            }
        };
        if busy {
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    tracing::info!("outbox worker stopped");
}
