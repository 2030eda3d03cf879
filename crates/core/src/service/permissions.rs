//! Sensitive permissions: actions an app may allow only to someone who has two-step
//! verification on and proved a second factor within the step-up window. "Remote session"
//! is the example apps can ask about; changing the password and managing factors follow the
//! same rule through [`Core::require_step_up`].

use super::{Core, SessionContext};
use crate::error::CoreError;
use crate::model::Owner;
use time::OffsetDateTime;

/// A permission apps can ask about for the signed-in user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Starting a remote session (support screen sharing, remote control of a device).
    RemoteSession,
}

impl Permission {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "remote-session" | "remote_session" => Some(Self::RemoteSession),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RemoteSession => "remote_session",
        }
    }
}

/// Granted until the step-up that allowed it is older than the window.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    pub permission: Permission,
    pub valid_until: OffsetDateTime,
}

impl Core {
    /// Whether the session may use `permission` now: 2FA must be on (else
    /// `TwoFactorSetupRequired`) and a second factor proven within the step-up window (else
    /// `StepUpRequired`).
    pub async fn check_permission(
        &self,
        ctx: &SessionContext,
        permission: Permission,
    ) -> Result<Grant, CoreError> {
        if !self
            .has_active_factor(&Owner::Account(ctx.account.id))
            .await?
        {
            return Err(CoreError::TwoFactorSetupRequired);
        }
        let now = self.clock.now();
        match ctx.session.step_up_at {
            Some(at) if now - at <= self.settings.step_up_window => Ok(Grant {
                permission,
                valid_until: at + self.settings.step_up_window,
            }),
            _ => Err(CoreError::StepUpRequired),
        }
    }

    /// Setting up 2FA from a permission prompt ends the session: the user signs in again,
    /// with the new factor, so that the permission rests on a sign-in that used it.
    pub async fn end_session_after_setup(
        &self,
        ctx: &SessionContext,
        meta: &crate::model::RequestMeta,
    ) -> Result<(), CoreError> {
        let audit = self.audit(
            "signed_out_after_2fa_setup",
            Some(ctx.account.id),
            meta,
            serde_json::json!({ "session_id": ctx.session.id }),
        );
        self.store
            .delete_session(ctx.account.id, ctx.session.id, &audit)
            .await?;
        Ok(())
    }
}
