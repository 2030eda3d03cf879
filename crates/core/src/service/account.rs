use super::{Core, SessionContext};
use crate::error::CoreError;
use crate::mail;
use crate::model::{Account, AccountId, AuditRecord, RequestMeta};
use crate::password::{Verified, check_password_policy};
use crate::throttle::AttemptKey;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

impl Core {
    /// Changes the password of a signed-in account. Other sessions are signed out; this one stays.
    pub async fn change_password(
        &self,
        ctx: &SessionContext,
        current: &SecretString,
        new_password: &SecretString,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        // A sensitive change: with 2FA on, a second factor from the last minutes is needed.
        self.require_step_up(ctx).await?;
        let paid = self.pay_current_password(ctx).await?;
        match self
            .hasher
            .verify(current, &ctx.account.password_hash)
            .await
        {
            Ok(Verified::Valid { .. }) => {}
            Ok(Verified::Invalid) => {
                let audit = self.audit(
                    "password_change_failed",
                    Some(ctx.account.id),
                    meta,
                    json!({}),
                );
                self.store.record_audit(&audit).await?;
                return Err(CoreError::WrongCurrentPassword);
            }
            Err(e) => {
                self.give_back(paid).await?;
                return Err(e);
            }
        }
        check_password_policy(new_password.expose_secret(), &ctx.account.email)?;
        let new_hash = self.hasher.hash(new_password).await?;
        let item = self.outbox_item(
            "password_changed",
            &mail::password_changed(&self.branding(), &ctx.account.email),
        )?;
        let audit = self.audit("password_changed", Some(ctx.account.id), meta, json!({}));
        self.store
            .change_password(
                ctx.account.id,
                &new_hash,
                &self.new_stamp(),
                Some(ctx.session.id),
                &item,
                &audit,
            )
            .await?;
        self.clear_paid(paid).await?;
        self.outbox_wakeup.notify_one();
        Ok(())
    }

    /// Pays for one try of the current password, asked again before a sensitive change.
    pub(super) async fn pay_current_password(
        &self,
        ctx: &SessionContext,
    ) -> Result<super::attempts::Paid, CoreError> {
        self.pay_attempt(
            AttemptKey::CurrentPassword(ctx.account.id),
            self.settings.login_budget_account,
        )
        .await
    }

    pub async fn account(&self, id: AccountId) -> Result<Account, CoreError> {
        self.store
            .account_by_id(id)
            .await?
            .ok_or(CoreError::NotFound)
    }

    pub async fn account_by_email(&self, email: &str) -> Result<Account, CoreError> {
        let email = crate::email::Email::parse(email)?;
        self.store
            .account_by_email(email.as_str())
            .await?
            .ok_or(CoreError::NotFound)
    }

    pub async fn list_accounts(&self, limit: u32, offset: u32) -> Result<Vec<Account>, CoreError> {
        Ok(self.store.list_accounts(limit, offset).await?)
    }

    pub async fn recent_audit(
        &self,
        id: AccountId,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, CoreError> {
        Ok(self.store.audit_for_account(id, limit).await?)
    }
}
