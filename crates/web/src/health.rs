use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up and answering.
async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// The database answers and its schema is current: safe to send traffic here.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.core().ready().await {
        Ok(()) => axum::Json(json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = ?e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "status": "not ready" })),
            )
                .into_response()
        }
    }
}
