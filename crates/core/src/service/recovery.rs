use super::Core;
use crate::email::Email;
use crate::error::CoreError;
use crate::mail;
use crate::model::{NewToken, RequestMeta};
use crate::password::check_password_policy;
use crate::token::{TokenPurpose, decode_token, token_bytes};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use time::Duration;

/// At most one reset mail per account in this interval, so the form cannot mail-bomb anyone.
const RESET_MAIL_INTERVAL: Duration = Duration::minutes(1);

impl Core {
    /// Mails a reset link if the address has an account. Answers the same either way.
    pub async fn request_password_reset(
        &self,
        email: &str,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let email = Email::parse(email)?;
        let Some(account) = self.store.account_by_email(email.as_str()).await? else {
            let audit = self.audit(
                "password_reset_requested_unknown",
                None,
                meta,
                json!({ "email": email.as_str() }),
            );
            self.store.record_audit(&audit).await?;
            return Ok(());
        };
        let now = self.clock.now();
        if let Some(last) = self
            .store
            .latest_token_at(account.id, TokenPurpose::PasswordReset.as_str())
            .await?
            && now - last < RESET_MAIL_INTERVAL
        {
            return Ok(());
        }
        let token = self.new_secret();
        let record = NewToken {
            id: self.new_id(),
            account_id: account.id,
            purpose: TokenPurpose::PasswordReset.as_str(),
            token_hash: self.hash_token(TokenPurpose::PasswordReset, &token_bytes(&token)),
            created_at: now,
            expires_at: now + self.settings.password_reset_ttl,
        };
        let item = self.outbox_item(
            "password_reset",
            &mail::password_reset(&self.branding(), &account.email, token.expose_secret()),
        )?;
        let audit = self.audit(
            "password_reset_requested",
            Some(account.id),
            meta,
            json!({}),
        );
        self.store.issue_token(&record, &item, Some(&audit)).await?;
        self.outbox_wakeup.notify_one();
        Ok(())
    }

    /// Whether a reset link can still be used, so the page can say so before asking for a password.
    pub async fn check_password_reset_token(&self, token: &str) -> Result<(), CoreError> {
        let bytes = decode_token(token).ok_or(CoreError::InvalidToken)?;
        let hash = self.hash_token(TokenPurpose::PasswordReset, &bytes);
        match self
            .store
            .find_token(TokenPurpose::PasswordReset.as_str(), &hash)
            .await?
        {
            Some(t) if t.used_at.is_none() && t.expires_at > self.clock.now() => Ok(()),
            _ => Err(CoreError::InvalidToken),
        }
    }

    /// Sets a new password from a reset link. Signs every session out and signs nobody in;
    /// the browser that used the link (`device`, its cookie) becomes known.
    pub async fn complete_password_reset(
        &self,
        token: &str,
        new_password: &SecretString,
        device: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let bytes = decode_token(token).ok_or(CoreError::InvalidToken)?;
        let hash = self.hash_token(TokenPurpose::PasswordReset, &bytes);
        let now = self.clock.now();
        let record = self
            .store
            .find_token(TokenPurpose::PasswordReset.as_str(), &hash)
            .await?
            .filter(|t| t.used_at.is_none() && t.expires_at > now)
            .ok_or(CoreError::InvalidToken)?;
        let account = self
            .store
            .account_by_id(record.account_id)
            .await?
            .ok_or(CoreError::InvalidToken)?;
        check_password_policy(new_password.expose_secret(), &account.email)?;
        let new_hash = self.hasher.hash(new_password).await?;
        let item = self.outbox_item(
            "password_changed",
            &mail::password_changed(&self.branding(), &account.email),
        )?;
        let audit = self.audit(
            "password_reset_completed",
            Some(account.id),
            meta,
            json!({}),
        );
        let done = self
            .store
            .complete_password_reset(
                &hash,
                account.id,
                &new_hash,
                &self.new_stamp(),
                self.clock.now(),
                &item,
                &audit,
            )
            .await?;
        if !done {
            return Err(CoreError::InvalidToken);
        }
        self.outbox_wakeup.notify_one();
        self.trust_device_of_link(account.id, device, meta).await
    }
}
