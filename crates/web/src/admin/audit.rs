//! The audit log: filtered by account (its address), event and time, newest first, with an
//! export of the same selection as JSON lines.

use super::Operator;
use crate::pages::{error_page, render, when};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};
use twofold_core::CoreError;
use twofold_core::model::AuditFilter;
use twofold_core::service::SessionContext;
use uuid::Uuid;

const PAGE: u32 = 100;
const EXPORT: u32 = 10_000;

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct AuditQuery {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    event: String,
    /// `YYYY-MM-DD`, from the start of that day (UTC).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    from: String,
    /// `YYYY-MM-DD`, to the end of that day (UTC).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    to: String,
    /// The next page: older than `at` (RFC 3339) and this event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<String>,
}

fn parse_day(v: &str, field: &'static str) -> Result<Option<OffsetDateTime>, CoreError> {
    if v.trim().is_empty() {
        return Ok(None);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(v.trim(), &fmt)
        .map(|d| Some(d.midnight().assume_utc()))
        .map_err(|_| CoreError::invalid(field, "Use a date like 2026-12-01."))
}

async fn filter_of(
    state: &AppState,
    ctx: &SessionContext,
    q: &AuditQuery,
) -> Result<AuditFilter, CoreError> {
    let account = match q.email.trim() {
        "" => None,
        // Through the console, so only an operator learns whether the address exists.
        email => Some(state.core().console_find_account(ctx, email).await?.id),
    };
    let before = match q.before.as_deref() {
        None | Some("") => None,
        Some(b) => {
            let (at, id) = b
                .split_once('_')
                .ok_or_else(|| CoreError::invalid("before", "Not a page marker."))?;
            let at = OffsetDateTime::parse(at, &Rfc3339)
                .map_err(|_| CoreError::invalid("before", "Not a page marker."))?;
            let id = Uuid::parse_str(id)
                .map_err(|_| CoreError::invalid("before", "Not a page marker."))?;
            Some((at, id))
        }
    };
    Ok(AuditFilter {
        account,
        event: Some(q.event.trim().to_owned()).filter(|e| !e.is_empty()),
        from: parse_day(&q.from, "from")?,
        to: parse_day(&q.to, "to")?.map(|t| t + time::Duration::days(1)),
        before,
    })
}

/// The events the query selects, at most `limit`.
async fn select(
    state: &AppState,
    ctx: &SessionContext,
    q: &AuditQuery,
    limit: u32,
) -> Result<Vec<twofold_core::model::AuditRecord>, CoreError> {
    let filter = filter_of(state, ctx, q).await?;
    state.core().console_audit(ctx, &filter, limit).await
}

pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Operator(ctx): Operator,
    Query(q): Query<AuditQuery>,
) -> Response {
    let events = match select(&state, &ctx, &q, PAGE).await {
        Ok(e) => e,
        Err(e) => return error_page(&state, e),
    };
    let older = (events.len() == PAGE as usize)
        .then(|| events.last())
        .flatten()
        .map(|e| {
            let marker = format!("{}_{}", e.at.format(&Rfc3339).unwrap_or_default(), e.id);
            let next = AuditQuery {
                before: Some(marker),
                ..q.clone()
            };
            format!(
                "/admin/audit?{}",
                serde_urlencoded::to_string(&next).unwrap_or_default()
            )
        });
    let export = format!(
        "/admin/audit.jsonl?{}",
        serde_urlencoded::to_string(AuditQuery {
            before: None,
            ..q.clone()
        })
        .unwrap_or_default()
    );
    let rows: Vec<_> = events
        .iter()
        .map(|e| {
            context! {
                at => when(e.at),
                account => e.account_id.map(|a| a.to_string()),
                event => &e.event,
                ip => &e.ip,
                detail => e.detail.to_string(),
            }
        })
        .collect();
    render(
        &state,
        jar,
        Some(&ctx),
        StatusCode::OK,
        "admin_audit.html",
        context! { q => minijinja::Value::from(minijinja::value::Serde(&q)), rows, older, export },
    )
}

/// The selection as JSON lines (one event per line), newest first, up to 10,000 events.
pub async fn export(
    State(state): State<AppState>,
    Operator(ctx): Operator,
    Query(q): Query<AuditQuery>,
) -> Response {
    let events = match select(&state, &ctx, &q, EXPORT).await {
        Ok(e) => e,
        Err(e) => return error_page(&state, e),
    };
    let mut body = String::new();
    for e in &events {
        let line = serde_json::json!({
            "id": e.id,
            "at": e.at.format(&Rfc3339).unwrap_or_default(),
            "account_id": e.account_id,
            "event": e.event,
            "ip": e.ip,
            "user_agent": e.user_agent,
            "detail": e.detail,
        });
        body.push_str(&line.to_string());
        body.push('\n');
    }
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"twofold-audit.jsonl\"",
            ),
        ],
        body,
    )
        .into_response()
}
