//! The "remote session" permission as a page: granted after a fresh second factor; without
//! 2FA, a prompt to set it up, after which the user signs in again with the new factor.

use super::{error_page, render, when};
use crate::session::{PageSession, build_cookie};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use time::Duration;
use twofold_core::CoreError;
use twofold_core::service::Permission;

pub async fn remote_session_page(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSession(ctx): PageSession,
) -> Response {
    match state
        .core()
        .check_permission(&ctx, Permission::RemoteSession)
        .await
    {
        Ok(grant) => render(
            &state,
            jar,
            Some(&ctx),
            StatusCode::OK,
            "remote_session.html",
            context! { title => "Remote session", granted => true, until => when(grant.valid_until) },
        ),
        Err(CoreError::StepUpRequired) => {
            Redirect::to("/account/step-up?next=/account/remote-session").into_response()
        }
        Err(CoreError::TwoFactorSetupRequired) => render(
            &state,
            jar,
            Some(&ctx),
            StatusCode::FORBIDDEN,
            "remote_session.html",
            context! { title => "Remote session", granted => false },
        ),
        Err(e) => error_page(&state, e),
    }
}

/// "Set it up now" from the prompt: Security settings, remembering (for 30 minutes) that the
/// first factor added should end this session.
pub async fn set_up_from_prompt(
    State(state): State<AppState>,
    jar: CookieJar,
    PageSession(_): PageSession,
) -> Response {
    let jar = jar.add(build_cookie(
        &state,
        "reauth",
        "1".into(),
        Some(Duration::minutes(30)),
    ));
    (jar, Redirect::to("/account/security?setup=1")).into_response()
}
