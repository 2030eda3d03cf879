use super::Core;
use crate::error::CoreError;
use crate::model::{Account, RequestMeta, Session, SessionId, SessionKind};
use crate::token::{TokenPurpose, decode_token};
use serde_json::json;
use time::Duration;

/// A valid, fully signed-in session and its account.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub session: Session,
    pub account: Account,
}

/// Writing `last_seen_at` on every request would make each page view a write.
const TOUCH_EVERY: Duration = Duration::minutes(1);

impl Core {
    /// Resolves a session cookie. Expired (idle or absolute), revoked and stale-stamp sessions
    /// are all simply "not signed in".
    pub async fn authenticate(&self, token: &str) -> Result<SessionContext, CoreError> {
        let ctx = self.resolve_session(token).await?;
        if ctx.session.kind != SessionKind::Full {
            return Err(CoreError::Unauthenticated);
        }
        Ok(ctx)
    }

    /// A session of either kind; only the second step may accept a partial one.
    pub(super) async fn resolve_session(&self, token: &str) -> Result<SessionContext, CoreError> {
        let bytes = decode_token(token).ok_or(CoreError::Unauthenticated)?;
        let hash = self.hash_token(TokenPurpose::Session, &bytes);
        let (session, account) = self
            .store
            .session_by_token_hash(&hash)
            .await?
            .ok_or(CoreError::Unauthenticated)?;
        let now = self.clock.now();
        let idle_deadline = session.last_seen_at + self.settings.session_idle_timeout;
        if now >= session.expires_at
            || now >= idle_deadline
            || session.security_stamp != account.security_stamp
            || account.is_locked()
        {
            return Err(CoreError::Unauthenticated);
        }
        if now - session.last_seen_at >= TOUCH_EVERY {
            self.store.touch_session(session.id, now).await?;
        }
        Ok(SessionContext { session, account })
    }

    /// Ends the session behind a cookie. Unknown tokens are fine: the user is signed out either way.
    pub async fn log_out(&self, token: &str, meta: &RequestMeta) -> Result<(), CoreError> {
        if let Ok(ctx) = self.resolve_session(token).await {
            let audit = self.audit(
                "logout",
                Some(ctx.account.id),
                meta,
                json!({ "session_id": ctx.session.id }),
            );
            self.store
                .delete_session(ctx.account.id, ctx.session.id, &audit)
                .await?;
        }
        Ok(())
    }

    /// The account's sessions that are still usable, newest activity first.
    pub async fn list_sessions(&self, ctx: &SessionContext) -> Result<Vec<Session>, CoreError> {
        let now = self.clock.now();
        let mut sessions: Vec<Session> = self
            .store
            .list_sessions(ctx.account.id)
            .await?
            .into_iter()
            .filter(|s| {
                s.kind == SessionKind::Full
                    && s.expires_at > now
                    && s.last_seen_at + self.settings.session_idle_timeout > now
                    && s.security_stamp == ctx.account.security_stamp
            })
            .collect();
        sessions.sort_by_key(|s| std::cmp::Reverse(s.last_seen_at));
        Ok(sessions)
    }

    /// Revokes one of the caller's own sessions (including the current one).
    pub async fn revoke_session(
        &self,
        ctx: &SessionContext,
        id: SessionId,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let audit = self.audit(
            "session_revoked",
            Some(ctx.account.id),
            meta,
            json!({ "session_id": id }),
        );
        if self
            .store
            .delete_session(ctx.account.id, id, &audit)
            .await?
        {
            Ok(())
        } else {
            Err(CoreError::NotFound)
        }
    }

    /// Housekeeping: drops sessions past their idle or absolute limit.
    pub async fn purge_expired_sessions(&self) -> Result<u64, CoreError> {
        let now = self.clock.now();
        Ok(self
            .store
            .delete_expired_sessions(now - self.settings.session_idle_timeout, now)
            .await?)
    }
}
