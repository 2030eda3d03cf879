//! The whole-request deadline. A request still unanswered then (a database that stopped
//! answering, say) gets 408 with `Retry-After` and a body saying so: a page for a browser,
//! problem+json for anything else. Dropping the handler cancels its work in progress.

use crate::error::problem;
use crate::pages::message_page;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

const DETAIL: &str = "The request took too long to answer. Please try again in a moment.";
const RETRY_AFTER_SECS: &str = "5";

pub(crate) async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let wants_page = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let path = req.uri().path().to_owned();
    let deadline = state.settings().request_timeout;
    match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(%path, seconds = deadline.as_secs(), "request timed out");
            let status = StatusCode::REQUEST_TIMEOUT;
            let mut res = if wants_page {
                message_page(&state, status, "That took too long", DETAIL, None)
            } else {
                problem(status, "timeout", DETAIL, None)
            };
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
            res
        }
    }
}
