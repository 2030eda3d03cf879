//! The emailed code after a password from an unknown browser or network, the "this wasn't
//! me" link of a new-device mail, and forgetting known devices.

use super::auth::{NoFields, TokenForm, invalid_link, login_redirect};
use super::{error_page, error_text, render};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::session::{PageSession, removal_cookie, session_token, trusted_browser_token};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use secrecy::ExposeSecret;
use serde::Deserialize;
use twofold_core::CoreError;
use uuid::Uuid;

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

async fn render_device_page(
    state: &AppState,
    jar: CookieJar,
    token: &str,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<String>,
) -> Response {
    match state.core().device_verification_hint(token).await {
        Ok(hint) => render(
            state,
            jar,
            None,
            status,
            "device_verify.html",
            context! { title => "Confirm it's you", hint, notice, error },
        ),
        Err(_) => Redirect::to("/login").into_response(),
    }
}

/// Only a device-verification session (password accepted, browser or network new) gets here.
pub async fn page(State(state): State<AppState>, jar: CookieJar) -> Response {
    let Some(token) = session_token(&jar, &state) else {
        return Redirect::to("/login").into_response();
    };
    render_device_page(&state, jar, &token, StatusCode::OK, None, None).await
}

pub async fn confirm(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Response {
    let Some(token) = session_token(&jar, &state) else {
        return Redirect::to("/login").into_response();
    };
    let trusted = trusted_browser_token(&jar, &state);
    match state
        .core()
        .confirm_device(&token, &form.code, trusted.as_deref(), &meta)
        .await
    {
        Ok(outcome) => login_redirect(&state, jar, outcome),
        Err(CoreError::Unauthenticated) => Redirect::to("/login").into_response(),
        Err(e @ CoreError::SecondStepVoid) => {
            let (status, text) = error_text(&e);
            let jar = jar.add(removal_cookie(&state));
            super::render(
                &state,
                jar,
                None,
                status,
                "login.html",
                context! { title => "Sign in", error => text },
            )
        }
        Err(e) => {
            let (status, text) = error_text(&e);
            let text = if matches!(e, CoreError::WrongCode) {
                "That code is not correct, or it has expired. Check the latest email, or send a new code.".to_owned()
            } else {
                text
            };
            render_device_page(&state, jar, &token, status, None, Some(text)).await
        }
    }
}

pub async fn resend(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Response {
    let Some(token) = session_token(&jar, &state) else {
        return Redirect::to("/login").into_response();
    };
    match state.core().resend_device_code(&token, &meta).await {
        Ok(()) => {
            render_device_page(
                &state,
                jar,
                &token,
                StatusCode::OK,
                Some("We sent a new code. Codes sent before it no longer work."),
                None,
            )
            .await
        }
        Err(CoreError::Unauthenticated) => Redirect::to("/login").into_response(),
        Err(e) => {
            let (status, text) = error_text(&e);
            render_device_page(&state, jar, &token, status, None, Some(text)).await
        }
    }
}

/// "This wasn't me": a button, not an action on GET, so mail scanners that open links do not
/// sign the owner out.
pub async fn report_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<TokenForm>,
) -> Response {
    if q.token.is_empty() {
        return invalid_link(&state);
    }
    render(
        &state,
        jar,
        None,
        StatusCode::OK,
        "report_sign_in.html",
        context! { title => "Secure your account", token => q.token },
    )
}

pub async fn report(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<TokenForm>,
) -> Response {
    match state.core().report_sign_in(&form.token, &meta).await {
        Ok(reset) => {
            let to = format!("/password-reset?token={}", reset.expose_secret());
            (jar.add(removal_cookie(&state)), Redirect::to(&to)).into_response()
        }
        Err(CoreError::InvalidToken) => invalid_link(&state),
        Err(e) => error_page(&state, e),
    }
}

pub async fn forget(
    State(state): State<AppState>,
    PageSession(ctx): PageSession,
    Client(meta): Client,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return error_page(&state, CoreError::NotFound);
    };
    match state
        .core()
        .forget_known_devices(&ctx, Some(id), &meta)
        .await
    {
        Ok(()) => Redirect::to("/account/security").into_response(),
        Err(e) => error_page(&state, e),
    }
}
