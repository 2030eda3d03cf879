use super::{Link, error_page, error_text, message_page, render};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::session::{MaybeSession, removal_cookie, session_cookie, session_token};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use twofold_core::service::LoginOutcome;

#[derive(Deserialize)]
pub struct Credentials {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    pub(crate) token: String,
}

#[derive(Deserialize)]
pub struct NoFields {}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    #[serde(default)]
    signed_out: Option<String>,
    /// Set by [`super::SIGN_IN_AGAIN`]: an application asked for a fresh sign-in.
    #[serde(default)]
    again: Option<String>,
}

pub async fn home(MaybeSession(s): MaybeSession) -> Redirect {
    Redirect::to(if s.is_some() { "/account" } else { "/login" })
}

pub async fn signup_page(
    State(state): State<AppState>,
    jar: CookieJar,
    MaybeSession(s): MaybeSession,
) -> Response {
    if s.is_some() {
        return Redirect::to("/account").into_response();
    }
    render(
        &state,
        jar,
        None,
        StatusCode::OK,
        "signup.html",
        context! { title => "Create account" },
    )
}

pub async fn signup(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<Credentials>,
) -> Response {
    let password = SecretString::from(form.password);
    match state.core().sign_up(&form.email, &password, &meta).await {
        Ok(()) => message_page(
            &state,
            StatusCode::OK,
            "Check your email",
            &format!(
                "We have sent a message to {}. Open the link in it within 2 hours to verify your address, then sign in.",
                form.email.trim()
            ),
            None,
        ),
        Err(e) => {
            let (status, error) = error_text(&e);
            render(
                &state,
                jar,
                None,
                status,
                "signup.html",
                context! { title => "Create account", error, email => form.email },
            )
        }
    }
}

pub async fn verify_email_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<TokenForm>,
) -> Response {
    // Showing a button instead of verifying on GET keeps mail scanners that prefetch links
    // from using the token up.
    if q.token.is_empty() {
        return invalid_link(&state);
    }
    render(
        &state,
        jar,
        None,
        StatusCode::OK,
        "verify_email.html",
        context! { title => "Verify your email address", token => q.token },
    )
}

pub async fn verify_email(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<TokenForm>,
) -> Response {
    // The browser that opens the link has proved the mailbox: it becomes a known device.
    let (jar, device) = crate::session::device_token(jar, &state);
    match state
        .core()
        .verify_email(&form.token, Some(&device), &meta)
        .await
    {
        Ok(()) => (
            jar,
            message_page(
                &state,
                StatusCode::OK,
                "Your email address is verified",
                "Thank you. You can now sign in.",
                Some(Link {
                    href: "/login",
                    label: "Sign in",
                }),
            ),
        )
            .into_response(),
        Err(twofold_core::CoreError::InvalidToken) => invalid_link(&state),
        Err(e) => error_page(&state, e),
    }
}

pub(crate) fn invalid_link(state: &AppState) -> Response {
    message_page(
        state,
        StatusCode::BAD_REQUEST,
        "This link is invalid or has expired",
        "Links in our emails work once and for a limited time. Ask for a new one.",
        Some(Link {
            href: "/login",
            label: "Go to sign in",
        }),
    )
}

pub async fn login_page(
    State(state): State<AppState>,
    jar: CookieJar,
    MaybeSession(s): MaybeSession,
    Query(q): Query<LoginQuery>,
) -> Response {
    // A signed-in browser sees the form only when an application asked for a fresh
    // sign-in; its session stays until a new one replaces it.
    let email = match (&s, &q.again) {
        (Some(_), None) => return Redirect::to("/account").into_response(),
        (Some(ctx), Some(_)) => ctx.account.email.clone(),
        (None, _) => String::new(),
    };
    let notice = if q.again.is_some() {
        Some("The application asks you to sign in again.")
    } else {
        q.signed_out.map(|_| "You have been signed out.")
    };
    render(
        &state,
        jar,
        None,
        StatusCode::OK,
        "login.html",
        context! { title => "Sign in", notice, email },
    )
}

pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<Credentials>,
) -> Response {
    let password = SecretString::from(form.password);
    let trusted = crate::session::trusted_browser_token(&jar, &state);
    let (jar, device) = crate::session::device_token(jar, &state);
    match state
        .core()
        .log_in(
            &form.email,
            &password,
            trusted.as_deref(),
            Some(&device),
            &meta,
        )
        .await
    {
        Ok(outcome) => login_redirect(&state, jar, outcome),
        Err(e) => {
            let (status, error) = error_text(&e);
            let mut res = render(
                &state,
                jar,
                None,
                status,
                "login.html",
                context! { title => "Sign in", error, email => form.email },
            );
            if let Some(secs) = crate::error::retry_after(&e)
                && let Ok(v) = secs.to_string().parse()
            {
                res.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
            res
        }
    }
}

/// Sets the cookie of whatever session the login step produced and sends the browser on.
pub(crate) fn login_redirect(state: &AppState, jar: CookieJar, outcome: LoginOutcome) -> Response {
    let (token, to) = match outcome {
        LoginOutcome::SignedIn { token, .. } => (token, "/account"),
        LoginOutcome::SecondFactorRequired { token, .. } => (token, "/login/second-factor"),
        LoginOutcome::EnrollmentRequired { token, .. } => (token, "/login/set-up"),
        LoginOutcome::DeviceVerificationRequired { token, .. } => (token, "/login/device"),
    };
    let jar = jar.add(session_cookie(state, token.expose_secret().to_owned()));
    (jar, Redirect::to(to)).into_response()
}

pub async fn logout_page(
    State(state): State<AppState>,
    jar: CookieJar,
    MaybeSession(s): MaybeSession,
) -> Response {
    match s {
        Some(ctx) => render(
            &state,
            jar,
            Some(&ctx),
            StatusCode::OK,
            "logout.html",
            context! { title => "Sign out" },
        ),
        None => Redirect::to("/login").into_response(),
    }
}

pub async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Response {
    if let Some(token) = session_token(&jar, &state)
        && let Err(e) = state.core().log_out(&token, &meta).await
    {
        return error_page(&state, e);
    }
    let jar = jar.add(removal_cookie(&state));
    (jar, Redirect::to("/login?signed_out=1")).into_response()
}
