//! Security settings: adding a phone number (codes by text message) or an email address (codes
//! by email). The factor is pending until the code sent to it is typed back.

use super::factors::{factor_added, parse_id, step_up_redirect};
use super::{error_page, error_text, render};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::session::EnrollingSession;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use serde::Deserialize;
use twofold_core::CoreError;
use twofold_core::model::DeliveryState;
use twofold_core::ports::Channel;
use twofold_core::service::SessionContext;

use super::auth::NoFields;

fn channel_of(kind: &str) -> Option<Channel> {
    match kind {
        "sms" => Some(Channel::Sms),
        "email" => Some(Channel::Email),
        _ => None,
    }
}

fn new_form(
    state: &AppState,
    jar: CookieJar,
    ctx: &SessionContext,
    status: StatusCode,
    channel: Channel,
    value: &str,
    error: Option<String>,
) -> Response {
    let title = match channel {
        Channel::Sms => "Add a phone number",
        Channel::Email => "Add email codes",
    };
    render(
        state,
        jar,
        Some(ctx),
        status,
        "code_factor_new.html",
        context! { title, channel => channel.as_str(), value, error },
    )
}

pub async fn new_page(
    State(state): State<AppState>,
    jar: CookieJar,
    EnrollingSession(ctx): EnrollingSession,
    Path(kind): Path<String>,
) -> Response {
    let Some(channel) = channel_of(&kind) else {
        return error_page(&state, CoreError::NotFound);
    };
    let value = match channel {
        Channel::Sms => String::new(),
        Channel::Email => ctx.account.email.clone(),
    };
    new_form(&state, jar, &ctx, StatusCode::OK, channel, &value, None)
}

#[derive(Deserialize)]
pub struct DestinationForm {
    #[serde(default)]
    destination: String,
}

pub async fn begin(
    State(state): State<AppState>,
    jar: CookieJar,
    EnrollingSession(ctx): EnrollingSession,
    Client(meta): Client,
    Path(kind): Path<String>,
    CsrfForm(form): CsrfForm<DestinationForm>,
) -> Response {
    let Some(channel) = channel_of(&kind) else {
        return error_page(&state, CoreError::NotFound);
    };
    match state
        .core()
        .account_begin_code_factor(&ctx, channel, &form.destination, &meta)
        .await
    {
        Ok(sent) => {
            Redirect::to(&format!("/account/security/codes/{}", sent.factor_id)).into_response()
        }
        Err(CoreError::StepUpRequired) => step_up_redirect(),
        Err(
            e @ (CoreError::InvalidInput { .. }
            | CoreError::SendLimited { .. }
            | CoreError::SmsUnavailable),
        ) => {
            let (status, text) = error_text(&e);
            new_form(
                &state,
                jar,
                &ctx,
                status,
                channel,
                &form.destination,
                Some(text),
            )
        }
        Err(e) => error_page(&state, e),
    }
}

async fn confirm_form(
    state: &AppState,
    jar: CookieJar,
    ctx: &SessionContext,
    status: StatusCode,
    id: uuid::Uuid,
    notice: Option<&str>,
    error: Option<String>,
) -> Response {
    match state.core().account_pending_code_factor(ctx, id).await {
        Ok((f, delivery)) => render(
            state,
            jar,
            Some(ctx),
            status,
            "code_factor_confirm.html",
            context! {
                title => "Enter the code we sent",
                factor_id => f.id.to_string(),
                channel => f.channel.as_str(),
                hint => f.hint,
                delivery_failed => delivery == Some(DeliveryState::Failed),
                notice,
                error,
            },
        ),
        Err(CoreError::NotFound) => super::message_page(
            state,
            StatusCode::NOT_FOUND,
            "This setup has expired",
            "Adding a phone number or email address must be finished within 15 minutes. Start again from Security settings.",
            Some(super::Link {
                href: "/account/security",
                label: "Security settings",
            }),
        ),
        Err(e) => error_page(state, e),
    }
}

#[derive(Deserialize, Default)]
pub struct ResentQuery {
    resent: Option<String>,
}

pub async fn confirm_page(
    State(state): State<AppState>,
    jar: CookieJar,
    EnrollingSession(ctx): EnrollingSession,
    Path(id): Path<String>,
    Query(q): Query<ResentQuery>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, e),
    };
    let notice = q.resent.is_some().then_some("We sent a new code.");
    confirm_form(&state, jar, &ctx, StatusCode::OK, id, notice, None).await
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

pub async fn confirm(
    State(state): State<AppState>,
    jar: CookieJar,
    EnrollingSession(ctx): EnrollingSession,
    Client(meta): Client,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, e),
    };
    match state
        .core()
        .account_confirm_code_factor(&ctx, id, &form.code, &meta)
        .await
    {
        Ok(codes) => factor_added(&state, jar, &ctx, codes, &meta).await,
        Err(CoreError::StepUpRequired) => step_up_redirect(),
        Err(e @ (CoreError::WrongCode | CoreError::TooManyAttempts { .. })) => {
            let (status, text) = error_text(&e);
            confirm_form(&state, jar, &ctx, status, id, None, Some(text)).await
        }
        Err(e) => error_page(&state, e),
    }
}

pub async fn resend(
    State(state): State<AppState>,
    jar: CookieJar,
    EnrollingSession(ctx): EnrollingSession,
    Client(meta): Client,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, e),
    };
    match state
        .core()
        .account_resend_confirmation(&ctx, id, &meta)
        .await
    {
        Ok(_) => Redirect::to(&format!("/account/security/codes/{id}?resent=1")).into_response(),
        Err(CoreError::StepUpRequired) => step_up_redirect(),
        Err(e @ (CoreError::SendLimited { .. } | CoreError::SmsUnavailable)) => {
            let (status, text) = error_text(&e);
            confirm_form(&state, jar, &ctx, status, id, None, Some(text)).await
        }
        Err(e) => error_page(&state, e),
    }
}
