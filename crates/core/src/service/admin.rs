//! Operator actions.

use super::Core;
use crate::error::CoreError;
use crate::model::RequestMeta;
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
    /// sessions, audits the reason and tells the owner: the console's reset, from the CLI.
    pub async fn reset_two_factor(
        &self,
        email: &str,
        reason: &str,
        meta: &RequestMeta,
    ) -> Result<u64, CoreError> {
        let reason = super::console::checked_reason(reason)?;
        let account = self.account_by_email(email).await?;
        self.operator_act(
            &account,
            super::OperatorAction::ResetTwoFactor,
            json!({ "reason": reason }),
            meta,
        )
        .await
    }
}
