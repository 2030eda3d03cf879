use super::ApiJson;
use super::schema::{
    CodeFactorRef, CodeSent, Done, LoginState, Problem, SecondStepOptions, rfc3339,
};
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
use twofold_core::CoreError;
use twofold_core::service::LoginOutcome;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    email: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Token {
    token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailOnly {
    email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    token: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

#[utoipa::path(post, path = "/signup", tag = "sign-in", request_body = Credentials,
    responses((status = 202, body = Done, description = "A verification link was mailed (also when the address has an account: no enumeration)"),
        (status = 400, body = Problem, description = "Invalid address or weak password"),
        (status = 429, body = Problem, description = "Too many sign-ups from here")))]
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
        Json(Done::with_detail(
            "verification_sent",
            "Check your email for a verification link.",
        )),
    )
        .into_response())
}

#[utoipa::path(post, path = "/email-verification", tag = "sign-in", request_body = Token,
    responses((status = 200, body = Done), (status = 400, body = Problem, description = "Invalid or expired link")))]
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
    Ok(Json(Done::new("verified")).into_response())
}

#[utoipa::path(post, path = "/session", tag = "sign-in", request_body = Credentials,
    responses((status = 200, body = LoginState, description = "Sets the session cookie; `status` says what comes next"),
        (status = 401, body = Problem, description = "Incorrect email or password (the same for unknown accounts)"),
        (status = 403, body = Problem, description = "Email not verified"),
        (status = 429, body = Problem, description = "Too many attempts"),
        (status = 503, body = Problem, description = "Busy: password hashing is at capacity")))]
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceCode {
    code: String,
}

#[utoipa::path(post, path = "/session/device", tag = "sign-in", request_body = DeviceCode,
    responses((status = 200, body = LoginState), (status = 401, body = Problem, description = "No device-verification step, or it is void"),
        (status = 422, body = Problem, description = "Wrong code"), (status = 429, body = Problem)))]
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

#[utoipa::path(post, path = "/session/device/code", tag = "sign-in",
    responses((status = 202, body = Done), (status = 401, body = Problem), (status = 429, body = Problem, description = "Resend cooldown")))]
/// A new code for the device-verification step (after the resend cooldown).
pub async fn resend_device_code(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
) -> Result<Response, ApiError> {
    let token = session_token(&jar, &state).ok_or(CoreError::Unauthenticated)?;
    state.core().resend_device_code(&token, &meta).await?;
    Ok((StatusCode::ACCEPTED, Json(Done::new("code_sent"))).into_response())
}

fn login_response(state: &AppState, jar: CookieJar, outcome: LoginOutcome) -> Response {
    let step = |status| LoginState {
        status,
        session_id: None,
        methods: None,
        sent_to: None,
        backup_codes_left: None,
    };
    let (token, body) = match outcome {
        LoginOutcome::SignedIn { token, session } => (
            token,
            LoginState {
                session_id: Some(session.id),
                ..step("signed_in")
            },
        ),
        LoginOutcome::SecondFactorRequired { token, methods } => (
            token,
            LoginState {
                methods: Some(methods.iter().map(|m| m.to_string()).collect()),
                ..step("second_factor_required")
            },
        ),
        // The partial cookie reaches only the pages that add a factor (/login/set-up).
        LoginOutcome::EnrollmentRequired { token, methods } => (
            token,
            LoginState {
                methods: Some(methods.iter().map(|m| m.to_string()).collect()),
                ..step("enrollment_required")
            },
        ),
        LoginOutcome::DeviceVerificationRequired { token, hint } => (
            token,
            LoginState {
                sent_to: Some(hint),
                ..step("device_verification_required")
            },
        ),
    };
    let jar = jar.add(session_cookie(state, token.expose_secret().to_owned()));
    (jar, Json(body)).into_response()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondFactor {
    code: Option<String>,
    backup_code: Option<String>,
    /// Remember this browser: later logins here skip the second factor.
    #[serde(default)]
    remember: bool,
}

#[utoipa::path(post, path = "/session/second-factor", tag = "sign-in", request_body = SecondFactor,
    responses((status = 200, body = LoginState), (status = 400, body = Problem),
        (status = 401, body = Problem, description = "Not in the second step, or too many wrong codes (`second-step-void`)"),
        (status = 403, body = Problem, description = "The policy forbids this method"),
        (status = 422, body = Problem, description = "Wrong code"), (status = 429, body = Problem)))]
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
            let body = LoginState {
                status: "signed_in",
                session_id: Some(session.id),
                methods: None,
                sent_to: None,
                backup_codes_left: remaining,
            };
            Ok((jar, Json(body)).into_response())
        }
        Err(e @ CoreError::SecondStepVoid) => {
            Ok((jar.add(removal_cookie(&state)), ApiError(e)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(get, path = "/session/second-factor", tag = "sign-in",
    responses((status = 200, body = SecondStepOptions), (status = 401, body = Problem)))]
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
        .map(|f| CodeFactorRef {
            id: f.id,
            channel: f.channel.as_str().to_owned(),
            hint: f.hint.clone(),
        })
        .collect();
    Ok(Json(SecondStepOptions {
        methods,
        code_factors: senders,
    })
    .into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendCode {
    factor_id: String,
}

#[utoipa::path(post, path = "/session/second-factor/code", tag = "sign-in", request_body = SendCode,
    responses((status = 202, body = CodeSent), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 429, body = Problem, description = "Cooldown or send quota"), (status = 503, body = Problem, description = "SMS unavailable")))]
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
        Json(CodeSent {
            channel: sent.channel.as_str().to_owned(),
            hint: sent.hint,
            expires_at: rfc3339(sent.expires_at),
        }),
    )
        .into_response())
}

#[utoipa::path(post, path = "/session/step-up", tag = "account", request_body = SecondFactor,
    responses((status = 200, body = Done), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
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
    Ok(Json(Done::new("ok")).into_response())
}

#[utoipa::path(delete, path = "/session", tag = "sign-in",
    responses((status = 204, description = "Signed out (also when no one was signed in)"), (status = 500, body = Problem)))]
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

#[utoipa::path(post, path = "/password-reset", tag = "sign-in", request_body = EmailOnly,
    responses((status = 202, body = Done, description = "The same answer whether or not the address has an account"),
        (status = 400, body = Problem), (status = 429, body = Problem)))]
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
        Json(Done::with_detail(
            "accepted",
            "If an account exists for that address, we have sent a link to reset the password.",
        )),
    )
        .into_response())
}

#[utoipa::path(post, path = "/password-reset/complete", tag = "sign-in", request_body = NewPassword,
    responses((status = 200, body = Done), (status = 400, body = Problem, description = "Invalid link or weak password")))]
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
    Ok(Json(Done::new("password_changed")).into_response())
}
