//! The JSON API under `/api/v1`. Errors are RFC 9457 problem+json.

mod account;
mod auth;
mod subject_keys;
mod subjects;

use crate::error::problem;
use crate::state::AppState;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::de::DeserializeOwned;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/signup", post(auth::signup))
        .route("/email-verification", post(auth::verify_email))
        .route("/session", post(auth::log_in).delete(auth::log_out))
        .route(
            "/session/second-factor",
            get(auth::second_factor_options).post(auth::second_factor),
        )
        .route(
            "/session/second-factor/code",
            post(auth::second_factor_send),
        )
        .route("/forward-auth", get(crate::forward_auth::check))
        .route("/session/device", post(auth::confirm_device))
        .route("/session/device/code", post(auth::resend_device_code))
        .route("/session/step-up", post(auth::step_up))
        .route(
            "/session/permissions/{permission}",
            get(account::permission),
        )
        .merge(subjects::routes())
        .merge(subject_keys::routes())
        .route("/password-reset", post(auth::request_password_reset))
        .route(
            "/password-reset/complete",
            post(auth::complete_password_reset),
        )
        .route("/account", get(account::show))
        .route("/account/password", post(account::change_password))
        .route("/account/email", post(account::request_email_change))
        .route(
            "/account/email/confirm",
            post(account::confirm_email_change),
        )
        .route("/account/sessions", get(account::sessions))
        .route("/account/sessions/{id}", delete(account::revoke_session))
        .fallback(not_found)
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
    problem(status, slug, &r.body_text(), None).into_response()
}
