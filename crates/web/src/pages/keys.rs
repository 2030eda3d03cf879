//! Security keys and passkeys in the pages. The browser part is /static/webauthn.js: it asks a
//! `begin` endpoint for options (JSON), calls `navigator.credentials`, puts the result in the
//! form and submits it to the matching `finish` endpoint, which answers with a page.

use super::factors::{factor_added, step_up_redirect};
use super::{error_text, message_page};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::session::{
    EnrollingSession, PageSession, build_cookie, cookie_name, session_cookie, session_token,
};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use twofold_core::CoreError;
use twofold_core::service::{CeremonyStart, KeyKind};
use uuid::Uuid;

fn options(start: CeremonyStart) -> Response {
    Json(json!({ "ceremony": start.id, "options": start.options })).into_response()
}

/// `begin` endpoints are called by script: errors are problem+json.
fn api_error(e: CoreError) -> Response {
    crate::error::ApiError(e).into_response()
}

#[derive(Deserialize)]
pub struct BeginRegistration {
    #[serde(default)]
    kind: String,
}

pub async fn register_begin(
    State(state): State<AppState>,
    EnrollingSession(ctx): EnrollingSession,
    crate::client::Client(meta): crate::client::Client,
    CsrfForm(form): CsrfForm<BeginRegistration>,
) -> Response {
    let kind = if form.kind == "passkey" {
        KeyKind::Passkey
    } else {
        KeyKind::SecurityKey
    };
    match state
        .core()
        .account_begin_key_registration(&ctx, kind, &meta)
        .await
    {
        Ok(start) => options(start),
        Err(e) => api_error(e),
    }
}

#[derive(Deserialize)]
pub struct Finish {
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    credential: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    remember: Option<String>,
}

fn parse(form: &Finish) -> Result<(Uuid, serde_json::Value), CoreError> {
    let bad = || CoreError::KeyRejected("The browser's answer could not be read. Try again.");
    let id = Uuid::parse_str(&form.ceremony).map_err(|_| bad())?;
    let credential = serde_json::from_str(&form.credential).map_err(|_| bad())?;
    Ok((id, credential))
}

fn failed(state: &AppState, e: &CoreError, back: &'static str) -> Response {
    let (status, text) = error_text(e);
    message_page(
        state,
        status,
        "That did not work",
        &text,
        Some(super::Link {
            href: back,
            label: "Back",
        }),
    )
}

pub async fn register_finish(
    State(state): State<AppState>,
    jar: CookieJar,
    EnrollingSession(ctx): EnrollingSession,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<Finish>,
) -> Response {
    let result = match parse(&form) {
        Ok((id, credential)) => {
            state
                .core()
                .account_finish_key_registration(&ctx, id, &form.name, credential, &meta)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(codes) => factor_added(&state, jar, &ctx, codes, &meta).await,
        Err(CoreError::StepUpRequired) => step_up_redirect(),
        Err(e) => failed(&state, &e, "/account/security"),
    }
}

pub async fn second_step_begin(
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(_): CsrfForm<super::auth::NoFields>,
) -> Response {
    let Some(token) = session_token(&jar, &state) else {
        return api_error(CoreError::Unauthenticated);
    };
    match state.core().second_step_begin_key(&token).await {
        Ok(start) => options(start),
        Err(e) => api_error(e),
    }
}

pub async fn second_step_finish(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<Finish>,
) -> Response {
    let Some(token) = session_token(&jar, &state) else {
        return Redirect::to("/login").into_response();
    };
    let result = match parse(&form) {
        Ok((id, credential)) => {
            state
                .core()
                .second_step_finish_key(&token, id, credential, &meta)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok((token, session, _)) => {
            let jar = jar.add(session_cookie(&state, token.expose_secret().to_owned()));
            match crate::session::remember_browser(
                &state,
                jar,
                form.remember.is_some(),
                &session,
                &meta,
            )
            .await
            {
                Ok(jar) => (jar, Redirect::to("/account")).into_response(),
                Err(e) => failed(&state, &e, "/login/second-factor"),
            }
        }
        Err(CoreError::Unauthenticated) => Redirect::to("/login").into_response(),
        Err(e) => failed(&state, &e, "/login/second-factor"),
    }
}

pub async fn step_up_begin(
    State(state): State<AppState>,
    PageSession(ctx): PageSession,
    CsrfForm(_): CsrfForm<super::auth::NoFields>,
) -> Response {
    match state.core().step_up_begin_key(&ctx).await {
        Ok(start) => options(start),
        Err(e) => api_error(e),
    }
}

pub async fn step_up_finish(
    State(state): State<AppState>,
    PageSession(ctx): PageSession,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<Finish>,
) -> Response {
    // Checked before the ceremony is used up.
    let Some(next) = super::second_step::step_up_next(Some(&form.next)) else {
        let e = CoreError::invalid("next", super::second_step::BAD_NEXT);
        return failed(&state, &e, "/account/step-up");
    };
    let result = match parse(&form) {
        Ok((id, credential)) => {
            state
                .core()
                .step_up_finish_key(&ctx, id, credential, &meta)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to(next.as_str()).into_response(),
        Err(e) => failed(&state, &e, "/account/step-up"),
    }
}

/// Starts a passkey sign-in; a cookie ties the ceremony to this browser, so a ceremony id
/// seen elsewhere is useless.
pub async fn passkey_begin(
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(_): CsrfForm<super::auth::NoFields>,
) -> Response {
    match state.core().passkey_begin().await {
        Ok(start) => {
            let ttl = state.core().settings().webauthn_ceremony_ttl;
            let jar = jar.add(build_cookie(
                &state,
                "passkey",
                start.id.to_string(),
                Some(ttl),
            ));
            (jar, options(start)).into_response()
        }
        Err(e) => api_error(e),
    }
}

pub async fn passkey_finish(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<Finish>,
) -> Response {
    let bound = jar
        .get(cookie_name(&state, "passkey"))
        .is_some_and(|c| c.value() == form.ceremony);
    let (jar, device) = crate::session::device_token(jar, &state);
    let result = match parse(&form) {
        Ok(_) if !bound => Err(CoreError::KeyRejected(
            "This sign-in was started in another browser. Try again.",
        )),
        Ok((id, credential)) => {
            state
                .core()
                .passkey_finish(id, credential, Some(&device), &meta)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok((token, _)) => {
            let jar = jar.add(session_cookie(&state, token.expose_secret().to_owned()));
            (jar, Redirect::to("/account")).into_response()
        }
        Err(e) => failed(&state, &e, "/login"),
    }
}
