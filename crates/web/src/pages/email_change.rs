//! Changing the account's address from Security settings, and the link that confirms it.

use super::account::security;
use super::auth::{TokenForm, invalid_link};
use super::{Link, error_page, error_text, message_page, render};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::session::{MaybeSession, PageSession};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use secrecy::SecretString;
use serde::Deserialize;
use twofold_core::CoreError;

#[derive(Deserialize)]
pub struct EmailChangeForm {
    #[serde(default)]
    new_email: String,
    #[serde(default)]
    current_password: String,
}

pub async fn request(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSession(ctx): PageSession,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<EmailChangeForm>,
) -> Response {
    let password = SecretString::from(form.current_password);
    match state
        .core()
        .request_email_change(&ctx, &form.new_email, &password, &meta)
        .await
    {
        Ok(()) => {
            let notice = format!(
                "We sent a link to {}. Your address changes when you open it (within 2 hours).",
                form.new_email.trim()
            );
            security(&state, jar, &ctx, StatusCode::OK, Some(&notice), None).await
        }
        Err(CoreError::StepUpRequired) => super::factors::step_up_redirect(),
        Err(e) => {
            let (status, text) = error_text(&e);
            security(&state, jar, &ctx, status, None, Some(&text)).await
        }
    }
}

/// A button, not an action on GET, so mail scanners that open links change nothing.
pub async fn confirm_page(
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
        "email_change_confirm.html",
        context! { title => "Confirm your new email address", token => q.token },
    )
}

pub async fn confirm(
    State(state): State<AppState>,
    MaybeSession(current): MaybeSession,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<TokenForm>,
) -> Response {
    match state
        .core()
        .confirm_email_change(&form.token, current.as_ref(), &meta)
        .await
    {
        Ok(email) => message_page(
            &state,
            StatusCode::OK,
            "Your email address was changed",
            &format!("From now on you sign in with {email}. Other browsers were signed out."),
            Some(Link {
                href: "/account",
                label: "Go to your account",
            }),
        ),
        Err(CoreError::InvalidToken) => invalid_link(&state),
        Err(e) => error_page(&state, e),
    }
}
