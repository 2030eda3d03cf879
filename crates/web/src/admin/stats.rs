//! Enrollment statistics: the share of active accounts with 2FA (overall, per method, per day
//! for 90 days), the grace period, the enrollment funnel, second-step outcomes and texts by
//! country, each chart with its numbers beside it, and the rows as CSV.

use super::{Operator, charts};
use crate::pages::{error_page, render};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::{Value, context};

pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Operator(ctx): Operator,
) -> Response {
    let (report, _) = match state.core().console_stats(&ctx).await {
        Ok(r) => r,
        Err(e) => return error_page(&state, e),
    };
    let days_to_deadline = match state.core().days_to_deadline().await {
        Ok(d) => d,
        Err(e) => return error_page(&state, e),
    };
    let latest = report.trend.last();
    let trend: Vec<_> = report
        .trend
        .iter()
        .rev()
        .map(|p| context! { day => p.day.to_string(), active => p.active, with => p.with_two_factor, share => format!("{:.1}", p.share) })
        .collect();
    render(
        &state,
        jar,
        Some(&ctx),
        StatusCode::OK,
        "admin_stats.html",
        context! {
            has_data => latest.is_some(),
            active => latest.map(|p| p.active),
            with => latest.map(|p| p.with_two_factor),
            share => latest.map(|p| format!("{:.1}", p.share)),
            trend_svg => Value::from_safe_string(charts::trend(&report.trend)),
            methods_svg => Value::from_safe_string(charts::methods(&report.methods)),
            trend,
            methods => report.methods.iter().map(|(m, n, p)| context! { method => m, accounts => n, share => format!("{p:.1}") }).collect::<Vec<_>>(),
            in_grace => report.in_grace,
            days_to_deadline,
            funnel => report.funnel.iter().map(|(m, s, c, a)| context! { method => m, started => s, confirmed => c, active => a }).collect::<Vec<_>>(),
            second_step => report.second_step.iter().map(|(o, n)| context! { outcome => o, count => n }).collect::<Vec<_>>(),
            sms => report.sms_by_country.iter().map(|(c, n)| context! { country => c, count => n }).collect::<Vec<_>>(),
        },
    )
}

/// Every stored row of the last 90 days: `day,name,label,value`.
pub async fn csv(State(state): State<AppState>, Operator(ctx): Operator) -> Response {
    let (_, rows) = match state.core().console_stats(&ctx).await {
        Ok(r) => r,
        Err(e) => return error_page(&state, e),
    };
    let field = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let mut body = String::from("day,name,label,value\n");
    for r in rows {
        body.push_str(&format!(
            "{},{},{},{}\n",
            r.day,
            field(&r.name),
            field(&r.label),
            r.value
        ));
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"twofold-statistics.csv\"",
            ),
        ],
        body,
    )
        .into_response()
}
