//! The verification API: factors of a tenant's subjects, authenticated with an API key.

use super::ApiJson;
use super::schema::{
    ActiveFactor, BackupCodes, ChallengeSent, ChallengeState, FactorItem, FactorList,
    NewFactorView, Problem, Verification, rfc3339,
};
use crate::client::Client;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use twofold_core::CoreError;
use twofold_core::factor::otp_code::is_restricted;
use twofold_core::model::DeliveryState;
use twofold_core::ports::Channel;
use twofold_core::service::{ApiCaller, VerifyResult};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(remove))
        .routes(routes!(confirm))
        .routes(routes!(verify))
        .routes(routes!(challenge))
        .routes(routes!(challenge_status))
        .routes(routes!(backup_codes))
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFactor {
    /// `totp`, `sms` (with `phone`) or `email` (with `email`).
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    label: String,
    phone: Option<String>,
    email: Option<String>,
}

#[utoipa::path(post, path = "/subjects/{subject}/factors", tag = "verification",
    params(("subject" = String, Path, description = "The app's own user id")), request_body = NewFactor,
    security(("api_key" = [])),
    responses((status = 201, body = NewFactorView, description = "Pending until confirmed with a code"),
        (status = 400, body = Problem), (status = 401, body = Problem, description = "Missing or unknown API key"), (status = 429, body = Problem), (status = 503, body = Problem)))]
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
        Json(NewFactorView {
            id: f.id,
            kind: channel.as_str().to_owned(),
            label: f.label,
            status: "pending",
            hint: Some(f.hint),
            restricted: Some(is_restricted(channel.as_str())),
            secret: None,
            otpauth_uri: None,
            qr_svg: None,
            expires_at: f.expires_at.map(rfc3339),
        }),
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
        Json(NewFactorView {
            id: p.factor_id,
            kind: "totp".into(),
            label: p.label.clone(),
            status: "pending",
            hint: None,
            restricted: None,
            secret: Some(p.secret_base32.clone()),
            otpauth_uri: Some(p.otpauth_uri.clone()),
            qr_svg: Some(p.qr_svg.clone()),
            expires_at: Some(rfc3339(p.expires_at)),
        }),
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Code {
    code: String,
}

#[utoipa::path(post, path = "/subjects/{subject}/factors/{id}/confirm", tag = "verification",
    params(("subject" = String, Path), ("id" = Uuid, Path)), request_body = Code, security(("api_key" = [])),
    responses((status = 200, body = ActiveFactor), (status = 400, body = Problem), (status = 401, body = Problem, description = "Missing or unknown API key"), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "Wrong code"), (status = 429, body = Problem)))]
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
    Ok(Json(ActiveFactor {
        id,
        kind: None,
        status: "active",
        backup_codes: codes,
    })
    .into_response())
}

#[utoipa::path(post, path = "/subjects/{subject}/verify", tag = "verification",
    params(("subject" = String, Path)), request_body = Code, security(("api_key" = [])),
    responses((status = 200, body = Verification, description = "`valid` says whether the code was right; each code works once"),
        (status = 400, body = Problem), (status = 401, body = Problem, description = "Missing or unknown API key"), (status = 429, body = Problem, description = "The subject's budget of wrong codes is spent")))]
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
        } => Verification {
            valid: true,
            factor_id,
            kind: Some(kind),
            backup_codes_left,
        },
        VerifyResult::Invalid => Verification {
            valid: false,
            factor_id: None,
            kind: None,
            backup_codes_left: None,
        },
    };
    Ok(Json(out).into_response())
}

#[utoipa::path(get, path = "/subjects/{subject}/factors", tag = "verification",
    params(("subject" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = FactorList), (status = 401, body = Problem, description = "Missing or unknown API key")))]
async fn list(
    State(state): State<AppState>,
    Tenant(caller): Tenant,
    Path(subject): Path<String>,
) -> Result<Response, ApiError> {
    let factors = state.core().api_factors(&caller, &subject).await?;
    let list: Vec<_> = factors
        .iter()
        .map(|f| FactorItem {
            id: f.id,
            kind: f.kind.clone(),
            label: f.label.clone(),
            status: "active",
            hint: f.hint.clone(),
            restricted: is_restricted(&f.kind),
            created_at: rfc3339(f.created_at),
            last_used_at: f.last_used_at.map(rfc3339),
        })
        .collect();
    Ok(Json(FactorList { factors: list }).into_response())
}

#[utoipa::path(delete, path = "/subjects/{subject}/factors/{id}", tag = "verification",
    params(("subject" = String, Path), ("id" = Uuid, Path)), security(("api_key" = [])),
    responses((status = 204, description = "Removed"), (status = 401, body = Problem, description = "Missing or unknown API key"), (status = 404, body = Problem)))]
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

#[utoipa::path(post, path = "/subjects/{subject}/backup-codes", tag = "verification",
    params(("subject" = String, Path)), security(("api_key" = [])),
    responses((status = 201, body = BackupCodes, description = "New codes; the old ones stop working"), (status = 401, body = Problem, description = "Missing or unknown API key"), (status = 404, body = Problem)))]
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
    Ok((StatusCode::CREATED, Json(BackupCodes { codes })).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChallenge {
    factor_id: String,
    /// The end user's IP address, for the per-IP send quota. The caller is the app's server,
    /// whose own address says nothing about who asked for the code.
    client_ip: Option<String>,
}

/// Sends a code to an `sms`/`email` factor. An `Idempotency-Key` header makes a retried
/// request return the first challenge instead of sending another code.
#[utoipa::path(post, path = "/subjects/{subject}/challenges", tag = "verification",
    params(("subject" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key returns the first challenge")),
    request_body = NewChallenge, security(("api_key" = [])),
    responses((status = 202, body = ChallengeSent), (status = 400, body = Problem), (status = 401, body = Problem, description = "Missing or unknown API key"), (status = 404, body = Problem),
        (status = 429, body = Problem, description = "Cooldown or send quota"), (status = 503, body = Problem, description = "SMS unavailable")))]
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
        Json(ChallengeSent {
            challenge_id: sent.challenge_id,
            factor_id: sent.factor_id,
            channel: sent.channel.as_str().to_owned(),
            hint: sent.hint,
            expires_at: rfc3339(sent.expires_at),
        }),
    )
        .into_response())
}

#[utoipa::path(get, path = "/subjects/{subject}/challenges/{id}", tag = "verification",
    params(("subject" = String, Path), ("id" = Uuid, Path)), security(("api_key" = [])),
    responses((status = 200, body = ChallengeState), (status = 401, body = Problem, description = "Missing or unknown API key"), (status = 404, body = Problem)))]
async fn challenge_status(
    State(state): State<AppState>,
    Tenant(caller): Tenant,
    Path((subject, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = factor_id(&id)?;
    let (c, status, delivery) = state.core().api_challenge(&caller, &subject, id).await?;
    Ok(Json(ChallengeState {
        challenge_id: c.id,
        factor_id: c.factor_id,
        channel: c.channel.to_string(),
        status: status.to_owned(),
        delivery: delivery.as_str().to_owned(),
        delivery_failed: delivery == DeliveryState::Failed,
        expires_at: rfc3339(c.expires_at),
    })
    .into_response())
}
