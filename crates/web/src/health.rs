use crate::client::Client;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::ExposeSecret;
use serde_json::json;
use subtle::ConstantTimeEq;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

static METRICS: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
    std::sync::OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls reuse it). Counters
/// recorded before this are lost, so the binary calls it at start.
pub fn install_metrics() {
    METRICS.get_or_init(|| {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("twofold_http_request_duration_seconds".into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("twofold_code_check_group_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    ],
                )
            });
        let builder = match builder {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "metrics buckets refused");
                return None;
            }
        };
        match builder.install_recorder() {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed");
                None
            }
        }
    });
}

/// Prometheus text format: counts and latencies, no personal data. With `metrics.bearer_token`
/// set it needs `Authorization: Bearer <token>`; without, it answers loopback clients only
/// (a scraper on the same host, or behind a proxy that forwards to it).
async fn metrics(
    State(state): State<AppState>,
    Client(meta): Client,
    headers: HeaderMap,
) -> Response {
    let allowed = match &state.settings().metrics_token {
        Some(token) => headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|presented| {
                bool::from(presented.as_bytes().ct_eq(token.expose_secret().as_bytes()))
            }),
        None => meta.ip.is_some_and(|ip| ip.to_canonical().is_loopback()),
    };
    if !allowed {
        return (
            StatusCode::UNAUTHORIZED,
            [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
        )
            .into_response();
    }
    let (size, idle) = state.core().pool_use();
    ::metrics::gauge!("twofold_db_pool_connections", "state" => "idle").set(idle as f64);
    ::metrics::gauge!("twofold_db_pool_connections", "state" => "in_use")
        .set(size.saturating_sub(idle) as f64);
    match METRICS.get().and_then(Option::as_ref) {
        Some(handle) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
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
