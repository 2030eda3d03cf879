//! The JSON API under `/api/v1`. Errors are RFC 9457 problem+json.

mod account;
mod auth;
mod docs;
pub mod schema;
mod subject_keys;
mod subjects;

pub use docs::{docs_page, openapi, openapi_json};

use crate::error::problem;
use crate::state::AppState;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::Response;
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Every JSON endpoint, each registered with its OpenAPI description (so none can be served
/// undocumented).
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(auth::signup))
        .routes(routes!(auth::verify_email))
        .routes(routes!(auth::log_in, auth::log_out))
        .routes(routes!(auth::second_factor_options, auth::second_factor))
        .routes(routes!(auth::second_factor_send))
        .routes(routes!(crate::forward_auth::check))
        .routes(routes!(auth::confirm_device))
        .routes(routes!(auth::resend_device_code))
        .routes(routes!(auth::step_up))
        .routes(routes!(account::permission))
        .merge(subjects::routes())
        .merge(subject_keys::routes())
        .routes(routes!(auth::request_password_reset))
        .routes(routes!(auth::complete_password_reset))
        .routes(routes!(account::show))
        .routes(routes!(account::change_password))
        .routes(routes!(account::request_email_change))
        .routes(routes!(account::confirm_email_change))
        .routes(routes!(account::sessions))
        .routes(routes!(account::revoke_session))
}

pub fn routes() -> Router<AppState> {
    let (router, _) = api().split_for_parts();
    router.fallback(not_found)
}

async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "not-found",
        "No such endpoint.",
        None,
    )
}

/// `Json<T>` whose rejections (wrong content type, malformed or incomplete body) are
/// problem+json like every other API error.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> Response {
    let (status, slug) = match &r {
        JsonRejection::MissingJsonContentType(_) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
        }
        JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-body"),
        _ => (StatusCode::BAD_REQUEST, "invalid-body"),
    };
    let text = r.body_text();
    if let JsonRejection::JsonDataError(_) = &r
        && let Some(field) = unknown_field(&text)
    {
        // Every request type refuses fields it does not know: a misspelt or unsupported
        // option must not be dropped silently (`"digits":8` would give a 6-digit factor).
        let detail = format!("This request does not take the field `{field}`.");
        let extra = serde_json::json!({ "field": field });
        return problem(status, slug, &detail, Some(extra));
    }
    problem(status, slug, &text, None)
}

/// The field serde names in its "unknown field `x`, expected …" message, if that is the error.
fn unknown_field(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("unknown field `")?;
    rest.split_once('`').map(|(field, _)| field)
}
