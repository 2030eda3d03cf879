//! Readiness: whether this node should get traffic. Reading is not enough; a node whose
//! database cannot commit a write (a full disk, a read-only file, a lock never released)
//! answers reads but loses every sign-up, so readiness writes too.

use super::Core;
use crate::error::CoreError;
use std::sync::Mutex;
use time::{Duration, OffsetDateTime};

/// How long a committed heartbeat vouches for the database. Load balancers poll every few
/// seconds; writing once per interval keeps `/readyz` from costing a write per probe.
const BEAT_VALID: Duration = Duration::seconds(2);

/// When this node last committed its heartbeat.
#[derive(Default)]
pub(super) struct Heartbeat(Mutex<Option<OffsetDateTime>>);

impl Heartbeat {
    fn fresh(&self, now: OffsetDateTime) -> bool {
        let last = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        last.is_some_and(|at| at <= now && now - at < BEAT_VALID)
    }

    fn set(&self, at: Option<OffsetDateTime>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Core {
    /// The schema is current and a write commits. A failed write is not remembered: the next
    /// probe writes again, so the node is ready as soon as the database takes writes again.
    pub async fn ready(&self) -> Result<(), CoreError> {
        self.store.ready().await?;
        let now = self.clock.now();
        if self.heartbeat.fresh(now) {
            return Ok(());
        }
        match self.store.heartbeat(now).await {
            Ok(()) => {
                self.heartbeat.set(Some(now));
                Ok(())
            }
            Err(e) => {
                self.heartbeat.set(None);
                Err(e.into())
            }
        }
    }

    /// Database pool connections in total and idle, for `/metrics`.
    pub fn pool_use(&self) -> (u32, u32) {
        self.store.pool_use()
    }
}
