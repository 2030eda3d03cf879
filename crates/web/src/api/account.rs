use super::ApiJson;
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
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use twofold_core::CoreError;
use twofold_core::service::Permission;
use uuid::Uuid;

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

pub async fn show(ApiSession(ctx): ApiSession) -> Response {
    let a = &ctx.account;
    Json(json!({
        "id": a.id,
        "email": a.email,
        "email_verified": a.is_verified(),
        "created_at": rfc3339(a.created_at),
        "session": { "id": ctx.session.id, "amr": ctx.session.amr, "auth_time": rfc3339(ctx.session.auth_time) },
    }))
    .into_response()
}

pub async fn sessions(
    State(state): State<AppState>,
    ApiSession(ctx): ApiSession,
) -> Result<Response, ApiError> {
    let sessions = state.core().list_sessions(&ctx).await?;
    let list: Vec<_> = sessions
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "browser": describe_browser(s.user_agent.as_deref()),
                "user_agent": s.user_agent,
                "ip": s.ip,
                "created_at": rfc3339(s.created_at),
                "last_seen_at": rfc3339(s.last_seen_at),
                "expires_at": rfc3339(s.expires_at),
                "current": s.id == ctx.session.id,
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": list })).into_response())
}

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

#[derive(Deserialize)]
pub struct PasswordChange {
    current_password: SecretString,
    new_password: SecretString,
}

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
    Ok(Json(json!({ "status": "password_changed" })).into_response())
}

#[derive(Deserialize)]
pub struct EmailChange {
    new_email: String,
    current_password: SecretString,
}

/// 202: a confirmation link went to the new address; the address changes when it is used.
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
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": "confirmation_sent" })),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct Token {
    token: String,
}

/// The link from the new mailbox; a session of the same account sending it stays signed in.
pub async fn confirm_email_change(
    State(state): State<AppState>,
    MaybeSession(current): MaybeSession,
    Client(meta): Client,
    ApiJson(body): ApiJson<Token>,
) -> Result<Response, ApiError> {
    let email = state
        .core()
        .confirm_email_change(&body.token, current.as_ref(), &meta)
        .await?;
    Ok(Json(json!({ "status": "email_changed", "email": email })).into_response())
}

/// Whether the signed-in user may use a sensitive permission now (`remote-session`): 200
/// with how long the grant lasts; 403 `step-up-required` (prove a second factor again at
/// `/account/step-up`) or `two-factor-setup-required`.
pub async fn permission(
    State(state): State<AppState>,
    ApiSession(ctx): ApiSession,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let permission = Permission::parse(&name).ok_or(ApiError(CoreError::NotFound))?;
    let grant = state.core().check_permission(&ctx, permission).await?;
    Ok(Json(json!({
        "permission": grant.permission.as_str(),
        "granted": true,
        "valid_until": rfc3339(grant.valid_until),
    }))
    .into_response())
}
