//! The one mapping from core errors to HTTP. JSON callers get RFC 9457 problem+json; pages
//! use the same status and message inside a rendered page.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::any::Any;
use twofold_core::CoreError;

/// Status, problem slug and the message a user may see.
pub fn classify(e: &CoreError) -> (StatusCode, &'static str, String) {
    use CoreError::*;
    match e {
        InvalidInput { .. } => (StatusCode::BAD_REQUEST, "invalid-input", e.to_string()),
        WeakPassword(_) => (StatusCode::BAD_REQUEST, "weak-password", e.to_string()),
        InvalidCredentials => (
            StatusCode::UNAUTHORIZED,
            "invalid-credentials",
            e.to_string(),
        ),
        EmailNotVerified => (StatusCode::FORBIDDEN, "email-not-verified", e.to_string()),
        TooManyAttempts { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-attempts",
            e.to_string(),
        ),
        InvalidToken => (StatusCode::BAD_REQUEST, "invalid-token", e.to_string()),
        WrongCurrentPassword => (
            StatusCode::BAD_REQUEST,
            "wrong-current-password",
            e.to_string(),
        ),
        Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string()),
        WrongCode => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong-code",
            e.to_string(),
        ),
        SecondStepVoid => (StatusCode::UNAUTHORIZED, "second-step-void", e.to_string()),
        StepUpRequired => (StatusCode::FORBIDDEN, "step-up-required", e.to_string()),
        SendLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "send-limited", e.to_string()),
        SmsUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "sms-unavailable",
            e.to_string(),
        ),
        KeyRejected(_) => (StatusCode::BAD_REQUEST, "key-rejected", e.to_string()),
        PolicyForbids(_) => (StatusCode::FORBIDDEN, "forbidden-by-policy", e.to_string()),
        TwoFactorSetupRequired => (
            StatusCode::FORBIDDEN,
            "two-factor-setup-required",
            e.to_string(),
        ),
        Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", e.to_string()),
        NotFound => (StatusCode::NOT_FOUND, "not-found", e.to_string()),
        Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()),
        Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
        Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side. Please try again.".into(),
        ),
    }
}

pub fn retry_after(e: &CoreError) -> Option<u64> {
    match e {
        CoreError::TooManyAttempts { retry_after_secs }
        | CoreError::Busy { retry_after_secs }
        | CoreError::SendLimited { retry_after_secs } => Some(*retry_after_secs),
        CoreError::Unavailable(_) => Some(5),
        _ => None,
    }
}

/// Logs what the user must not see (internal details) once, where the error leaves the app.
pub fn log_if_server_error(e: &CoreError) {
    match e {
        CoreError::Internal(m) => tracing::error!(error = %m, "internal error"),
        CoreError::Unavailable(m) => tracing::warn!(error = %m, "dependency unavailable"),
        _ => {}
    }
}

/// A problem+json response.
pub fn problem(
    status: StatusCode,
    slug: &str,
    detail: &str,
    extra: Option<serde_json::Value>,
) -> Response {
    let mut body = json!({
        "type": format!("urn:twofold:problem:{slug}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    if let (Some(obj), Some(serde_json::Value::Object(extra))) = (body.as_object_mut(), extra) {
        obj.extend(extra);
    }
    let mut res = (status, Json(body)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

/// An error returned by a JSON handler.
#[derive(Debug)]
pub struct ApiError(pub CoreError);

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        log_if_server_error(&self.0);
        let (status, slug, detail) = classify(&self.0);
        let mut extra = serde_json::Map::new();
        if let CoreError::InvalidInput { field, .. } = &self.0 {
            extra.insert("field".into(), json!(field));
        }
        let retry = retry_after(&self.0);
        if let Some(secs) = retry {
            extra.insert("retry_after".into(), json!(secs));
        }
        let mut res = problem(
            status,
            slug,
            &detail,
            Some(serde_json::Value::Object(extra)),
        );
        if let Some(secs) = retry
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}

pub(crate) fn panic_response(_err: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Something went wrong on our side. Please try again.",
        None,
    )
}
