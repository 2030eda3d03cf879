//! Forward-auth: a reverse proxy asks whether the browser behind a request may reach a host
//! and path. The rules say which assurance the request needs; the session says what it has.

use super::{Core, SessionContext};
use crate::assurance::Assurance;
use crate::canonical::RequestTarget;
use crate::error::CoreError;
use crate::model::Owner;

/// The answer to one forward-auth request.
#[derive(Debug)]
pub enum ForwardAuth {
    /// Let it through; `user` is the signed-in account, if any (public paths let anyone).
    Allow { user: Option<Box<SessionContext>> },
    /// Not enough: the browser must sign in or prove more first.
    Deny { required: Assurance },
}

/// Where a browser that was turned away goes to get what the request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    SignIn,
    /// Prove a second factor again (a remembered browser, or a key for phishing resistance).
    StepUp,
    /// The account lacks the kind of factor the request needs: set one up first.
    SetUp {
        phishing_resistant: bool,
    },
    /// Nothing is missing (the session changed meanwhile): go back.
    Return,
}

impl Core {
    /// The decision for a request to `target` from the browser with `session_token`.
    pub async fn forward_auth(
        &self,
        session_token: Option<&str>,
        target: &RequestTarget,
    ) -> Result<ForwardAuth, CoreError> {
        let required = self.settings.forward_auth.required(target);
        let user = self.forward_auth_session(session_token).await?;
        let level = user
            .as_ref()
            .map(|c| Assurance::of(&c.session))
            .unwrap_or(Assurance::Public);
        Ok(if level >= required {
            ForwardAuth::Allow {
                user: user.map(Box::new),
            }
        } else {
            ForwardAuth::Deny { required }
        })
    }

    /// What a turned-away browser must do next for a request to `target`.
    pub async fn forward_auth_next(
        &self,
        session_token: Option<&str>,
        target: &RequestTarget,
    ) -> Result<NextStep, CoreError> {
        let required = self.settings.forward_auth.required(target);
        let Some(ctx) = self.forward_auth_session(session_token).await? else {
            return Ok(if required == Assurance::Public {
                NextStep::Return
            } else {
                NextStep::SignIn
            });
        };
        self.next_step_towards(&ctx, required).await
    }

    /// What the signed-in `ctx` must do to reach `required`: nothing, a step-up, or setting up
    /// the kind of factor it lacks. Shared by forward-auth and OIDC `acr_values`.
    pub(super) async fn next_step_towards(
        &self,
        ctx: &SessionContext,
        required: Assurance,
    ) -> Result<NextStep, CoreError> {
        if Assurance::of(&ctx.session) >= required {
            return Ok(NextStep::Return);
        }
        let factors: Vec<String> = self
            .active_factors(&Owner::Account(ctx.account.id))
            .await?
            .into_iter()
            .map(|f| f.kind)
            .collect();
        let phishing_resistant = required == Assurance::PhishingResistant;
        let can = if phishing_resistant {
            factors.iter().any(|k| k == "webauthn")
        } else {
            !factors.is_empty()
        };
        Ok(if can {
            NextStep::StepUp
        } else {
            NextStep::SetUp { phishing_resistant }
        })
    }

    /// Whether a sign-in may send the browser to `target`: Twofold's own origin (scheme, host
    /// and port of `public_url`), or a host and port a rule names. Anything else would make
    /// the sign-in an open redirect.
    pub fn forward_auth_may_return_to(&self, target: &RequestTarget) -> bool {
        let own = RequestTarget::from_url(&self.settings.public_url).map(|t| t.origin);
        own.is_ok_and(|o| o == target.origin) || self.settings.forward_auth.names(&target.origin)
    }

    pub(super) async fn forward_auth_session(
        &self,
        token: Option<&str>,
    ) -> Result<Option<SessionContext>, CoreError> {
        match token {
            None => Ok(None),
            Some(t) => match self.authenticate(t).await {
                Ok(ctx) => Ok(Some(ctx)),
                Err(CoreError::Unauthenticated) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }
}
