//! Changing the address an account signs in with: a sensitive change (the current password,
//! and with 2FA a fresh second factor), confirmed by a link sent to the new address; the old
//! address hears of the request and of the change.

use super::{Core, SessionContext};
use crate::email::Email;
use crate::error::CoreError;
use crate::mail;
use crate::model::*;
use crate::password::Verified;
use crate::token::{TokenPurpose, decode_token, token_bytes};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

impl Core {
    /// Mails a confirmation link to `new_email` (valid as long as an email verification link)
    /// and a notice to the current address. The address changes only when the link is used.
    pub async fn request_email_change(
        &self,
        ctx: &SessionContext,
        new_email: &str,
        current_password: &SecretString,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        self.require_step_up(ctx).await?;
        let new_email = Email::parse(new_email)?;
        if new_email.as_str() == ctx.account.email {
            return Err(CoreError::invalid(
                "new_email",
                "That is already your address.",
            ));
        }
        let paid = self.pay_current_password(ctx).await?;
        match self
            .hasher
            .verify(current_password, &ctx.account.password_hash)
            .await
        {
            Ok(Verified::Valid { .. }) => {}
            Ok(Verified::Invalid) => {
                let audit =
                    self.audit("email_change_failed", Some(ctx.account.id), meta, json!({}));
                self.store.record_audit(&audit).await?;
                return Err(CoreError::WrongCurrentPassword);
            }
            Err(e) => {
                self.give_back(paid).await?;
                return Err(e);
            }
        }
        self.clear_paid(paid).await?;
        let now = self.clock.now();
        // Whether another account has the address is not said here: only the new mailbox's
        // owner learns it, when the link is used.
        let token = self.new_secret();
        let change = EmailChange {
            id: self.new_id(),
            account_id: ctx.account.id,
            new_email: new_email.as_str().to_owned(),
            created_at: now,
            expires_at: now + self.settings.verify_email_ttl,
        };
        let hours = self.settings.verify_email_ttl.whole_hours().max(1);
        let mails = [
            self.outbox_item(
                "email_change_confirm",
                &mail::email_change_confirm(
                    &self.branding(),
                    new_email.as_str(),
                    token.expose_secret(),
                    hours,
                ),
            )?,
            self.outbox_item(
                "email_change_requested",
                &mail::email_change_requested(
                    &self.branding(),
                    &ctx.account.email,
                    new_email.as_str(),
                ),
            )?,
        ];
        let audit = self.audit(
            "email_change_requested",
            Some(ctx.account.id),
            meta,
            json!({ "new_email": new_email.as_str() }),
        );
        self.store
            .start_email_change(
                &change,
                &self.hash_token(TokenPurpose::EmailChange, &token_bytes(&token)),
                &mails,
                &audit,
            )
            .await?;
        self.outbox_wakeup.notify_one();
        Ok(())
    }

    /// Uses a confirmation link: the account signs in with the new address from now on, every
    /// other session ends (`current`, a session of the same account in this browser, stays),
    /// and links mailed to the old address stop working. Returns the new address.
    pub async fn confirm_email_change(
        &self,
        token: &str,
        current: Option<&SessionContext>,
        meta: &RequestMeta,
    ) -> Result<String, CoreError> {
        let bytes = decode_token(token).ok_or(CoreError::InvalidToken)?;
        let hash = self.hash_token(TokenPurpose::EmailChange, &bytes);
        let now = self.clock.now();
        let change = self
            .store
            .email_change(&hash, now)
            .await?
            .ok_or(CoreError::InvalidToken)?;
        let account = self.account(change.account_id).await?;
        let keep = current
            .filter(|c| c.account.id == account.id)
            .map(|c| c.session.id);
        let stamp = StampChange {
            account: account.id,
            stamp: self.new_stamp(),
            keep_session: keep,
        };
        let item = self.outbox_item(
            "email_changed",
            &mail::email_changed(&self.branding(), &account.email, &change.new_email),
        )?;
        let audit = self.audit(
            "email_changed",
            Some(account.id),
            meta,
            json!({ "old_email": account.email, "new_email": change.new_email }),
        );
        match self
            .store
            .complete_email_change(&hash, now, &stamp, &item, &audit)
            .await?
        {
            EmailChangeOutcome::Changed => {
                self.outbox_wakeup.notify_one();
                Ok(change.new_email)
            }
            EmailChangeOutcome::Invalid => Err(CoreError::InvalidToken),
            EmailChangeOutcome::Taken => Err(CoreError::invalid(
                "email",
                "Another account uses this address, so it cannot be yours too.",
            )),
        }
    }
}
