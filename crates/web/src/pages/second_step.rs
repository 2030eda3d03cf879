//! The second step of login, and step-up before sensitive changes.

use super::{Link, error_text, message_page, render};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::session::{PageSession, removal_cookie, session_cookie, session_token};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use secrecy::ExposeSecret;
use serde::Deserialize;
use twofold_core::CoreError;

#[derive(Deserialize, Default)]
pub struct MethodQuery {
    method: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    next: String,
}

fn render_second_step(
    state: &AppState,
    jar: CookieJar,
    status: StatusCode,
    backup: bool,
    error: Option<String>,
) -> Response {
    render(
        state,
        jar,
        None,
        status,
        "second_factor.html",
        context! { title => "Two-factor authentication", backup, error },
    )
}

/// Only a partial session (password accepted) reaches this page.
pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<MethodQuery>,
) -> Response {
    let Some(token) = session_token(&jar, &state) else {
        return Redirect::to("/login").into_response();
    };
    if state.core().authenticate_partial(&token).await.is_err() {
        return Redirect::to("/login").into_response();
    }
    let backup = q.method.as_deref() == Some("backup_code");
    render_second_step(&state, jar, StatusCode::OK, backup, None)
}

pub async fn submit(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Response {
    let backup = form.method == "backup_code";
    let Some(token) = session_token(&jar, &state) else {
        return Redirect::to("/login").into_response();
    };
    match state
        .core()
        .complete_second_factor(&token, &form.code, &meta)
        .await
    {
        Ok((token, _, remaining)) => {
            let jar = jar.add(session_cookie(&state, token.expose_secret().to_owned()));
            let to = match remaining {
                Some(n) if n <= 3 => "/account/security?backup_codes_low=1".to_owned(),
                Some(n) => format!("/account?backup_codes_left={n}"),
                None => "/account".to_owned(),
            };
            (jar, Redirect::to(&to)).into_response()
        }
        Err(CoreError::Unauthenticated) => Redirect::to("/login").into_response(),
        Err(CoreError::SecondStepVoid) => {
            let page = message_page(
                &state,
                StatusCode::UNAUTHORIZED,
                "Too many wrong codes",
                "For your security this sign-in was stopped. Sign in again with your password.",
                Some(Link {
                    href: "/login",
                    label: "Sign in again",
                }),
            );
            (jar.add(removal_cookie(&state)), page).into_response()
        }
        Err(e) => {
            let (status, text) = error_text(&e);
            render_second_step(&state, jar, status, backup, Some(text))
        }
    }
}

/// Only internal paths may be returned to after step-up.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/account") && !n.contains("//") && !n.contains('\\') => n,
        _ => "/account/security",
    }
}

pub async fn step_up_page(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSession(ctx): PageSession,
    Query(q): Query<MethodQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref()).to_owned();
    render(
        &state,
        jar,
        Some(&ctx),
        StatusCode::OK,
        "step_up.html",
        context! { title => "Confirm it's you", next },
    )
}

pub async fn step_up(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSession(ctx): PageSession,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Response {
    let next = safe_next(Some(&form.next)).to_owned();
    match state.core().step_up(&ctx, &form.code, &meta).await {
        Ok(()) => Redirect::to(&next).into_response(),
        Err(e) => {
            let (status, error) = error_text(&e);
            render(
                &state,
                jar,
                Some(&ctx),
                status,
                "step_up.html",
                context! { title => "Confirm it's you", next, error },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_stays_inside_the_account_pages() {
        assert_eq!(
            super::safe_next(Some("/account/security")),
            "/account/security"
        );
        assert_eq!(
            super::safe_next(Some("https://evil.example")),
            "/account/security"
        );
        assert_eq!(
            super::safe_next(Some("/account//evil.example")),
            "/account/security"
        );
        assert_eq!(super::safe_next(None), "/account/security");
    }
}
