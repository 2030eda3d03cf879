use super::ApiJson;
use super::schema::{
    AccountView, Done, EmailChanged, PermissionGrant, Problem, SessionList, SessionSummary,
    SessionView, rfc3339,
};
use crate::client::Client;
use crate::error::ApiError;
use crate::pages::describe_browser;
use crate::session::{ApiSession, MaybeSession};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;
use twofold_core::CoreError;
use twofold_core::service::Permission;
use utoipa::ToSchema;
use uuid::Uuid;

#[utoipa::path(get, path = "/account", tag = "account",
    responses((status = 200, body = AccountView), (status = 401, body = Problem)))]
pub async fn show(ApiSession(ctx): ApiSession) -> Response {
    let a = &ctx.account;
    Json(AccountView {
        id: a.id,
        email: a.email.clone(),
        email_verified: a.is_verified(),
        created_at: rfc3339(a.created_at),
        session: SessionSummary {
            id: ctx.session.id,
            amr: ctx.session.amr.clone(),
            auth_time: rfc3339(ctx.session.auth_time),
        },
    })
    .into_response()
}

#[utoipa::path(get, path = "/account/sessions", tag = "account",
    responses((status = 200, body = SessionList), (status = 401, body = Problem)))]
pub async fn sessions(
    State(state): State<AppState>,
    ApiSession(ctx): ApiSession,
) -> Result<Response, ApiError> {
    let sessions = state.core().list_sessions(&ctx).await?;
    let list: Vec<_> = sessions
        .iter()
        .map(|s| SessionView {
            id: s.id,
            browser: describe_browser(s.user_agent.as_deref()),
            user_agent: s.user_agent.clone(),
            ip: s.ip.clone(),
            created_at: rfc3339(s.created_at),
            last_seen_at: rfc3339(s.last_seen_at),
            expires_at: rfc3339(s.expires_at),
            current: s.id == ctx.session.id,
        })
        .collect();
    Ok(Json(SessionList { sessions: list }).into_response())
}

#[utoipa::path(delete, path = "/account/sessions/{id}", tag = "account",
    params(("id" = Uuid, Path, description = "A session of this account")),
    responses((status = 204, description = "Signed out there"), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    ApiSession(ctx): ApiSession,
    Client(meta): Client,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| CoreError::NotFound)?;
    state.core().revoke_session(&ctx, id, &meta).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    #[schema(value_type = String, format = Password)]
    current_password: SecretString,
    #[schema(value_type = String, format = Password)]
    new_password: SecretString,
}

#[utoipa::path(post, path = "/account/password", tag = "account", request_body = PasswordChange,
    responses((status = 200, body = Done), (status = 400, body = Problem, description = "Wrong current password or weak new one"),
        (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn change_password(
    State(state): State<AppState>,
    ApiSession(ctx): ApiSession,
    Client(meta): Client,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<Response, ApiError> {
    state
        .core()
        .change_password(&ctx, &body.current_password, &body.new_password, &meta)
        .await?;
    Ok(Json(Done::new("password_changed")).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChange {
    new_email: String,
    #[schema(value_type = String, format = Password)]
    current_password: SecretString,
}

/// 202: a confirmation link went to the new address; the address changes when it is used.
#[utoipa::path(post, path = "/account/email", tag = "account", request_body = EmailChange,
    responses((status = 202, body = Done), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem, description = "A fresh second factor is needed (`step-up-required`)")))]
pub async fn request_email_change(
    State(state): State<AppState>,
    ApiSession(ctx): ApiSession,
    Client(meta): Client,
    ApiJson(body): ApiJson<EmailChange>,
) -> Result<Response, ApiError> {
    state
        .core()
        .request_email_change(&ctx, &body.new_email, &body.current_password, &meta)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Done::new("confirmation_sent"))).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmToken {
    token: String,
}

/// The link from the new mailbox; a session of the same account sending it stays signed in.
#[utoipa::path(post, path = "/account/email/confirm", tag = "account", request_body = ConfirmToken,
    responses((status = 200, body = EmailChanged), (status = 400, body = Problem, description = "Invalid or expired link, or the address is taken")))]
pub async fn confirm_email_change(
    State(state): State<AppState>,
    MaybeSession(current): MaybeSession,
    Client(meta): Client,
    ApiJson(body): ApiJson<ConfirmToken>,
) -> Result<Response, ApiError> {
    let email = state
        .core()
        .confirm_email_change(&body.token, current.as_ref(), &meta)
        .await?;
    Ok(Json(EmailChanged {
        status: "email_changed",
        email,
    })
    .into_response())
}

/// Whether the signed-in user may use a sensitive permission now (`remote-session`): 200
/// with how long the grant lasts; 403 `step-up-required` (prove a second factor again at
/// `/account/step-up`) or `two-factor-setup-required`.
#[utoipa::path(get, path = "/session/permissions/{permission}", tag = "account",
    params(("permission" = String, Path, description = "`remote-session`")),
    responses((status = 200, body = PermissionGrant), (status = 401, body = Problem),
        (status = 403, body = Problem, description = "`step-up-required` or `two-factor-setup-required`"), (status = 404, body = Problem)))]
pub async fn permission(
    State(state): State<AppState>,
    ApiSession(ctx): ApiSession,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let permission = Permission::parse(&name).ok_or(ApiError(CoreError::NotFound))?;
    let grant = state.core().check_permission(&ctx, permission).await?;
    Ok(Json(PermissionGrant {
        permission: grant.permission.as_str().to_owned(),
        granted: true,
        valid_until: rfc3339(grant.valid_until),
    })
    .into_response())
}
