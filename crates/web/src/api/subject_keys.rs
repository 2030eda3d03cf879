//! The verification API's security keys: registration and assertion ceremonies for a tenant's
//! subjects. The app passes the options to `navigator.credentials` in its own page and sends
//! the browser's `toJSON()` answer back.

use super::ApiJson;
use super::subjects::Tenant;
use crate::client::Client;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use twofold_core::CoreError;
use twofold_core::service::{KeyKind, VerifyResult};
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/subjects/{subject}/webauthn/registrations",
            post(begin_registration),
        )
        .route(
            "/subjects/{subject}/webauthn/registrations/{id}/finish",
            post(finish_registration),
        )
        .route(
            "/subjects/{subject}/webauthn/assertions",
            post(begin_assertion),
        )
        .route(
            "/subjects/{subject}/webauthn/assertions/{id}/finish",
            post(finish_assertion),
        )
}

fn ceremony_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError(CoreError::NotFound))
}

#[derive(Deserialize, Default)]
pub struct NewRegistration {
    /// `security_key` (default) or `passkey`.
    #[serde(default)]
    kind: Option<String>,
}

async fn begin_registration(
    State(state): State<AppState>,
    Tenant(caller): Tenant,
    Path(subject): Path<String>,
    ApiJson(body): ApiJson<NewRegistration>,
) -> Result<Response, ApiError> {
    let kind = match body.kind.as_deref() {
        None | Some("security_key") => KeyKind::SecurityKey,
        Some("passkey") => KeyKind::Passkey,
        Some(_) => {
            return Err(CoreError::invalid("kind", "kind is security_key or passkey.").into());
        }
    };
    let start = state
        .core()
        .api_begin_key_registration(&caller, &subject, kind)
        .await?;
    Ok(Json(json!({ "registration_id": start.id, "options": start.options })).into_response())
}

#[derive(Deserialize)]
pub struct Finish {
    credential: serde_json::Value,
    #[serde(default)]
    label: String,
}

async fn finish_registration(
    State(state): State<AppState>,
    Tenant(caller): Tenant,
    Client(meta): Client,
    Path((subject, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<Finish>,
) -> Result<Response, ApiError> {
    let id = ceremony_id(&id)?;
    let (factor, codes) = state
        .core()
        .api_finish_key_registration(&caller, &subject, id, &body.label, body.credential, &meta)
        .await?;
    let mut out = json!({ "id": factor, "type": "webauthn", "status": "active" });
    if let Some(codes) = codes {
        out["backup_codes"] = json!(codes);
    }
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

async fn begin_assertion(
    State(state): State<AppState>,
    Tenant(caller): Tenant,
    Path(subject): Path<String>,
) -> Result<Response, ApiError> {
    let start = state.core().api_begin_assertion(&caller, &subject).await?;
    Ok(Json(json!({ "assertion_id": start.id, "options": start.options })).into_response())
}

async fn finish_assertion(
    State(state): State<AppState>,
    Tenant(caller): Tenant,
    Client(meta): Client,
    Path((subject, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<Finish>,
) -> Result<Response, ApiError> {
    let id = ceremony_id(&id)?;
    let out = match state
        .core()
        .api_finish_assertion(&caller, &subject, id, body.credential, &meta)
        .await?
    {
        VerifyResult::Valid { factor_id, .. } => {
            json!({ "valid": true, "factor_id": factor_id, "type": "webauthn" })
        }
        VerifyResult::Invalid => json!({ "valid": false }),
    };
    Ok(Json(out).into_response())
}
