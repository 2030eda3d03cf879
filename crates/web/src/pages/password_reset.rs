use super::auth::invalid_link;
use super::{Link, error_page, error_text, message_page, render};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::session::removal_cookie;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use secrecy::SecretString;
use serde::Deserialize;
use twofold_core::CoreError;

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
}

#[derive(Deserialize)]
pub struct ResetQuery {
    token: Option<String>,
}

/// Without a token: the "forgot password" form. With one (from the mail): the new-password form.
pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<ResetQuery>,
) -> Response {
    match q.token {
        None => render(
            &state,
            jar,
            None,
            StatusCode::OK,
            "password_reset_request.html",
            context! { title => "Reset your password" },
        ),
        Some(token) => match state.core().check_password_reset_token(&token).await {
            Ok(()) => render(
                &state,
                jar,
                None,
                StatusCode::OK,
                "password_reset_form.html",
                context! { title => "Choose a new password", token },
            ),
            Err(CoreError::InvalidToken) => invalid_link(&state),
            Err(e) => error_page(&state, e),
        },
    }
}

pub async fn request(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<EmailForm>,
) -> Response {
    match state
        .core()
        .request_password_reset(&form.email, &meta)
        .await
    {
        Ok(()) => message_page(
            &state,
            StatusCode::OK,
            "Check your email",
            "If an account exists for that address, we have sent a link to reset the password. The link is valid for 1 hour.",
            None,
        ),
        Err(e) => {
            let (status, error) = error_text(&e);
            render(
                &state,
                jar,
                None,
                status,
                "password_reset_request.html",
                context! { title => "Reset your password", error, email => form.email },
            )
        }
    }
}

#[derive(Deserialize)]
pub struct NewPassword {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

pub async fn complete(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<NewPassword>,
) -> Response {
    let password = SecretString::from(form.password);
    // The browser that used the link has proved the mailbox: it becomes a known device.
    let (jar, device) = crate::session::device_token(jar, &state);
    match state
        .core()
        .complete_password_reset(&form.token, &password, Some(&device), &meta)
        .await
    {
        Ok(()) => {
            let page = message_page(
                &state,
                StatusCode::OK,
                "Your password has been changed",
                "Every session was signed out. Sign in with your new password.",
                Some(Link {
                    href: "/login",
                    label: "Sign in",
                }),
            );
            (jar.add(removal_cookie(&state)), page).into_response()
        }
        Err(CoreError::InvalidToken) => invalid_link(&state),
        Err(e) => {
            let (status, error) = error_text(&e);
            render(
                &state,
                jar,
                None,
                status,
                "password_reset_form.html",
                context! { title => "Choose a new password", error, token => form.token },
            )
        }
    }
}
