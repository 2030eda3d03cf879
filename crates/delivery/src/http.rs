//! The HTTP client the SMS gateways share, and how their answers map to retry decisions.

use reqwest::StatusCode;
use std::time::Duration;
use twofold_core::ports::DeliveryError;

/// One client per adapter, built once: rustls on the ring provider (never aws-lc or OpenSSL),
/// the system's roots, no redirects (a gateway that redirects is misconfigured).
pub(crate) fn client(timeout_secs: u64) -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_secs.clamp(1, 120)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Twofold/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// 429 and 5xx (and no answer at all) are worth retrying; any other refusal is not.
pub(crate) fn classify(status: StatusCode, detail: String) -> Result<(), DeliveryError> {
    if status.is_success() {
        Ok(())
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(DeliveryError::Temporary(format!(
            "gateway answered {status}{detail}"
        )))
    } else {
        Err(DeliveryError::Permanent(format!(
            "gateway refused the message: {status}{detail}"
        )))
    }
}

pub(crate) fn transport_error(e: reqwest::Error) -> DeliveryError {
    // Strip the URL: a webhook URL may carry a token in its query.
    DeliveryError::Temporary(format!("gateway unreachable: {}", e.without_url()))
}
