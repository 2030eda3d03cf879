//! HTTP for Twofold: the JSON API under `/api/v1`, the server-rendered pages, health checks.
//! Handlers extract and validate, call one core method, and shape the answer; the mapping from
//! core errors to HTTP lives in [`error`] and nowhere else.

mod admin;
mod api;
mod client;
mod csrf;
mod deadline;
pub mod error;
mod forward_auth;
mod headers;
mod health;
mod http_metrics;
mod oidc;
mod pages;
mod return_path;
mod session;
mod state;
mod templates;

pub use api::openapi;
pub use health::install_metrics;
pub use state::{AppState, Branding, WebSettings};

use axum::Router;
use axum::http::{HeaderName, Request};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application: pages, API, health and static files, with the security layers.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(pages::routes())
        .merge(oidc::routes())
        .merge(admin::routes())
        .route(
            "/forward-auth/start",
            axum::routing::get(forward_auth::start),
        )
        .nest("/api/v1", api::routes())
        .route("/api/openapi.json", axum::routing::get(api::openapi_json))
        .route("/api/docs", axum::routing::get(api::docs_page))
        .merge(health::routes())
        // A route layer sees the matched route pattern, so latencies group by route.
        .route_layer(axum::middleware::from_fn(http_metrics::record))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            headers::security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf::reject_cross_origin,
        ))
        .layer(RequestBodyLimitLayer::new(64 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            deadline::limit,
        ))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            // The span carries the path only: query strings hold link tokens.
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            })
            .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
            // No ERROR line per 5xx here: server errors are logged once where they arise
            // (`error::log_if_server_error`, the panic handler), and a 503 that sheds a login
            // flood is the design working — one line per refused request would flood the log.
            .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}
