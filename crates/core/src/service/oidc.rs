//! The OpenID Connect authorization endpoint: an application sends a browser here; it leaves
//! with a one-time code once the session satisfies the request (fresh enough for `prompt=login`
//! and `max_age`, strong enough for `acr_values`, consented for third-party apps), or with an
//! error for the application. Sign-in, step-up and set-up are the hosted pages', which send the
//! browser back to continue the same request.

use super::{Core, NextStep, SessionContext};
use crate::assurance::Assurance;
use crate::error::CoreError;
use crate::model::RequestMeta;
use crate::oidc::{
    AuthRequest, AuthorizeParams, Grant, IdTokenClaims, ReplacedSession, RequestError, acr_of,
    check_request,
};
use crate::ports::NewOidcCode;
use crate::random::random_bytes;
use crate::token::TokenPurpose;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret;
use serde_json::json;
use time::OffsetDateTime;

/// What the authorization endpoint does with the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorize {
    /// Back to the application: with a code, or with an error for it.
    Redirect(String),
    /// Nothing can be sent to the application (unknown client or redirect URI, or an expired
    /// request): the user reads why.
    Refuse(&'static str),
    /// The browser must do `next` first, then continue request `request_id`.
    Interact { next: NextStep, request_id: String },
    /// The session is too old for the request (`prompt=login`, `max_age`): the browser signs
    /// in again while its session stays usable, then continues request `request_id`.
    SignInAgain { request_id: String },
    /// A third-party application: the user decides.
    Consent {
        request_id: String,
        client_name: String,
        scope: Vec<String>,
    },
}

/// The query of the logout endpoint (RP-initiated logout).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct LogoutParams {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logout {
    /// Signed out (or was not signed in); go to the application's page, if it named one.
    Done { redirect: Option<String> },
    /// Nothing proves the application speaks for this user: ask before signing out.
    Confirm { client_name: Option<String> },
}

fn with_query(uri: &str, pairs: &[(&str, Option<&str>)]) -> Result<String, CoreError> {
    let mut url = url::Url::parse(uri)
        .map_err(|e| CoreError::Internal(format!("registered redirect URI: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
    }
    Ok(url.into())
}

impl Core {
    fn issuer(&self) -> &str {
        &self.settings.public_url
    }

    fn error_redirect(
        &self,
        req: &AuthRequest,
        error: &str,
        description: &str,
    ) -> Result<Authorize, CoreError> {
        Ok(Authorize::Redirect(with_query(
            &req.redirect_uri,
            &[
                ("error", Some(error)),
                ("error_description", Some(description)),
                ("state", req.state.as_deref()),
                ("iss", Some(self.issuer())),
            ],
        )?))
    }

    /// A new authorization request from the application.
    pub async fn oidc_authorize(
        &self,
        session_token: Option<&str>,
        params: &AuthorizeParams,
        meta: &RequestMeta,
    ) -> Result<Authorize, CoreError> {
        let client = match params.client_id.as_deref() {
            Some(id) => self.store.oidc_client(id).await?.map(|(c, _)| c),
            None => None,
        };
        let req = match check_request(params, client.as_ref()) {
            Ok(r) => r,
            Err(RequestError::Fatal(why)) => return Ok(Authorize::Refuse(why)),
            Err(RequestError::Redirect { error, description }) => {
                let uri = params.redirect_uri.as_deref().unwrap_or_default();
                return Ok(Authorize::Redirect(with_query(
                    uri,
                    &[
                        ("error", Some(error)),
                        ("error_description", Some(&description)),
                        ("state", params.state.as_deref()),
                        ("iss", Some(self.issuer())),
                    ],
                )?));
            }
        };
        let id = URL_SAFE_NO_PAD.encode(random_bytes::<16>(self.random.as_ref()));
        let now = self.clock.now();
        self.store
            .save_auth_request(&id, &req, now, now + self.settings.oidc.request_ttl)
            .await?;
        self.oidc_resume(session_token, &id, req, now, meta).await
    }

    /// The same request, after the browser signed in, stepped up or set up a factor.
    pub async fn oidc_continue(
        &self,
        session_token: Option<&str>,
        request_id: &str,
        meta: &RequestMeta,
    ) -> Result<Authorize, CoreError> {
        let Some((req, created_at)) = self
            .store
            .auth_request(request_id, self.clock.now())
            .await?
        else {
            return Ok(Authorize::Refuse(
                "This sign-in request has expired or was already completed. Go back to the application and start again.",
            ));
        };
        self.oidc_resume(session_token, request_id, req, created_at, meta)
            .await
    }

    /// The user's answer on the consent screen.
    pub async fn oidc_consent(
        &self,
        ctx: &SessionContext,
        session_token: &str,
        request_id: &str,
        allow: bool,
        meta: &RequestMeta,
    ) -> Result<Authorize, CoreError> {
        let now = self.clock.now();
        let Some((mut req, created_at)) = self.store.auth_request(request_id, now).await? else {
            return Ok(Authorize::Refuse(
                "This sign-in request has expired or was already completed. Go back to the application and start again.",
            ));
        };
        if !allow {
            let audit = self.audit(
                "oidc_consent_denied",
                Some(ctx.account.id),
                meta,
                json!({ "client_id": req.client_id }),
            );
            self.store.record_audit(&audit).await?;
            return self.error_redirect(&req, "access_denied", "the user declined");
        }
        let audit = self.audit(
            "oidc_consent_granted",
            Some(ctx.account.id),
            meta,
            json!({ "client_id": req.client_id, "scope": req.scope }),
        );
        self.store
            .save_consent(ctx.account.id, &req.client_id, &req.scope, &audit)
            .await?;
        req.consented = true;
        self.store
            .save_auth_request(
                request_id,
                &req,
                created_at,
                created_at + self.settings.oidc.request_ttl,
            )
            .await?;
        self.oidc_resume(Some(session_token), request_id, req, created_at, meta)
            .await
    }

    async fn oidc_resume(
        &self,
        session_token: Option<&str>,
        request_id: &str,
        req: AuthRequest,
        created_at: OffsetDateTime,
        meta: &RequestMeta,
    ) -> Result<Authorize, CoreError> {
        let interact = |next| Authorize::Interact {
            next,
            request_id: request_id.to_owned(),
        };
        let Some(ctx) = self.forward_auth_session(session_token).await? else {
            if req.prompt.none {
                return self.error_redirect(&req, "login_required", "no one is signed in");
            }
            return Ok(interact(NextStep::SignIn));
        };
        if self.too_old_for(&req, &ctx, created_at) {
            if req.prompt.none {
                return self.error_redirect(&req, "login_required", "the sign-in is too old");
            }
            self.replace_after_sign_in(request_id, req, created_at, &ctx)
                .await?;
            return Ok(Authorize::SignInAgain {
                request_id: request_id.to_owned(),
            });
        }
        self.end_replaced_session(&req, &ctx, meta).await?;
        if let Some(required) = req.acr {
            match self.next_step_towards(&ctx, required).await? {
                NextStep::Return => {}
                _ if req.prompt.none => {
                    return self.error_redirect(
                        &req,
                        "interaction_required",
                        "a stronger sign-in is needed",
                    );
                }
                next => return Ok(interact(next)),
            }
        }
        let Some((client, _)) = self.store.oidc_client(&req.client_id).await? else {
            return Ok(Authorize::Refuse(
                "The application that sent you here is not registered.",
            ));
        };
        if !client.first_party && !req.consented {
            let given = self
                .store
                .consented_scopes(ctx.account.id, &client.id)
                .await?
                .unwrap_or_default();
            let covered = req.scope.iter().all(|s| given.contains(s));
            if req.prompt.consent || !covered {
                if req.prompt.none {
                    return self.error_redirect(
                        &req,
                        "consent_required",
                        "the user has not allowed this application",
                    );
                }
                return Ok(Authorize::Consent {
                    request_id: request_id.to_owned(),
                    client_name: client.name,
                    scope: req.scope,
                });
            }
        }
        self.issue_code(&ctx, request_id, &req, meta).await
    }

    /// Whether the session's sign-in is too old for `prompt=login` or `max_age`. A sign-in
    /// made after the request arrived is the one it asked for, and always fresh enough
    /// (otherwise `max_age=0` could never be met).
    fn too_old_for(
        &self,
        req: &AuthRequest,
        ctx: &SessionContext,
        created_at: OffsetDateTime,
    ) -> bool {
        let auth_time = ctx.session.auth_time;
        if auth_time >= created_at {
            return false;
        }
        req.prompt.login
            || req
                .max_age
                .is_some_and(|age| self.clock.now() - auth_time > time::Duration::seconds(age))
    }

    /// Remembers, with the request, the session that the sign-in it asks for will replace.
    async fn replace_after_sign_in(
        &self,
        request_id: &str,
        mut req: AuthRequest,
        created_at: OffsetDateTime,
        ctx: &SessionContext,
    ) -> Result<(), CoreError> {
        if req.replaces.is_some() {
            return Ok(());
        }
        req.replaces = Some(ReplacedSession {
            account_id: ctx.account.id,
            session_id: ctx.session.id,
        });
        self.store
            .save_auth_request(
                request_id,
                &req,
                created_at,
                created_at + self.settings.oidc.request_ttl,
            )
            .await?;
        Ok(())
    }

    /// The fresh sign-in succeeded: the session it replaces ends now (once; a later pass
    /// finds nothing to delete and records nothing).
    async fn end_replaced_session(
        &self,
        req: &AuthRequest,
        ctx: &SessionContext,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let Some(old) = req.replaces.filter(|old| old.session_id != ctx.session.id) else {
            return Ok(());
        };
        let audit = self.audit(
            "logout",
            Some(old.account_id),
            meta,
            json!({ "session_id": old.session_id, "replaced_by": ctx.session.id }),
        );
        self.store
            .delete_session(old.account_id, old.session_id, &audit)
            .await?;
        Ok(())
    }

    async fn issue_code(
        &self,
        ctx: &SessionContext,
        request_id: &str,
        req: &AuthRequest,
        meta: &RequestMeta,
    ) -> Result<Authorize, CoreError> {
        let now = self.clock.now();
        let code = self.new_secret();
        let code_hash = self.hash_token(TokenPurpose::OidcCode, code.expose_secret().as_bytes());
        let grant = Grant {
            session_id: ctx.session.id,
            scope: req.scope.clone(),
            nonce: req.nonce.clone(),
            auth_time: ctx.session.auth_time,
            amr: ctx.session.amr.clone(),
            acr: acr_of(Assurance::of(&ctx.session)).to_owned(),
        };
        let audit = self.audit(
            "oidc_code_issued",
            Some(ctx.account.id),
            meta,
            json!({ "client_id": req.client_id, "acr": grant.acr, "amr": grant.amr }),
        );
        self.store
            .issue_code(
                &NewOidcCode {
                    code_hash,
                    client_id: req.client_id.clone(),
                    account_id: ctx.account.id,
                    redirect_uri: req.redirect_uri.clone(),
                    code_challenge: req.code_challenge.clone().unwrap_or_default(),
                    grant,
                    family_id: self.new_id(),
                    security_stamp: ctx.account.security_stamp.clone(),
                    created_at: now,
                    expires_at: now + self.settings.oidc.code_ttl,
                },
                request_id,
                &audit,
            )
            .await?;
        Ok(Authorize::Redirect(with_query(
            &req.redirect_uri,
            &[
                ("code", Some(code.expose_secret())),
                ("state", req.state.as_deref()),
                ("iss", Some(self.issuer())),
            ],
        )?))
    }

    /// RP-initiated logout. The application's page is only returned to when it is registered
    /// for the client the hint (or `client_id`) names.
    pub async fn oidc_logout(
        &self,
        session_token: Option<&str>,
        params: &LogoutParams,
        confirmed: bool,
        meta: &RequestMeta,
    ) -> Result<Logout, CoreError> {
        let hint: Option<IdTokenClaims> = match params.id_token_hint.as_deref() {
            Some(t) => self.verify_own_token(t).await.ok(),
            None => None,
        };
        let client_id = hint
            .as_ref()
            .map(|h| h.aud.clone())
            .or_else(|| params.client_id.clone());
        let client = match client_id.as_deref() {
            Some(id) => self.store.oidc_client(id).await?.map(|(c, _)| c),
            None => None,
        };
        let redirect = match (&client, params.post_logout_redirect_uri.as_deref()) {
            (Some(c), Some(uri)) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => {
                Some(with_query(uri, &[("state", params.state.as_deref())])?)
            }
            _ => None,
        };
        let Some(ctx) = self.forward_auth_session(session_token).await? else {
            return Ok(Logout::Done { redirect });
        };
        let vouched = hint
            .as_ref()
            .is_some_and(|h| h.sub == ctx.account.id.to_string());
        if !vouched && !confirmed {
            return Ok(Logout::Confirm {
                client_name: client.map(|c| c.name),
            });
        }
        if let Some(token) = session_token {
            self.log_out(token, meta).await?;
        }
        Ok(Logout::Done { redirect })
    }
}
