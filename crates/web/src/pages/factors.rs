//! Security settings: adding, naming and removing authenticators, and backup codes.

use super::{error_page, error_text, render};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::session::{
    EnrollingSession, PageSession, build_cookie, cookie_name, removal_cookie, session_cookie,
};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::{Value, context};
use serde::Deserialize;
use twofold_core::CoreError;
use twofold_core::service::{PendingTotp, SessionContext};
use uuid::Uuid;

use super::auth::NoFields;

pub(super) fn step_up_redirect() -> Response {
    Redirect::to("/account/step-up?next=/account/security").into_response()
}

pub(super) fn parse_id(id: &str) -> Result<Uuid, CoreError> {
    Uuid::parse_str(id).map_err(|_| CoreError::NotFound)
}

pub async fn begin_totp(
    State(state): State<AppState>,
    EnrollingSession(ctx): EnrollingSession,
    Client(meta): Client,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Response {
    match state.core().account_begin_totp(&ctx, &meta).await {
        Ok(p) => Redirect::to(&format!("/account/security/totp/{}", p.factor_id)).into_response(),
        Err(CoreError::StepUpRequired) => step_up_redirect(),
        Err(e) => error_page(&state, e),
    }
}

fn enroll(
    state: &AppState,
    jar: CookieJar,
    ctx: &SessionContext,
    status: StatusCode,
    p: &PendingTotp,
    error: Option<String>,
) -> Response {
    render(
        state,
        jar,
        Some(ctx),
        status,
        "totp_enroll.html",
        context! {
            title => "Add an authenticator app",
            factor_id => p.factor_id.to_string(),
            label => p.label.clone(),
            secret => p.secret_text.clone(),
            qr_svg => Value::from_safe_string(p.qr_svg.clone()),
            error,
        },
    )
}

pub async fn enroll_page(
    State(state): State<AppState>,
    jar: CookieJar,
    EnrollingSession(ctx): EnrollingSession,
    Path(id): Path<String>,
) -> Response {
    let pending = match parse_id(&id) {
        Ok(id) => state.core().account_pending_totp(&ctx, id).await,
        Err(e) => Err(e),
    };
    match pending {
        Ok(p) => enroll(&state, jar, &ctx, StatusCode::OK, &p, None),
        Err(CoreError::NotFound) => super::message_page(
            &state,
            StatusCode::NOT_FOUND,
            "This setup has expired",
            "Setting up an authenticator must be finished within 15 minutes. Start again from Security settings.",
            Some(super::Link {
                href: "/account/security",
                label: "Security settings",
            }),
        ),
        Err(e) => error_page(&state, e),
    }
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    label: String,
}

pub async fn confirm_totp(
    State(state): State<AppState>,
    jar: CookieJar,
    EnrollingSession(ctx): EnrollingSession,
    Client(meta): Client,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ConfirmForm>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, e),
    };
    match state
        .core()
        .account_confirm_totp(&ctx, id, &form.code, &form.label, &meta)
        .await
    {
        Ok(codes) => factor_added(&state, jar, &ctx, codes, &meta).await,
        Err(CoreError::StepUpRequired) => step_up_redirect(),
        Err(
            e @ (CoreError::WrongCode
            | CoreError::InvalidInput { .. }
            | CoreError::TooManyAttempts { .. }),
        ) => {
            let (status, text) = error_text(&e);
            match state.core().account_pending_totp(&ctx, id).await {
                Ok(p) => enroll(&state, jar, &ctx, status, &p, Some(text)),
                Err(e) => error_page(&state, e),
            }
        }
        Err(e) => error_page(&state, e),
    }
}

/// After a factor was added: its backup codes (for the first factor) or Security settings. A
/// forced-enrollment session becomes a signed-in one here, with a new cookie; a first factor
/// set up from a permission prompt ends the session instead, so that the user signs in again
/// with it.
pub(super) async fn factor_added(
    state: &AppState,
    jar: CookieJar,
    ctx: &SessionContext,
    codes: Option<Vec<String>>,
    meta: &twofold_core::model::RequestMeta,
) -> Response {
    let reauth = jar.get(cookie_name(state, "reauth")).is_some();
    if reauth && let Some(codes) = codes {
        if let Err(e) = state.core().end_session_after_setup(ctx, meta).await {
            return error_page(state, e);
        }
        let jar = jar.add(removal_cookie(state)).remove(build_cookie(
            state,
            "reauth",
            String::new(),
            None,
        ));
        return backup_codes_page(state, jar, None, &ctx.account.email, codes, true);
    }
    let jar = match state.core().complete_enrollment(ctx, meta).await {
        Ok(Some((token, _))) => jar.add(session_cookie(
            state,
            secrecy::ExposeSecret::expose_secret(&token).to_owned(),
        )),
        Ok(None) => jar,
        Err(e) => return error_page(state, e),
    };
    match codes {
        Some(codes) => backup_codes_page(state, jar, Some(ctx), &ctx.account.email, codes, true),
        None => (jar, Redirect::to("/account/security?added=1")).into_response(),
    }
}

/// Shown exactly once, right after the codes are made.
/// `user` is `None` when the session just ended (sign in again with the new factor).
pub(super) fn backup_codes_page(
    state: &AppState,
    jar: CookieJar,
    user: Option<&SessionContext>,
    email: &str,
    codes: Vec<String>,
    first: bool,
) -> Response {
    let text = format!(
        "{} backup codes for {}\nEach code works once. Keep them somewhere safe.\n\n{}\n",
        state.settings().branding.product_name,
        email,
        codes.join("\n")
    );
    let sign_in_again = user.is_none();
    let download = format!("data:text/plain;charset=utf-8,{}", urlencode(&text));
    render(
        state,
        jar,
        user,
        StatusCode::OK,
        "backup_codes.html",
        context! { title => "Your backup codes", codes, download, first, sign_in_again },
    )
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    label: String,
}

pub async fn rename(
    State(state): State<AppState>,
    PageSession(ctx): PageSession,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<RenameForm>,
) -> Response {
    let result = match parse_id(&id) {
        Ok(id) => {
            state
                .core()
                .account_rename_factor(&ctx, id, &form.label)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to("/account/security?renamed=1").into_response(),
        Err(e) => error_page(&state, e),
    }
}

pub async fn remove(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSession(ctx): PageSession,
    Client(meta): Client,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Response {
    let result = match parse_id(&id) {
        Ok(id) => state.core().account_remove_factor(&ctx, id, &meta).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to("/account/security?removed=1").into_response(),
        Err(CoreError::StepUpRequired) => step_up_redirect(),
        Err(e @ CoreError::PolicyForbids(_)) => {
            let (status, text) = error_text(&e);
            super::account::security(&state, jar, &ctx, status, None, Some(&text)).await
        }
        Err(e) => error_page(&state, e),
    }
}

pub async fn regenerate_backup_codes(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSession(ctx): PageSession,
    Client(meta): Client,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Response {
    match state
        .core()
        .account_regenerate_backup_codes(&ctx, &meta)
        .await
    {
        Ok(codes) => backup_codes_page(&state, jar, Some(&ctx), &ctx.account.email, codes, false),
        Err(CoreError::StepUpRequired) => step_up_redirect(),
        Err(e) => error_page(&state, e),
    }
}
