//! The verification API's keys at the console: the list, creating one (its key is shown on
//! the answer page only, never again) and revoking one with a required reason.

use super::Operator;
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::pages::{error_page, error_text, render, when};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::{Value, context};
use serde::Deserialize;
use twofold_core::CoreError;
use twofold_core::service::SessionContext;
use uuid::Uuid;

/// What the page shows beside the list.
#[derive(Default)]
struct Notice {
    /// A key just created: shown once.
    created: Option<Value>,
    done: Option<&'static str>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct Done {
    done: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Operator(ctx): Operator,
    Query(done): Query<Done>,
) -> Response {
    let done = match done.done.as_deref() {
        Some("revoked") => Some("The key is revoked; every node refuses it within a second."),
        _ => None,
    };
    let notice = Notice {
        done,
        ..Notice::default()
    };
    keys_page(&state, jar, &ctx, StatusCode::OK, notice).await
}

async fn keys_page(
    state: &AppState,
    jar: CookieJar,
    ctx: &SessionContext,
    status: StatusCode,
    notice: Notice,
) -> Response {
    let keys = match state.core().console_api_keys(ctx).await {
        Ok(k) => k,
        Err(e) => return error_page(state, e),
    };
    let keys: Vec<_> = keys
        .iter()
        .map(|k| {
            context! {
                id => k.id.to_string(), tenant => &k.tenant, name => &k.name,
                created => when(k.created_at), last_used => k.last_used_at.map(when),
                revoked => k.revoked_at.map(when), reason => &k.revoked_reason,
            }
        })
        .collect();
    render(
        state,
        jar,
        Some(ctx),
        status,
        "admin_api_keys.html",
        context! {
            keys, created => notice.created, done => notice.done, error => notice.error,
        },
    )
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    name: String,
}

pub async fn create(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    Operator(ctx): Operator,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> Response {
    let notice = match state
        .core()
        .console_create_api_key(&ctx, &form.tenant, &form.name, &meta)
        .await
    {
        Ok((record, key)) => Notice {
            created: Some(context! {
                id => record.id.to_string(), name => record.name, tenant => form.tenant.trim(), key,
            }),
            ..Notice::default()
        },
        Err(e) => return refused(&state, jar, &ctx, e).await,
    };
    keys_page(&state, jar, &ctx, StatusCode::OK, notice).await
}

#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    reason: String,
}

pub async fn revoke(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    Operator(ctx): Operator,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<RevokeForm>,
) -> Response {
    match state
        .core()
        .console_revoke_api_key(&ctx, id, &form.reason, &meta)
        .await
    {
        Ok(()) => Redirect::to("/admin/api-keys?done=revoked").into_response(),
        Err(e) => refused(&state, jar, &ctx, e).await,
    }
}

/// Bad input is said on the page, with the list; anything else is an error page.
async fn refused(state: &AppState, jar: CookieJar, ctx: &SessionContext, e: CoreError) -> Response {
    let (status, text) = error_text(&e);
    if status.is_client_error() && status != StatusCode::NOT_FOUND {
        let notice = Notice {
            error: Some(text),
            ..Notice::default()
        };
        keys_page(state, jar, ctx, StatusCode::BAD_REQUEST, notice).await
    } else {
        error_page(state, e)
    }
}
