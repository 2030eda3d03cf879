use super::ApiJson;
use crate::client::Client;
use crate::error::ApiError;
use crate::session::{ApiSession, removal_cookie, session_cookie, session_token};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use twofold_core::CoreError;
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
    jar: CookieJar,
    Client(meta): Client,
    ApiJson(body): ApiJson<Token>,
) -> Result<Response, ApiError> {
    let device = crate::session::device_cookie(&jar, &state);
    state
        .core()
        .verify_email(&body.token, device.as_deref(), &meta)
        .await?;
    Ok(Json(json!({ "status": "verified" })).into_response())
}

pub async fn log_in(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let (jar, device) = crate::session::device_token(jar, &state);
    let outcome = state
        .core()
        .log_in(
            &body.email,
            &body.password,
            crate::session::trusted_browser_token(&jar, &state).as_deref(),
            Some(&device),
            &meta,
        )
        .await?;
    Ok(login_response(&state, jar, outcome))
}

#[derive(Deserialize)]
pub struct DeviceCode {
    code: String,
}

/// The code mailed after a password from an unknown browser or network; answers like the
/// password step with what comes next.
pub async fn confirm_device(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    ApiJson(body): ApiJson<DeviceCode>,
) -> Result<Response, ApiError> {
    let token = session_token(&jar, &state).ok_or(CoreError::Unauthenticated)?;
    let outcome = state
        .core()
        .confirm_device(
            &token,
            &body.code,
            crate::session::trusted_browser_token(&jar, &state).as_deref(),
            &meta,
        )
        .await?;
    Ok(login_response(&state, jar, outcome))
}

/// A new code for the device-verification step (after the resend cooldown).
pub async fn resend_device_code(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
) -> Result<Response, ApiError> {
    let token = session_token(&jar, &state).ok_or(CoreError::Unauthenticated)?;
    state.core().resend_device_code(&token, &meta).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "status": "code_sent" }))).into_response())
}

fn login_response(state: &AppState, jar: CookieJar, outcome: LoginOutcome) -> Response {
    let (token, body) = match outcome {
        LoginOutcome::SignedIn { token, session } => (
            token,
            json!({ "status": "signed_in", "session_id": session.id }),
        ),
        LoginOutcome::SecondFactorRequired { token, methods } => (
            token,
            json!({ "status": "second_factor_required", "methods": methods }),
        ),
        // The partial cookie reaches only the pages that add a factor (/login/set-up).
        LoginOutcome::EnrollmentRequired { token, methods } => (
            token,
            json!({ "status": "enrollment_required", "methods": methods }),
        ),
        LoginOutcome::DeviceVerificationRequired { token, hint } => (
            token,
            json!({ "status": "device_verification_required", "sent_to": hint }),
        ),
    };
    let jar = jar.add(session_cookie(state, token.expose_secret().to_owned()));
    (jar, Json(body)).into_response()
}

#[derive(Deserialize)]
pub struct SecondFactor {
    code: Option<String>,
    backup_code: Option<String>,
    /// Remember this browser: later logins here skip the second factor.
    #[serde(default)]
    remember: bool,
}

/// The second step: a code from an authenticator, or a backup code.
pub async fn second_factor(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    ApiJson(body): ApiJson<SecondFactor>,
) -> Result<Response, ApiError> {
    let token = session_token(&jar, &state).ok_or(CoreError::Unauthenticated)?;
    let code = body
        .code
        .or(body.backup_code)
        .ok_or_else(|| CoreError::invalid("code", "Send a code or a backup_code."))?;
    match state
        .core()
        .complete_second_factor(&token, &code, &meta)
        .await
    {
        Ok((token, session, remaining)) => {
            let jar = jar.add(session_cookie(&state, token.expose_secret().to_owned()));
            let jar = crate::session::remember_browser(&state, jar, body.remember, &session, &meta)
                .await?;
            let mut body = json!({ "status": "signed_in", "session_id": session.id });
            if let Some(n) = remaining {
                body["backup_codes_left"] = json!(n);
            }
            Ok((jar, Json(body)).into_response())
        }
        Err(e @ CoreError::SecondStepVoid) => {
            Ok((jar.add(removal_cookie(&state)), ApiError(e)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// What a waiting second step can use: its methods, and the phones and addresses that can be
/// sent a code.
pub async fn second_factor_options(
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Response, ApiError> {
    let token = session_token(&jar, &state).ok_or(CoreError::Unauthenticated)?;
    let core = state.core();
    let ctx = core.authenticate_partial(&token).await?;
    let methods = core.second_factor_methods(&ctx.account).await?;
    let senders: Vec<_> = core
        .account_code_factors(&ctx.account)
        .await?
        .iter()
        .map(|f| json!({ "id": f.id, "channel": f.channel.as_str(), "hint": f.hint }))
        .collect();
    Ok(Json(json!({ "methods": methods, "code_factors": senders })).into_response())
}

#[derive(Deserialize)]
pub struct SendCode {
    factor_id: String,
}

/// Sends a login code by SMS or email; the code then goes to `POST /session/second-factor`.
pub async fn second_factor_send(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    ApiJson(body): ApiJson<SendCode>,
) -> Result<Response, ApiError> {
    let token = session_token(&jar, &state).ok_or(CoreError::Unauthenticated)?;
    let factor = uuid::Uuid::parse_str(&body.factor_id)
        .map_err(|_| CoreError::invalid("factor_id", "factor_id is not a factor id."))?;
    let sent = state
        .core()
        .second_step_send_code(&token, factor, &meta)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "channel": sent.channel.as_str(),
            "hint": sent.hint,
            "expires_at": sent.expires_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        })),
    )
        .into_response())
}

/// Proves a second factor again, for sensitive changes made through the API.
pub async fn step_up(
    State(state): State<AppState>,
    ApiSession(ctx): ApiSession,
    Client(meta): Client,
    ApiJson(body): ApiJson<SecondFactor>,
) -> Result<Response, ApiError> {
    let code = body
        .code
        .or(body.backup_code)
        .ok_or_else(|| CoreError::invalid("code", "Send a code or a backup_code."))?;
    state.core().step_up(&ctx, &code, &meta).await?;
    Ok(Json(json!({ "status": "ok" })).into_response())
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
    jar: CookieJar,
    Client(meta): Client,
    ApiJson(body): ApiJson<NewPassword>,
) -> Result<Response, ApiError> {
    let device = crate::session::device_cookie(&jar, &state);
    state
        .core()
        .complete_password_reset(&body.token, &body.password, device.as_deref(), &meta)
        .await?;
    Ok(Json(json!({ "status": "password_changed" })).into_response())
}
