//! The verification API: factors of a tenant's subjects, authenticated with an API key.

use super::ApiJson;
use crate::client::Client;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use twofold_core::CoreError;
use twofold_core::factor::otp_code::is_restricted;
use twofold_core::model::DeliveryState;
use twofold_core::ports::Channel;
use twofold_core::service::{ApiCaller, VerifyResult};
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/subjects/{subject}/factors", get(list).post(create))
        .route("/subjects/{subject}/factors/{id}", delete(remove))
        .route("/subjects/{subject}/factors/{id}/confirm", post(confirm))
        .route("/subjects/{subject}/verify", post(verify))
        .route("/subjects/{subject}/challenges", post(challenge))
        .route("/subjects/{subject}/challenges/{id}", get(challenge_status))
        .route("/subjects/{subject}/backup-codes", post(backup_codes))
}

/// `Authorization: Bearer <API key>`; anything else is 401.
pub struct Tenant(pub ApiCaller);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError(CoreError::Unauthenticated))?;
        Ok(Self(state.core().authenticate_api_key(key).await?))
    }
}

fn factor_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError(CoreError::NotFound))
}

#[derive(Deserialize)]
pub struct NewFactor {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    label: String,
    phone: Option<String>,
    email: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    Tenant(caller): Tenant,
    Client(meta): Client,
    Path(subject): Path<String>,
    ApiJson(body): ApiJson<NewFactor>,
) -> Result<Response, ApiError> {
    let (channel, destination) = match (body.kind.as_str(), &body.phone, &body.email) {
        ("totp", None, None) => return create_totp(state, caller, meta, subject, body).await,
        ("sms", Some(phone), None) => (Channel::Sms, phone),
        ("email", None, Some(email)) => (Channel::Email, email),
        ("sms", _, _) => {
            return Err(CoreError::invalid(
                "phone",
                "Give the phone number (and only that) for an sms factor.",
            )
            .into());
        }
        ("email", _, _) => {
            return Err(CoreError::invalid(
                "email",
                "Give the email address (and only that) for an email factor.",
            )
            .into());
        }
        ("totp", _, _) => {
            return Err(
                CoreError::invalid("type", "A totp factor takes no phone or email.").into(),
            );
        }
        _ => {
            return Err(
                CoreError::invalid("type", "Supported factor types: totp, sms, email.").into(),
            );
        }
    };
    let f = state
        .core()
        .api_begin_code_factor(&caller, &subject, channel, destination, &body.label, &meta)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": f.id,
            "type": channel.as_str(),
            "label": f.label,
            "status": "pending",
            "hint": f.hint,
            "restricted": is_restricted(channel.as_str()),
            "expires_at": f.expires_at.and_then(|t| t.format(&Rfc3339).ok()),
        })),
    )
        .into_response())
}

async fn create_totp(
    state: AppState,
    caller: ApiCaller,
    meta: twofold_core::model::RequestMeta,
    subject: String,
    body: NewFactor,
) -> Result<Response, ApiError> {
    let p = state
        .core()
        .api_begin_totp(&caller, &subject, &body.label, &meta)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": p.factor_id,
            "type": "totp",
            "label": p.label,
            "status": "pending",
            "secret": p.secret_base32,
            "otpauth_uri": p.otpauth_uri,
            "qr_svg": p.qr_svg,
            "expires_at": p.expires_at.format(&Rfc3339).unwrap_or_default(),
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct Code {
    code: String,
}

async fn confirm(
    State(state): State<AppState>,
    Tenant(caller): Tenant,
    Client(meta): Client,
    Path((subject, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<Code>,
) -> Result<Response, ApiError> {
    let id = factor_id(&id)?;
    let codes = state
        .core()
        .api_confirm_factor(&caller, &subject, id, &body.code, &meta)
        .await?;
    let mut out = json!({ "id": id, "status": "active" });
    if let Some(codes) = codes {
        out["backup_codes"] = json!(codes);
    }
    Ok(Json(out).into_response())
}

async fn verify(
    State(state): State<AppState>,
    Tenant(caller): Tenant,
    Client(meta): Client,
    Path(subject): Path<String>,
    ApiJson(body): ApiJson<Code>,
) -> Result<Response, ApiError> {
    let out = match state
        .core()
        .api_verify(&caller, &subject, &body.code, &meta)
        .await?
    {
        VerifyResult::Valid {
            factor_id,
            kind,
            backup_codes_left,
        } => {
            let mut v = json!({ "valid": true, "factor_id": factor_id, "type": kind });
            if let Some(n) = backup_codes_left {
                v["backup_codes_left"] = json!(n);
            }
            v
        }
        VerifyResult::Invalid => json!({ "valid": false }),
    };
    Ok(Json(out).into_response())
}

async fn list(
    State(state): State<AppState>,
    Tenant(caller): Tenant,
    Path(subject): Path<String>,
) -> Result<Response, ApiError> {
    let factors = state.core().api_factors(&caller, &subject).await?;
    let list: Vec<_> = factors
        .iter()
        .map(|f| {
            json!({
                "id": f.id,
                "type": f.kind,
                "label": f.label,
                "status": "active",
                "hint": f.hint,
                "restricted": is_restricted(&f.kind),
                "created_at": f.created_at.format(&Rfc3339).unwrap_or_default(),
                "last_used_at": f.last_used_at.and_then(|t| t.format(&Rfc3339).ok()),
            })
        })
        .collect();
    Ok(Json(json!({ "factors": list })).into_response())
}

async fn remove(
    State(state): State<AppState>,
    Tenant(caller): Tenant,
    Client(meta): Client,
    Path((subject, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = factor_id(&id)?;
    state
        .core()
        .api_remove_factor(&caller, &subject, id, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn backup_codes(
    State(state): State<AppState>,
    Tenant(caller): Tenant,
    Client(meta): Client,
    Path(subject): Path<String>,
) -> Result<Response, ApiError> {
    let codes = state
        .core()
        .api_backup_codes(&caller, &subject, &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "codes": codes }))).into_response())
}

#[derive(Deserialize)]
pub struct NewChallenge {
    factor_id: String,
    /// The end user's IP address, for the per-IP send quota. The caller is the app's server,
    /// whose own address says nothing about who asked for the code.
    client_ip: Option<String>,
}

/// Sends a code to an `sms`/`email` factor. An `Idempotency-Key` header makes a retried
/// request return the first challenge instead of sending another code.
async fn challenge(
    State(state): State<AppState>,
    Tenant(caller): Tenant,
    Client(meta): Client,
    Path(subject): Path<String>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<NewChallenge>,
) -> Result<Response, ApiError> {
    let factor = Uuid::parse_str(&body.factor_id)
        .map_err(|_| CoreError::invalid("factor_id", "factor_id is not a factor id."))?;
    let key = match headers.get("idempotency-key") {
        Some(v) => Some(v.to_str().map_err(|_| {
            CoreError::invalid("Idempotency-Key", "The idempotency key must be plain text.")
        })?),
        None => None,
    };
    let ip = match body.client_ip.as_deref() {
        Some(ip) => Some(
            ip.parse()
                .map_err(|_| CoreError::invalid("client_ip", "client_ip is not an IP address."))?,
        ),
        None => None,
    };
    let meta = twofold_core::model::RequestMeta { ip, ..meta };
    let sent = state
        .core()
        .api_send_code(&caller, &subject, factor, key, &meta)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "challenge_id": sent.challenge_id,
            "factor_id": sent.factor_id,
            "channel": sent.channel.as_str(),
            "hint": sent.hint,
            "expires_at": sent.expires_at.format(&Rfc3339).unwrap_or_default(),
        })),
    )
        .into_response())
}

async fn challenge_status(
    State(state): State<AppState>,
    Tenant(caller): Tenant,
    Path((subject, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = factor_id(&id)?;
    let (c, status, delivery) = state.core().api_challenge(&caller, &subject, id).await?;
    Ok(Json(json!({
        "challenge_id": c.id,
        "factor_id": c.factor_id,
        "channel": c.channel,
        "status": status,
        "delivery": delivery.as_str(),
        "delivery_failed": delivery == DeliveryState::Failed,
        "expires_at": c.expires_at.format(&Rfc3339).unwrap_or_default(),
    }))
    .into_response())
}
