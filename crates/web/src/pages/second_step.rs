//! The second step of login, and step-up before sensitive changes.

use super::{Link, error_text, message_page, render};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::return_path::ReturnPath;
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
use twofold_core::model::DeliveryState;
use uuid::Uuid;

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
    remember: Option<String>,
    #[serde(default)]
    method: String,
    #[serde(default)]
    next: String,
}

/// The second-step page: the code form, a "send me a code" button per phone or address, and,
/// once a code went out, where it went and whether it was delivered.
async fn render_second_step(
    state: &AppState,
    jar: CookieJar,
    token: &str,
    status: StatusCode,
    backup: bool,
    error: Option<String>,
) -> Response {
    let core = state.core();
    let ctx = match core.authenticate_partial(token).await {
        Ok(ctx) => ctx,
        Err(_) => return Redirect::to("/login").into_response(),
    };
    let view = async {
        let methods = core.second_factor_methods(&ctx.account).await?;
        let factors = core.account_code_factors(&ctx.account).await?;
        let st = core.second_step_status(token).await?;
        Ok::<_, CoreError>((methods, factors, st))
    };
    let (methods, factors, st) = match view.await {
        Ok(v) => v,
        Err(e) => return super::error_page(state, e),
    };
    let sent = st
        .factor_id
        .and_then(|id| factors.iter().find(|f| f.id == id))
        .map(|f| context! { hint => f.hint.clone(), channel => f.channel.as_str() });
    let waiting_link = st.channel.as_deref() == Some("email") && sent.is_some();
    let senders: Vec<_> = factors
        .iter()
        .map(|f| context! { id => f.id.to_string(), hint => f.hint.clone(), channel => f.channel.as_str() })
        .collect();
    render(
        state,
        jar,
        None,
        status,
        "second_factor.html",
        context! {
            title => "Two-factor authentication",
            backup,
            error,
            has_totp => methods.iter().any(|m| m == "totp"),
            has_webauthn => methods.iter().any(|m| m == "webauthn"),
            remember_days => core.settings().trusted_browser_ttl.map(|d| d.whole_days()),
            has_backup => methods.iter().any(|m| m == "backup_code"),
            senders,
            sent,
            waiting_link,
            approved => st.approved,
            delivery_failed => st.delivery == Some(DeliveryState::Failed),
        },
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
    let backup = q.method.as_deref() == Some("backup_code");
    render_second_step(&state, jar, &token, StatusCode::OK, backup, None).await
}

#[derive(Deserialize)]
pub struct SendForm {
    #[serde(default)]
    factor_id: String,
}

/// "Text me a code" / "Email me a code" at the second step.
pub async fn send_code(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<SendForm>,
) -> Response {
    let Some(token) = session_token(&jar, &state) else {
        return Redirect::to("/login").into_response();
    };
    let Ok(factor) = Uuid::parse_str(&form.factor_id) else {
        return render_second_step(
            &state,
            jar,
            &token,
            StatusCode::BAD_REQUEST,
            false,
            Some("Choose where to send the code.".into()),
        )
        .await;
    };
    match state
        .core()
        .second_step_send_code(&token, factor, &meta)
        .await
    {
        Ok(_) => Redirect::to("/login/second-factor").into_response(),
        Err(CoreError::Unauthenticated) => Redirect::to("/login").into_response(),
        Err(e) => {
            let (status, text) = error_text(&e);
            render_second_step(&state, jar, &token, status, false, Some(text)).await
        }
    }
}

/// Polled by the waiting page: has the emailed link been approved, did the code go out?
pub async fn status(State(state): State<AppState>, jar: CookieJar) -> Response {
    let Some(token) = session_token(&jar, &state) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match state.core().second_step_status(&token).await {
        Ok(st) => axum::Json(serde_json::json!({
            "approved": st.approved,
            "delivery": st.delivery.map(|d| d.as_str()),
        }))
        .into_response(),
        Err(e) => crate::error::ApiError(e).into_response(),
    }
}

/// The waiting browser finishes its sign-in once its emailed link was approved.
pub async fn continue_with_link(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    CsrfForm(_): CsrfForm<super::auth::NoFields>,
) -> Response {
    let Some(token) = session_token(&jar, &state) else {
        return Redirect::to("/login").into_response();
    };
    match state.core().complete_with_sign_in_link(&token, &meta).await {
        Ok((new_token, _, _)) => signed_in(&state, jar, new_token.expose_secret()),
        Err(CoreError::WrongCode) => {
            render_second_step(
                &state,
                jar,
                &token,
                StatusCode::CONFLICT,
                false,
                Some(
                    "The link in the email has not been opened yet. Open it, or type the code."
                        .into(),
                ),
            )
            .await
        }
        Err(_) => Redirect::to("/login").into_response(),
    }
}

fn signed_in(state: &AppState, jar: CookieJar, token: &str) -> Response {
    let jar = jar.add(session_cookie(state, token.to_owned()));
    (jar, Redirect::to("/account")).into_response()
}

#[derive(Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    token: String,
}

/// The emailed sign-in link shows a button rather than acting on GET: mail scanners and link
/// previews open links, and must not approve a sign-in.
pub async fn email_link_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<LinkQuery>,
) -> Response {
    let (ip, user_agent, at) = match state.core().sign_in_link_request(&q.token).await {
        Ok(v) => v,
        Err(e) => return super::error_page(&state, e),
    };
    render(
        &state,
        jar,
        None,
        StatusCode::OK,
        "email_link.html",
        context! {
            title => "Approve sign-in",
            token => q.token,
            browser => super::describe_browser(user_agent.as_deref()),
            ip => ip.unwrap_or_else(|| "an unknown address".into()),
            at => super::when(at),
        },
    )
}

/// Approves the sign-in. Only the browser that is waiting (the partial session that asked for
/// the code) is signed in; any other browser is told to go back to that window.
pub async fn approve_email_link(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<LinkQuery>,
) -> Response {
    let core = state.core();
    let session = match core.approve_sign_in_link(&form.token, &meta).await {
        Ok(s) => s,
        Err(e) => return super::error_page(&state, e),
    };
    if let Some(token) = session_token(&jar, &state)
        && let Ok(ctx) = core.authenticate_partial(&token).await
        && ctx.session.id == session
        && let Ok((new_token, _, _)) = core.complete_with_sign_in_link(&token, &meta).await
    {
        return signed_in(&state, jar, new_token.expose_secret());
    }
    message_page(
        &state,
        StatusCode::OK,
        "Sign-in approved",
        "Approved — return to the window where you signed in. It continues by itself; this browser stays signed out.",
        None,
    )
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
        Ok((token, session, remaining)) => {
            let jar = jar.add(session_cookie(&state, token.expose_secret().to_owned()));
            let jar = match crate::session::remember_browser(
                &state,
                jar,
                form.remember.is_some(),
                &session,
                &meta,
            )
            .await
            {
                Ok(jar) => jar,
                Err(e) => return super::error_page(&state, e),
            };
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
            render_second_step(&state, jar, &token, status, backup, Some(text)).await
        }
    }
}

/// Where step-up returns to without a `next`.
const STEP_UP_DEFAULT: &str = "/account/security";

/// Where step-up returns to: an account page (see [`ReturnPath::parse`]), Security settings
/// when none is named; `None` for a `next` that is not acceptable.
pub(super) fn step_up_next(next: Option<&str>) -> Option<ReturnPath> {
    let next = next.filter(|n| !n.is_empty()).unwrap_or(STEP_UP_DEFAULT);
    ReturnPath::parse(next, "/account")
}

fn step_up_default() -> ReturnPath {
    ReturnPath::parse(STEP_UP_DEFAULT, "/account").expect("an account page")
}

/// Refuses a tampered `next` (the page only ever sends one it was given after this check)
/// before any code is spent, and offers the form again towards Security settings.
pub(super) const BAD_NEXT: &str = "The page to return to afterwards is not one of your account pages. Confirm again to go to Security settings.";

/// The step-up form again, towards Security settings, for a `next` that was refused.
async fn refuse_next(
    state: &AppState,
    jar: CookieJar,
    ctx: &twofold_core::service::SessionContext,
) -> Response {
    let error = Some(BAD_NEXT.to_owned());
    let next = step_up_default();
    render_step_up(state, jar, ctx, StatusCode::BAD_REQUEST, &next, None, error).await
}

async fn render_step_up(
    state: &AppState,
    jar: CookieJar,
    ctx: &twofold_core::service::SessionContext,
    status: StatusCode,
    next: &ReturnPath,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let core = state.core();
    let (methods, factors) = match async {
        Ok::<_, CoreError>((
            core.second_factor_methods(&ctx.account).await?,
            core.account_code_factors(&ctx.account).await?,
        ))
    }
    .await
    {
        Ok(v) => v,
        Err(e) => return super::error_page(state, e),
    };
    let senders: Vec<_> = factors
        .iter()
        .map(|f| context! { id => f.id.to_string(), hint => f.hint.clone(), channel => f.channel.as_str() })
        .collect();
    render(
        state,
        jar,
        Some(ctx),
        status,
        "step_up.html",
        context! {
            title => "Confirm it's you",
            next => next.as_str(),
            notice,
            error,
            senders,
            has_totp => methods.iter().any(|m| m == "totp"),
            has_webauthn => methods.iter().any(|m| m == "webauthn"),
        },
    )
}

pub async fn step_up_page(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSession(ctx): PageSession,
    Query(q): Query<MethodQuery>,
) -> Response {
    let next = step_up_next(q.next.as_deref()).unwrap_or_else(step_up_default);
    render_step_up(&state, jar, &ctx, StatusCode::OK, &next, None, None).await
}

pub async fn step_up(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSession(ctx): PageSession,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Response {
    let Some(next) = step_up_next(Some(&form.next)) else {
        return refuse_next(&state, jar, &ctx).await;
    };
    match state.core().step_up(&ctx, &form.code, &meta).await {
        Ok(()) => Redirect::to(next.as_str()).into_response(),
        Err(e) => {
            let (status, error) = error_text(&e);
            render_step_up(&state, jar, &ctx, status, &next, None, Some(error)).await
        }
    }
}

#[derive(Deserialize)]
pub struct StepUpSendForm {
    #[serde(default)]
    factor_id: String,
    #[serde(default)]
    next: String,
}

pub async fn step_up_send(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSession(ctx): PageSession,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<StepUpSendForm>,
) -> Response {
    let Some(next) = step_up_next(Some(&form.next)) else {
        return refuse_next(&state, jar, &ctx).await;
    };
    let result = match Uuid::parse_str(&form.factor_id) {
        Ok(id) => state.core().step_up_send_code(&ctx, id, &meta).await,
        Err(_) => Err(CoreError::NotFound),
    };
    match result {
        Ok(sent) => {
            let notice = format!(
                "We sent a code to {}. It is valid for 10 minutes.",
                sent.hint
            );
            render_step_up(&state, jar, &ctx, StatusCode::OK, &next, Some(notice), None).await
        }
        Err(e) => {
            let (status, error) = error_text(&e);
            render_step_up(&state, jar, &ctx, status, &next, None, Some(error)).await
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_stays_inside_the_account_pages() {
        let next = |n| super::step_up_next(n).map(|p| p.as_str().to_owned());
        assert_eq!(next(Some("/account")).as_deref(), Some("/account"));
        assert_eq!(next(None).as_deref(), Some("/account/security"));
        assert_eq!(next(Some("")).as_deref(), Some("/account/security"));
        assert_eq!(next(Some("https://evil.example")), None);
        assert_eq!(next(Some("/account//evil.example")), None);
        assert_eq!(next(Some("/account\r\nX:1")), None);
    }
}
