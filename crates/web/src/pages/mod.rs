//! Server-rendered pages. Each handler calls one core method and renders a template.

mod account;
pub(crate) use account::describe_browser;
mod auth;
mod code_factors;
mod devices;
mod email_change;
mod factors;
mod keys;
mod password_reset;
mod permissions;
mod required;
mod second_step;

use crate::csrf;
use crate::error::{classify, log_if_server_error};
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::CookieJar;
use minijinja::{Value, context};
use twofold_core::CoreError;
use twofold_core::service::SessionContext;

/// The sign-in form even for a signed-in browser (an application asked for a fresh sign-in).
pub(crate) const SIGN_IN_AGAIN: &str = "/login?again=1";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(auth::home))
        .route("/signup", get(auth::signup_page).post(auth::signup))
        .route(
            "/verify-email",
            get(auth::verify_email_page).post(auth::verify_email),
        )
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", get(auth::logout_page).post(auth::logout))
        .route("/login/set-up", get(required::setup_page))
        .route("/login/device", get(devices::page).post(devices::confirm))
        .route("/login/device/resend", post(devices::resend))
        .route(
            "/login/report",
            get(devices::report_page).post(devices::report),
        )
        .route("/account/known-devices/{id}/forget", post(devices::forget))
        .route(
            "/login/second-factor",
            get(second_step::page).post(second_step::submit),
        )
        .route("/login/second-factor/send", post(second_step::send_code))
        .route("/login/second-factor/status", get(second_step::status))
        .route(
            "/login/second-factor/link",
            post(second_step::continue_with_link),
        )
        .route(
            "/login/email-link",
            get(second_step::email_link_page).post(second_step::approve_email_link),
        )
        .route(
            "/account/step-up",
            get(second_step::step_up_page).post(second_step::step_up),
        )
        .route("/account/step-up/send", post(second_step::step_up_send))
        .route("/account/security/totp", post(factors::begin_totp))
        .route("/account/security/keys/begin", post(keys::register_begin))
        .route("/account/security/keys/finish", post(keys::register_finish))
        .route(
            "/login/second-factor/key/begin",
            post(keys::second_step_begin),
        )
        .route(
            "/login/second-factor/key/finish",
            post(keys::second_step_finish),
        )
        .route("/account/step-up/key/begin", post(keys::step_up_begin))
        .route("/account/step-up/key/finish", post(keys::step_up_finish))
        .route("/login/passkey/begin", post(keys::passkey_begin))
        .route("/login/passkey/finish", post(keys::passkey_finish))
        .route("/static/webauthn.js", get(webauthn_js))
        .route(
            "/account/security/new/{kind}",
            get(code_factors::new_page).post(code_factors::begin),
        )
        .route(
            "/account/security/codes/{id}",
            get(code_factors::confirm_page).post(code_factors::confirm),
        )
        .route(
            "/account/security/codes/{id}/resend",
            post(code_factors::resend),
        )
        .route("/account/security/totp/{id}", get(factors::enroll_page))
        .route(
            "/account/security/totp/{id}/confirm",
            post(factors::confirm_totp),
        )
        .route(
            "/account/security/factors/{id}/rename",
            post(factors::rename),
        )
        .route(
            "/account/security/factors/{id}/remove",
            post(factors::remove),
        )
        .route(
            "/account/security/backup-codes",
            post(factors::regenerate_backup_codes),
        )
        .route("/static/twofold.js", get(script_js))
        .route("/account", get(account::account_page))
        .route(
            "/account/trusted-browsers/{id}/forget",
            post(account::forget_trusted_browser),
        )
        .route(
            "/account/trusted-browsers/forget",
            post(account::forget_all_trusted_browsers),
        )
        .route("/account/security", get(account::security_page))
        .route(
            "/account/remote-session",
            get(permissions::remote_session_page),
        )
        .route(
            "/account/remote-session/set-up",
            get(permissions::set_up_from_prompt),
        )
        .route(
            "/account/sessions/{id}/revoke",
            post(account::revoke_session),
        )
        .route("/account/password", post(account::change_password))
        .route("/account/email", post(email_change::request))
        .route(
            "/account/email/confirm",
            get(email_change::confirm_page).post(email_change::confirm),
        )
        .route(
            "/password-reset",
            get(password_reset::page).post(password_reset::request),
        )
        .route("/password-reset/complete", post(password_reset::complete))
        .route("/static/style.css", get(style_css))
        .route("/static/brand.css", get(brand_css))
        .route("/static/logo.svg", get(logo_svg))
}

/// Renders `template` with the shared context (branding, CSRF tag, signed-in user) plus `extra`.
pub(crate) fn render(
    state: &AppState,
    jar: CookieJar,
    user: Option<&SessionContext>,
    status: StatusCode,
    template: &str,
    extra: Value,
) -> Response {
    let (jar, csrf) = csrf::ensure(jar, state);
    render_with(state, Some(jar), csrf, user, status, template, extra)
}

fn render_with(
    state: &AppState,
    jar: Option<CookieJar>,
    csrf: String,
    user: Option<&SessionContext>,
    status: StatusCode,
    template: &str,
    extra: Value,
) -> Response {
    let ctx = context! {
        brand => Value::from(minijinja::value::Serde(&state.settings().branding)),
        csrf => csrf,
        user => user.map(|u| u.account.email.clone()),
        webauthn => state.core().webauthn_available(),
        ..extra
    };
    match state.templates().render(template, ctx) {
        Ok(body) => (status, jar, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(template, error = %format!("{e:#}"), "template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<h1>Something went wrong</h1>"),
            )
                .into_response()
        }
    }
}

pub(crate) struct Link {
    pub href: &'static str,
    pub label: &'static str,
}

/// A page with a heading, a sentence and an optional button-link. It has no form, so it
/// leaves the browser's CSRF cookie alone (replacing it would void forms in other tabs).
pub(crate) fn message_page(
    state: &AppState,
    status: StatusCode,
    title: &str,
    text: &str,
    link: Option<Link>,
) -> Response {
    let link = link.map(|l| context! { href => l.href, label => l.label });
    render_with(
        state,
        None,
        String::new(),
        None,
        status,
        "message.html",
        context! { title, text, link },
    )
}

/// A core error as a page, with the same status the API would give.
pub(crate) fn error_page(state: &AppState, e: CoreError) -> Response {
    log_if_server_error(&e);
    let (status, _, detail) = classify(&e);
    let title = if status.is_server_error() {
        "Something went wrong"
    } else {
        "That did not work"
    };
    message_page(state, status, title, &detail, None)
}

/// The user-facing message of an error, after logging anything internal.
pub(crate) fn error_text(e: &CoreError) -> (StatusCode, String) {
    log_if_server_error(e);
    let (status, _, detail) = classify(e);
    (status, detail)
}

/// A day as people read it: `21 January 2027`.
pub(crate) fn day(t: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[day padding:none] [month repr:long] [year]");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

pub(crate) fn when(t: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

async fn style_css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/style.css"),
    )
        .into_response()
}

async fn webauthn_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../static/webauthn.js"),
    )
        .into_response()
}

async fn script_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            // Pages depend on what it does (handing the browser back to an app after a form):
            // an hour-old copy from before an upgrade must not be used.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../static/twofold.js"),
    )
        .into_response()
}

async fn logo_svg() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/logo.svg"),
    )
        .into_response()
}

/// The accent colour as a stylesheet, because the CSP forbids inline styles.
async fn brand_css(State(state): State<AppState>) -> Response {
    let accent: String = state
        .settings()
        .branding
        .accent_color
        .chars()
        .filter(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '#' | '(' | ')' | ',' | '.' | ' ' | '%')
        })
        .collect();
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        format!(":root {{ --accent: {accent}; }}\n"),
    )
        .into_response()
}
