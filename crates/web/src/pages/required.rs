//! The forced set-up after sign-in, when the policy requires 2FA the account does not have.

use super::{error_page, render};
use crate::session::EnrollingSession;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use twofold_core::model::SessionKind;

pub async fn setup_page(
    State(state): State<AppState>,
    jar: CookieJar,
    EnrollingSession(ctx): EnrollingSession,
) -> Response {
    if ctx.session.kind == SessionKind::Full {
        return Redirect::to("/account/security").into_response();
    }
    let (allowed, passkeys_only) = match state.core().policy().await {
        Ok(p) => (
            p.allowed_for(ctx.account.operator),
            p.phishing_resistant_for(ctx.account.operator),
        ),
        Err(e) => return error_page(&state, e),
    };
    render(
        &state,
        jar,
        None,
        StatusCode::OK,
        "enroll_required.html",
        context! { title => "Set up two-step verification", allowed, passkeys_only },
    )
}
