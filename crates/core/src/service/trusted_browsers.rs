//! "Remember this browser": after a good second factor, a browser may skip the second factor
//! (and only that) for its account until a fixed expiry. Logging in again does not extend it,
//! and a new security stamp (password or factor change, operator reset) ends it, as does
//! using a backup code.

use super::{Core, SessionContext};
use crate::error::CoreError;
use crate::model::*;
use crate::token::{TokenPurpose, decode_token, token_bytes};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

impl Core {
    /// Remembers the browser that just completed the second step in `session`. Returns the
    /// token for its cookie, or `None` when the operator turned the option off.
    pub async fn remember_browser(
        &self,
        session: &Session,
        meta: &RequestMeta,
    ) -> Result<Option<SecretString>, CoreError> {
        let Some(ttl) = self.settings.trusted_browser_ttl else {
            return Ok(None);
        };
        let now = self.clock.now();
        let token = self.new_secret();
        let browser = TrustedBrowser {
            id: self.new_id(),
            account_id: session.account_id,
            user_agent: meta.user_agent_trimmed(),
            ip: meta.ip_string(),
            security_stamp: session.security_stamp.clone(),
            created_at: now,
            expires_at: now + ttl,
            last_used_at: None,
        };
        let audit = self.audit(
            "browser_remembered",
            Some(session.account_id),
            meta,
            json!({ "trusted_browser_id": browser.id, "expires_at": browser.expires_at.unix_timestamp() }),
        );
        self.store
            .add_trusted_browser(
                &browser,
                &self.hash_token(TokenPurpose::TrustedBrowser, &token_bytes(&token)),
                &audit,
            )
            .await?;
        Ok(Some(token))
    }

    /// Whether `token` is a remembered browser of `account` that still counts.
    pub(super) async fn is_trusted_browser(
        &self,
        account: &Account,
        token: Option<&str>,
    ) -> Result<bool, CoreError> {
        if self.settings.trusted_browser_ttl.is_none() {
            return Ok(false);
        }
        let Some(bytes) = token.and_then(decode_token) else {
            return Ok(false);
        };
        let hash = self.hash_token(TokenPurpose::TrustedBrowser, &bytes);
        let now = self.clock.now();
        match self.store.trusted_browser(account.id, &hash).await? {
            Some(b) if b.expires_at > now && b.security_stamp == account.security_stamp => {
                self.store.touch_trusted_browser(b.id, now).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The account's remembered browsers that still count.
    pub async fn account_trusted_browsers(
        &self,
        ctx: &SessionContext,
    ) -> Result<Vec<TrustedBrowser>, CoreError> {
        let now = self.clock.now();
        Ok(self
            .store
            .trusted_browsers_of(ctx.account.id)
            .await?
            .into_iter()
            .filter(|b| b.expires_at > now && b.security_stamp == ctx.account.security_stamp)
            .collect())
    }

    /// Forgets one remembered browser, or all of them.
    pub async fn forget_trusted_browsers(
        &self,
        ctx: &SessionContext,
        id: Option<Uuid>,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let audit = self.audit(
            "trusted_browsers_forgotten",
            Some(ctx.account.id),
            meta,
            json!({ "trusted_browser_id": id }),
        );
        self.store
            .forget_trusted_browsers(ctx.account.id, id, Some(&audit))
            .await?;
        Ok(())
    }

    /// A used backup code means a lost device: no remembered browser keeps skipping the step.
    pub(super) async fn forget_all_trusted_browsers(
        &self,
        account: AccountId,
    ) -> Result<(), CoreError> {
        self.store
            .forget_trusted_browsers(account, None, None)
            .await?;
        Ok(())
    }
}
