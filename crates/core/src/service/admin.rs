//! Operator actions.

use super::Core;
use crate::error::CoreError;
use crate::mail;
use crate::model::{Effects, Owner, RequestMeta, StampChange};
use serde_json::json;

impl Core {
    /// Makes an account an operator, or a customer again (CLI; audited).
    pub async fn set_operator(
        &self,
        email: &str,
        on: bool,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let account = self.account_by_email(email).await?;
        let event = if on {
            "operator_promoted"
        } else {
            "operator_demoted"
        };
        let audit = self.audit(event, Some(account.id), meta, json!({}));
        Ok(self.store.set_operator(account.id, on, &audit).await?)
    }

    /// Removes every factor and backup code of an account (lost phone), signs out all its
    /// sessions, audits the reason and tells the owner.
    pub async fn reset_two_factor(
        &self,
        email: &str,
        reason: &str,
        meta: &RequestMeta,
    ) -> Result<u64, CoreError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(CoreError::invalid(
                "reason",
                "Give a reason; it is kept in the audit log.",
            ));
        }
        let account = self.account_by_email(email).await?;
        let effects = Effects {
            audit: self.audit("two_factor_reset_by_operator", Some(account.id), meta, json!({ "reason": reason })),
            mail: Some(self.outbox_item(
                "factor_changed",
                &mail::factor_changed(
                    &self.branding(),
                    &account.email,
                    "An operator removed all second factors and backup codes from your account, and signed out every session. Sign in and set up two-factor authentication again.",
                ),
            )?),
            new_stamp: Some(StampChange { account: account.id, stamp: self.new_stamp(), keep_session: None }),
        };
        let removed = self
            .store
            .delete_all_factors(&Owner::Account(account.id).key(), &effects)
            .await?;
        self.outbox_wakeup.notify_one();
        Ok(removed)
    }
}
