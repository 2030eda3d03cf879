//! The verification API's security keys: registration and assertion ceremonies for a tenant's
//! subjects. The app passes the options to `navigator.credentials` in its own page and sends
//! the browser's `toJSON()` answer back.

use super::ApiJson;
use super::schema::{ActiveFactor, AssertionStarted, Problem, RegistrationStarted, Verification};
use super::subjects::Tenant;
use crate::client::Client;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use twofold_core::CoreError;
use twofold_core::service::{KeyKind, VerifyResult};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(begin_registration))
        .routes(routes!(finish_registration))
        .routes(routes!(begin_assertion))
        .routes(routes!(finish_assertion))
}

fn ceremony_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError(CoreError::NotFound))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRegistration {
    /// `security_key` (default) or `passkey`.
    #[serde(default)]
    kind: Option<String>,
}

#[utoipa::path(post, path = "/subjects/{subject}/webauthn/registrations", tag = "verification",
    params(("subject" = String, Path)), request_body = NewRegistration, security(("api_key" = [])),
    responses((status = 200, body = RegistrationStarted), (status = 400, body = Problem), (status = 401, body = Problem, description = "Missing or unknown API key"), (status = 503, body = Problem, description = "The tenant has no WebAuthn relying party")))]
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
    Ok(Json(RegistrationStarted {
        registration_id: start.id,
        options: start.options,
    })
    .into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Finish {
    /// The browser's `PublicKeyCredential.toJSON()`.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
    #[serde(default)]
    label: String,
}

#[utoipa::path(post, path = "/subjects/{subject}/webauthn/registrations/{id}/finish", tag = "verification",
    params(("subject" = String, Path), ("id" = Uuid, Path)), request_body = Finish, security(("api_key" = [])),
    responses((status = 201, body = ActiveFactor), (status = 400, body = Problem, description = "The key's answer did not verify"), (status = 401, body = Problem, description = "Missing or unknown API key"), (status = 404, body = Problem)))]
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
    let out = ActiveFactor {
        id: factor,
        kind: Some("webauthn"),
        status: "active",
        backup_codes: codes,
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[utoipa::path(post, path = "/subjects/{subject}/webauthn/assertions", tag = "verification",
    params(("subject" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = AssertionStarted), (status = 401, body = Problem, description = "Missing or unknown API key"), (status = 404, body = Problem, description = "The subject has no key"), (status = 503, body = Problem)))]
async fn begin_assertion(
    State(state): State<AppState>,
    Tenant(caller): Tenant,
    Path(subject): Path<String>,
) -> Result<Response, ApiError> {
    let start = state.core().api_begin_assertion(&caller, &subject).await?;
    Ok(Json(AssertionStarted {
        assertion_id: start.id,
        options: start.options,
    })
    .into_response())
}

#[utoipa::path(post, path = "/subjects/{subject}/webauthn/assertions/{id}/finish", tag = "verification",
    params(("subject" = String, Path), ("id" = Uuid, Path)), request_body = Finish, security(("api_key" = [])),
    responses((status = 200, body = Verification), (status = 400, body = Problem), (status = 401, body = Problem, description = "Missing or unknown API key"), (status = 404, body = Problem), (status = 429, body = Problem)))]
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
        VerifyResult::Valid { factor_id, .. } => Verification {
            valid: true,
            factor_id,
            kind: Some("webauthn"),
            backup_codes_left: None,
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
