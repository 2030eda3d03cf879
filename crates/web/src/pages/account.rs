use super::auth::NoFields;
use super::{error_page, error_text, render, when};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::session::{PageSession, removal_cookie};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::{Value, context};
use secrecy::SecretString;
use serde::Deserialize;
use twofold_core::service::SessionContext;
use uuid::Uuid;

#[derive(Deserialize, Default)]
pub struct AccountQuery {
    backup_codes_left: Option<u32>,
}

pub async fn account_page(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSession(ctx): PageSession,
    Query(q): Query<AccountQuery>,
) -> Response {
    // Signed in after forward-auth sent the browser here: back to where it was going.
    let (jar, back) = crate::forward_auth::take_return(&state, jar);
    if let Some(to) = back {
        // Twofold's own (an OIDC request to continue) is a redirect; another host gets a
        // page, because this is the end of a sign-in form's navigation (see `hand_back`).
        let own = to.starts_with(&format!("{}/", state.settings().public_url));
        return crate::oidc::hand_back(&state, jar, &to, !own);
    }
    let notice = q
        .backup_codes_left
        .map(|n| format!("You signed in with a backup code. {n} unused backup codes are left."));
    let account = context! {
        email => &ctx.account.email,
        created_at => when(ctx.account.created_at),
        operator => ctx.account.operator,
    };
    let grace = match state.core().grace_notice(&ctx).await {
        Ok(g) => g.map(|g| {
            context! { deadline => super::day(g.deadline), days_left => g.days_left }
        }),
        Err(e) => return error_page(&state, e),
    };
    render(
        &state,
        jar,
        Some(&ctx),
        StatusCode::OK,
        "account.html",
        context! { title => "Your account", account, notice, grace },
    )
}

#[derive(Deserialize, Default)]
pub struct SecurityQuery {
    setup: Option<String>,
    added: Option<String>,
    removed: Option<String>,
    renamed: Option<String>,
    backup_codes_low: Option<String>,
}

pub async fn security_page(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSession(ctx): PageSession,
    Query(q): Query<SecurityQuery>,
) -> Response {
    let notice = if q.setup.is_some() {
        Some(
            "Add a second factor below. When it is set up you will be signed out: sign in again with it.",
        )
    } else if q.added.is_some() {
        Some("The authenticator was added.")
    } else if q.removed.is_some() {
        Some("The authenticator was removed.")
    } else if q.renamed.is_some() {
        Some("The name was saved.")
    } else if q.backup_codes_low.is_some() {
        Some("You signed in with a backup code. Few are left: create a new set below.")
    } else {
        None
    };
    security(&state, jar, &ctx, StatusCode::OK, notice, None).await
}

/// Renders Security settings with an optional notice or error from the action just taken.
pub(super) async fn security(
    state: &AppState,
    jar: CookieJar,
    ctx: &SessionContext,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let sessions = match state.core().list_sessions(ctx).await {
        Ok(s) => s,
        Err(e) => return error_page(state, e),
    };
    let sessions: Vec<Value> = sessions
        .iter()
        .map(|s| {
            context! {
                id => s.id.to_string(),
                browser => describe_browser(s.user_agent.as_deref()),
                ip => s.ip.clone(),
                last_seen => when(s.last_seen_at),
                current => s.id == ctx.session.id,
            }
        })
        .collect();
    let activity: Vec<Value> = match state.core().recent_audit(ctx.account.id, 10).await {
        Ok(events) => events
            .iter()
            .map(|e| context! { at => when(e.at), label => event_label(&e.event), ip => e.ip.clone() })
            .collect(),
        Err(e) => return error_page(state, e),
    };
    let factors: Vec<Value> = match state.core().account_factors(ctx).await {
        Ok(f) => f
            .iter()
            .map(|f| {
                context! {
                    id => f.id.to_string(),
                    label => f.label.clone(),
                    kind => f.kind.clone(),
                    hint => f.hint.clone(),
                    added => when(f.created_at),
                    last_used => f.last_used_at.map(when),
                }
            })
            .collect(),
        Err(e) => return error_page(state, e),
    };
    let trusted: Vec<Value> = match state.core().account_trusted_browsers(ctx).await {
        Ok(list) => list
            .iter()
            .map(|b| {
                context! {
                    id => b.id.to_string(),
                    browser => describe_browser(b.user_agent.as_deref()),
                    ip => b.ip.clone(),
                    until => when(b.expires_at),
                }
            })
            .collect(),
        Err(e) => return error_page(state, e),
    };
    let devices: Vec<Value> = match state.core().account_known_devices(ctx).await {
        Ok(list) => list
            .iter()
            .map(|d| {
                context! {
                    id => d.id.to_string(),
                    browser => describe_browser(d.user_agent.as_deref()),
                    ip => d.ip.clone(),
                    first_seen => when(d.first_seen_at),
                    last_seen => when(d.last_seen_at),
                }
            })
            .collect(),
        Err(e) => return error_page(state, e),
    };
    let backup_codes_left = match state.core().account_backup_codes_left(ctx).await {
        Ok(n) => n,
        Err(e) => return error_page(state, e),
    };
    let (allowed, passkeys_only) = match state.core().policy().await {
        Ok(p) => (
            p.allowed_for(ctx.account.operator),
            p.phishing_resistant_for(ctx.account.operator),
        ),
        Err(e) => return error_page(state, e),
    };
    render(
        state,
        jar,
        Some(ctx),
        status,
        "security.html",
        context! { title => "Security settings", sessions, activity, notice, error, factors, backup_codes_left, trusted, devices, allowed, passkeys_only },
    )
}

pub async fn revoke_session(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSession(ctx): PageSession,
    Client(meta): Client,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return security(
            &state,
            jar,
            &ctx,
            StatusCode::NOT_FOUND,
            None,
            Some("That session no longer exists."),
        )
        .await;
    };
    match state.core().revoke_session(&ctx, id, &meta).await {
        Ok(()) if id == ctx.session.id => (
            jar.add(removal_cookie(&state)),
            Redirect::to("/login?signed_out=1"),
        )
            .into_response(),
        Ok(()) => {
            security(
                &state,
                jar,
                &ctx,
                StatusCode::OK,
                Some("The session was revoked."),
                None,
            )
            .await
        }
        Err(e) => {
            let (status, text) = error_text(&e);
            let text = if status == StatusCode::NOT_FOUND {
                "That session no longer exists.".to_owned()
            } else {
                text
            };
            security(&state, jar, &ctx, status, None, Some(&text)).await
        }
    }
}

#[derive(Deserialize)]
pub struct PasswordChange {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSession(ctx): PageSession,
    Client(meta): Client,
    CsrfForm(form): CsrfForm<PasswordChange>,
) -> Response {
    let current = SecretString::from(form.current_password);
    let new = SecretString::from(form.new_password);
    match state
        .core()
        .change_password(&ctx, &current, &new, &meta)
        .await
    {
        Ok(()) => {
            // The stamp changed; reload the account so this page sees the fresh state.
            let ctx = match state.core().account(ctx.account.id).await {
                Ok(account) => SessionContext {
                    account,
                    session: ctx.session,
                },
                Err(e) => return error_page(&state, e),
            };
            security(
                &state,
                jar,
                &ctx,
                StatusCode::OK,
                Some("Your password has been changed. Other browsers were signed out."),
                None,
            )
            .await
        }
        Err(twofold_core::CoreError::StepUpRequired) => super::factors::step_up_redirect(),
        Err(e) => {
            let (status, text) = error_text(&e);
            security(&state, jar, &ctx, status, None, Some(&text)).await
        }
    }
}

/// "Chrome 156 on Linux" from a user agent, or a neutral label.
pub(crate) fn describe_browser(ua: Option<&str>) -> String {
    let Some(ua) = ua else {
        return "Unknown browser".into();
    };
    match woothee::parser::Parser::new().parse(ua) {
        Some(r) if r.name != "UNKNOWN" => {
            let version = r.version.split('.').next().unwrap_or_default();
            let os = if r.os == "UNKNOWN" {
                String::new()
            } else {
                format!(" on {}", r.os)
            };
            format!("{} {}{}", r.name, version, os).replace("  ", " ")
        }
        _ => ua.chars().take(60).collect(),
    }
}

fn event_label(event: &str) -> String {
    match event {
        "signup" => "Account created".into(),
        "email_verified" => "Email address verified".into(),
        "login_succeeded" => "Signed in".into(),
        "login_failed" => "Failed sign-in attempt".into(),
        "login_throttled" => "Sign-in attempts paused after repeated failures".into(),
        "logout" => "Signed out".into(),
        "session_revoked" => "A session was revoked".into(),
        "password_changed" => "Password changed".into(),
        "password_change_failed" => "Failed password change".into(),
        "password_reset_requested" => "Password reset requested".into(),
        "password_reset_completed" => "Password reset".into(),
        "verification_resent" => "Verification email sent again".into(),
        "login_password_accepted" => "Password accepted, second step started".into(),
        "second_factor_failed" => "Wrong two-factor code".into(),
        "second_step_voided" => "Sign-in stopped after too many wrong codes".into(),
        "second_step_abandoned" => "Sign-in abandoned at the second step".into(),
        "factor_enrollment_started" => "Started adding an authenticator".into(),
        "factor_added" => "Authenticator added".into(),
        "factor_removed" => "Authenticator removed".into(),
        "backup_codes_regenerated" => "New backup codes created".into(),
        "backup_code_used" => "Backup code used".into(),
        "step_up" => "Confirmed with a second factor".into(),
        "two_factor_reset_by_operator" => "Two-factor authentication reset by an operator".into(),
        "email_change_requested" => "Change of email address requested".into(),
        "email_changed" => "Email address changed".into(),
        "device_code_sent" => "Sign-in from a new device or network: code emailed".into(),
        "device_verified" => "New device or network confirmed with the emailed code".into(),
        "device_code_failed" => "Wrong code for a new device or network".into(),
        "device_remembered" => "Device remembered".into(),
        "known_devices_forgotten" => "Known device forgotten".into(),
        "sign_in_reported" => "Sign-in reported as not you: signed out everywhere".into(),
        other => other.replace('_', " "),
    }
}

pub async fn forget_trusted_browser(
    State(state): State<AppState>,
    PageSession(ctx): PageSession,
    Client(meta): Client,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return error_page(&state, twofold_core::CoreError::NotFound);
    };
    match state
        .core()
        .forget_trusted_browsers(&ctx, Some(id), &meta)
        .await
    {
        Ok(()) => Redirect::to("/account/security").into_response(),
        Err(e) => error_page(&state, e),
    }
}

pub async fn forget_all_trusted_browsers(
    State(state): State<AppState>,
    PageSession(ctx): PageSession,
    Client(meta): Client,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Response {
    match state
        .core()
        .forget_trusted_browsers(&ctx, None, &meta)
        .await
    {
        Ok(()) => Redirect::to("/account/security").into_response(),
        Err(e) => error_page(&state, e),
    }
}
