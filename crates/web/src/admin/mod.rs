//! The operator console pages under `/admin`: account search, the account page with its
//! actions, and the audit log with its export. The core checks the caller on every call; the
//! extractor here only turns "step up first" into the way there.

mod api_keys;
mod audit;
mod charts;
mod stats;

use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::pages::{day, describe_browser, error_page, error_text, render, when};
use crate::session::PageSession;
use crate::state::AppState;
use axum::Router;
use axum::extract::{FromRequestParts, OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use serde::Deserialize;
use twofold_core::service::{NextStep, OperatorAction, SessionContext};
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(home))
        .route("/admin/accounts/{id}", get(account))
        .route("/admin/accounts/{id}/actions", post(act))
        .route(
            "/admin/api-keys",
            get(api_keys::page).post(api_keys::create),
        )
        .route("/admin/api-keys/{id}/revoke", post(api_keys::revoke))
        .route("/admin/audit", get(audit::page))
        .route("/admin/audit.jsonl", get(audit::export))
        .route("/admin/stats", get(stats::page))
        .route("/admin/stats.csv", get(stats::csv))
}

/// A signed-in operator who has proven what the console needs in this session. Others: a
/// customer gets 403; an operator who has not is sent to step up (or add a key) and back.
pub struct Operator(pub SessionContext);

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let PageSession(ctx) = PageSession::from_request_parts(parts, state).await?;
        let here = parts
            .extensions
            .get::<OriginalUri>()
            .map(|u| u.0.to_string())
            .unwrap_or_else(|| "/admin".into());
        let next = match state.core().console_access(&ctx).await {
            Ok(n) => n,
            Err(e) => return Err(error_page(state, e)),
        };
        let to = match next {
            NextStep::Return => return Ok(Self(ctx)),
            NextStep::StepUp | NextStep::SignIn => "/account/step-up?next=/account",
            NextStep::SetUp { .. } => "/account/security",
        };
        let jar = crate::forward_auth::remember_return(
            state,
            CookieJar::from_headers(&parts.headers),
            format!("{}{here}", state.settings().public_url),
        );
        Err((jar, Redirect::to(to)).into_response())
    }
}

#[derive(Deserialize, Default)]
struct Search {
    #[serde(default)]
    q: String,
}

async fn home(
    State(state): State<AppState>,
    jar: CookieJar,
    Operator(ctx): Operator,
    Query(search): Query<Search>,
) -> Response {
    let accounts = match state.core().console_search(&ctx, &search.q).await {
        Ok(a) => a,
        Err(e) => return error_page(&state, e),
    };
    let accounts: Vec<_> = accounts
        .iter()
        .map(|a| {
            context! {
                id => a.id.to_string(),
                email => &a.email,
                verified => a.is_verified(),
                locked => a.is_locked(),
                operator => a.operator,
                created => day(a.created_at),
            }
        })
        .collect();
    render(
        &state,
        jar,
        Some(&ctx),
        StatusCode::OK,
        "admin_home.html",
        context! { q => search.q.trim(), searched => !search.q.trim().is_empty(), accounts },
    )
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

async fn account(
    State(state): State<AppState>,
    jar: CookieJar,
    Operator(ctx): Operator,
    Path(id): Path<Uuid>,
    Query(done): Query<Done>,
) -> Response {
    account_page(&state, jar, &ctx, id, done.done, None).await
}

async fn account_page(
    state: &AppState,
    jar: CookieJar,
    ctx: &SessionContext,
    id: Uuid,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let d = match state.core().console_account(ctx, id).await {
        Ok(d) => d,
        Err(e) => return error_page(state, e),
    };
    let factors: Vec<_> = d
        .factors
        .iter()
        .map(|f| context! { kind => &f.kind, label => &f.label, hint => &f.hint, created => when(f.created_at), last_used => f.last_used_at.map(when) })
        .collect();
    let sessions: Vec<_> = d
        .sessions
        .iter()
        .map(|s| context! { browser => describe_browser(s.user_agent.as_deref()), ip => &s.ip, amr => s.amr.join(" "), created => when(s.created_at), last_seen => when(s.last_seen_at) })
        .collect();
    let browsers: Vec<_> = d
        .trusted_browsers
        .iter()
        .map(|b| context! { browser => describe_browser(b.user_agent.as_deref()), ip => &b.ip, created => when(b.created_at), expires => when(b.expires_at) })
        .collect();
    let devices: Vec<_> = d
        .known_devices
        .iter()
        .map(|k| context! { browser => describe_browser(k.user_agent.as_deref()), ip => &k.ip, first => when(k.first_seen_at), last => when(k.last_seen_at) })
        .collect();
    let audit: Vec<_> = d
        .audit
        .iter()
        .map(|e| context! { at => when(e.at), event => &e.event, ip => &e.ip, detail => e.detail.to_string() })
        .collect();
    let a = &d.account;
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(
        state,
        jar,
        Some(ctx),
        status,
        "admin_account.html",
        context! {
            account => context! {
                id => a.id.to_string(), email => &a.email, verified => a.is_verified(),
                locked => a.locked_at.map(when), operator => a.operator,
                ip_verification => a.ip_verification, created => when(a.created_at),
            },
            factors, backup_codes_left => d.backup_codes_left, sessions, browsers, devices, audit,
            notice => notice.as_deref().and_then(done_text), error,
        },
    )
}

/// What the page says after an action (the redirect names it).
fn done_text(action: &str) -> Option<&'static str> {
    Some(match action {
        "reset-2fa" => "Two-step verification was reset; the customer was told.",
        "lock" => "The account is locked; the customer was told.",
        "unlock" => "The account is unlocked; the customer was told.",
        "revoke-sessions" => "Every session was signed out; the customer was told.",
        "ip-verification-on" => "New-network verification is on; the customer was told.",
        "ip-verification-off" => "New-network verification is off; the customer was told.",
        "resend-verification" => "A new verification link is on its way.",
        _ => return None,
    })
}

#[derive(Deserialize)]
struct ActionForm {
    action: String,
    #[serde(default)]
    reason: String,
}

async fn act(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    Operator(ctx): Operator,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Response {
    let Some(action) = OperatorAction::parse(&form.action) else {
        return account_page(&state, jar, &ctx, id, None, Some("Unknown action.".into())).await;
    };
    match state
        .core()
        .console_act(&ctx, id, action, &form.reason, &meta)
        .await
    {
        Ok(()) => {
            Redirect::to(&format!("/admin/accounts/{id}?done={}", form.action)).into_response()
        }
        Err(e) => {
            let (status, text) = error_text(&e);
            if status.is_client_error() && status != StatusCode::NOT_FOUND {
                account_page(&state, jar, &ctx, id, None, Some(text)).await
            } else {
                error_page(&state, e)
            }
        }
    }
}
