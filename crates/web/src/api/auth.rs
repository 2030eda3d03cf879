use super::ApiJson;
use crate::client::Client;
use crate::error::ApiError;
use crate::session::{removal_cookie, session_cookie, session_token};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use twofold_core::service::LoginOutcome;

#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: SecretString,
}

#[derive(Deserialize)]
pub struct Token {
    token: String,
}

#[derive(Deserialize)]
pub struct EmailOnly {
    email: String,
}

#[derive(Deserialize)]
pub struct NewPassword {
    token: String,
    password: SecretString,
}

/// 202 whether or not the address already had an account.
pub async fn signup(
    State(state): State<AppState>,
    Client(meta): Client,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    state
        .core()
        .sign_up(&body.email, &body.password, &meta)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": "verification_sent", "detail": "Check your email for a verification link." })),
    )
        .into_response())
}

pub async fn verify_email(
    State(state): State<AppState>,
    Client(meta): Client,
    ApiJson(body): ApiJson<Token>,
) -> Result<Response, ApiError> {
    state.core().verify_email(&body.token, &meta).await?;
    Ok(Json(json!({ "status": "verified" })).into_response())
}

pub async fn log_in(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    match state
        .core()
        .log_in(&body.email, &body.password, &meta)
        .await?
    {
        LoginOutcome::SignedIn { token, session } => {
            let jar = jar.add(session_cookie(&state, token.expose_secret().to_owned()));
            Ok((
                jar,
                Json(json!({ "status": "signed_in", "session_id": session.id })),
            )
                .into_response())
        }
    }
}

pub async fn log_out(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
) -> Result<Response, ApiError> {
    if let Some(token) = session_token(&jar, &state) {
        state.core().log_out(&token, &meta).await?;
    }
    Ok((jar.add(removal_cookie(&state)), StatusCode::NO_CONTENT).into_response())
}

/// 202 whether or not the address has an account.
pub async fn request_password_reset(
    State(state): State<AppState>,
    Client(meta): Client,
    ApiJson(body): ApiJson<EmailOnly>,
) -> Result<Response, ApiError> {
    state
        .core()
        .request_password_reset(&body.email, &meta)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": "accepted", "detail": "If an account exists for that address, we have sent a link to reset the password." })),
    )
        .into_response())
}

pub async fn complete_password_reset(
    State(state): State<AppState>,
    Client(meta): Client,
    ApiJson(body): ApiJson<NewPassword>,
) -> Result<Response, ApiError> {
    state
        .core()
        .complete_password_reset(&body.token, &body.password, &meta)
        .await?;
    Ok(Json(json!({ "status": "password_changed" })).into_response())
}
