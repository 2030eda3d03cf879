//! The token and userinfo endpoints. Their clients are OAuth libraries, so errors come in
//! OAuth's JSON shape (RFC 6749 §5.2, RFC 6750 §3), never as pages or problem+json.

use crate::client::Client;
use crate::state::AppState;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use twofold_core::service::{ClientCredentials, OAuthError, TokenRequest};

fn no_store(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    res
}

fn oauth_error(e: &OAuthError, basic: bool) -> Response {
    let status = match e.error {
        "invalid_client" => StatusCode::UNAUTHORIZED,
        "invalid_token" => StatusCode::UNAUTHORIZED,
        "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut res = (
        status,
        Json(serde_json::json!({ "error": e.error, "error_description": e.description })),
    )
        .into_response();
    let challenge = match e.error {
        "invalid_client" if basic => Some("Basic realm=\"twofold\"".to_owned()),
        "invalid_token" => Some(format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            e.description
        )),
        _ => None,
    };
    if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    no_store(res)
}

fn invalid_request(description: &str) -> OAuthError {
    OAuthError {
        error: "invalid_request",
        description: description.into(),
    }
}

/// `client_secret_basic`: `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<ClientCredentials>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError {
        error: "invalid_client",
        description: "malformed Basic credentials".into(),
    };
    let value = value.to_str().map_err(|_| bad())?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Err(bad());
    };
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some(ClientCredentials {
        client_id: unescape(id),
        secret: Some(SecretString::from(unescape(secret))),
    }))
}

pub async fn token(
    State(state): State<AppState>,
    Client(meta): Client,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let Ok(Form(req)) = form else {
        return oauth_error(
            &invalid_request("send an application/x-www-form-urlencoded body"),
            false,
        );
    };
    let basic = match basic_credentials(&headers) {
        Ok(b) => b,
        Err(e) => return oauth_error(&e, true),
    };
    let used_basic = basic.is_some();
    let creds = match (basic, &req.client_id) {
        (Some(_), _) if req.client_secret.is_some() => {
            return oauth_error(
                &invalid_request("use one client authentication method"),
                true,
            );
        }
        (Some(b), Some(id)) if *id != b.client_id => {
            return oauth_error(&invalid_request("client_id does not match"), true);
        }
        (Some(b), _) => b,
        (None, Some(id)) => ClientCredentials {
            client_id: id.clone(),
            secret: req.client_secret.clone(),
        },
        (None, None) => {
            return oauth_error(
                &OAuthError {
                    error: "invalid_client",
                    description: "client authentication is missing".into(),
                },
                false,
            );
        }
    };
    match state.core().oidc_token(&creds, &req, &meta).await {
        Ok(t) => no_store(Json(t).into_response()),
        Err(e) => oauth_error(&e, used_basic),
    }
}

/// CORS preflight for browser apps (public clients): they send `Authorization` to userinfo
/// and may post the token form from their own origin. No cookie is read by either endpoint.
pub async fn preflight() -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    res
}

/// Userinfo takes the access token as a Bearer header (RFC 6750 §2.1).
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        let mut res = (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({ "error": "invalid_request", "error_description": "send the access token as a Bearer header" })),
        )
            .into_response();
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"twofold\""),
        );
        return no_store(res);
    };
    match state.core().oidc_userinfo(token).await {
        Ok(claims) => no_store(Json(claims).into_response()),
        Err(e) => oauth_error(&e, false),
    }
}
