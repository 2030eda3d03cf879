//! Forward-auth for reverse proxies (nginx `auth_request`, Traefik `forwardAuth`, Caddy
//! `forward_auth`): `GET /api/v1/forward-auth` answers 200 with `Remote-*` headers when the
//! session satisfies the rule for the original request, else sends the browser to
//! `/forward-auth/start`, which remembers where it was going and routes it to sign-in, step-up
//! or set-up; after that `/account` sends it back.

use crate::error::ApiError;
use crate::session::{build_cookie, cookie_name, session_token};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use time::Duration;
use twofold_core::CoreError;
use twofold_core::canonical::RequestTarget;
use twofold_core::service::{ForwardAuth, NextStep};
use url::Url;

/// How long a sign-in may take and still return to where it started.
const RETURN_TTL: Duration = Duration::minutes(30);

/// The request the proxy is asking about, canonical: nginx sends `X-Original-URL` (as our
/// example configuration sets it); Traefik and Caddy send `X-Forwarded-Proto`, `-Host` and
/// `-Uri`. An address without a canonical form (an encoded `/`, a NUL...) is a 400.
fn original_target(headers: &HeaderMap) -> Result<RequestTarget, CoreError> {
    let get = |name: &'static str| -> Result<Option<&str>, CoreError> {
        headers
            .get(name)
            .map(|v| v.to_str().map_err(|_| bad(name, "It is not ASCII text.")))
            .transpose()
    };
    if let Some(u) = get("x-original-url")? {
        return RequestTarget::from_url(u).map_err(|e| bad("x-original-url", e));
    }
    let host = get("x-forwarded-host")?.ok_or_else(|| {
        bad(
            "x-forwarded-uri",
            "Send X-Original-URL, or X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-Uri.",
        )
    })?;
    let proto = get("x-forwarded-proto")?.unwrap_or("https");
    let uri = get("x-forwarded-uri")?.unwrap_or("/");
    RequestTarget::from_parts(proto, host, uri).map_err(|e| bad("x-forwarded-uri", e))
}

fn bad(field: &'static str, why: impl std::fmt::Display) -> CoreError {
    CoreError::invalid(field, format!("The original request's address: {why}"))
}

fn start_url(state: &AppState, original: &Url) -> String {
    let rd: String = url::form_urlencoded::byte_serialize(original.as_str().as_bytes()).collect();
    format!("{}/forward-auth/start?rd={rd}", state.settings().public_url)
}

/// For nginx `auth_request`, Traefik `forwardAuth` and Caddy `forward_auth`.
#[utoipa::path(get, path = "/forward-auth", tag = "forward-auth",
    params(
        ("X-Original-URL" = Option<String>, Header, description = "The request the proxy asks about (nginx)"),
        ("X-Forwarded-Host" = Option<String>, Header, description = "Traefik and Caddy: host, with X-Forwarded-Proto and X-Forwarded-Uri"),
    ),
    responses(
        (status = 200, description = "Let it through; `Remote-User`, `Remote-Email` and `Remote-Amr` name the signed-in account",
            headers(("Remote-User" = String), ("Remote-Email" = String), ("Remote-Amr" = String, description = "Comma-separated RFC 8176 methods"))),
        (status = 302, description = "Not enough (Traefik, Caddy): `Location` is where the browser signs in or steps up"),
        (status = 401, description = "Not enough (nginx): `Location` is where to send the browser"),
        (status = 400, body = crate::api::schema::Problem, description = "The proxy sent no original URL, or one without a canonical form (an encoded `/` or control character, userinfo, a scheme other than http and https)"),
    ))]
pub async fn check(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let original = original_target(&headers)?;
    let token = session_token(&jar, &state);
    match state
        .core()
        .forward_auth(token.as_deref(), &original)
        .await?
    {
        ForwardAuth::Allow { user } => {
            let mut res = StatusCode::OK.into_response();
            if let Some(ctx) = user {
                let h = res.headers_mut();
                for (name, value) in [
                    ("remote-user", ctx.account.email.clone()),
                    ("remote-email", ctx.account.email.clone()),
                    ("remote-amr", ctx.session.amr.join(",")),
                ] {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        h.insert(name, v);
                    }
                }
            }
            Ok(res)
        }
        ForwardAuth::Deny { .. } => {
            let to = start_url(&state, original.url());
            // nginx's auth_request takes only 2xx, 401 and 403: it gets 401 with the place to
            // send the browser in Location (`error_page 401 =302 $redirection_url`). Traefik
            // and Caddy pass the answer on to the browser, so for them it is the redirect.
            let status = if headers.contains_key("x-original-url") {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::FOUND
            };
            let mut res = status.into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            Ok(res)
        }
    }
}

#[derive(Deserialize)]
pub struct StartQuery {
    #[serde(default)]
    rd: String,
}

/// Only Twofold's own origin and the hosts and ports the rules name are returned to, in
/// canonical form: anything else would make the sign-in an open redirect.
fn allowed_return(state: &AppState, rd: &str) -> Option<RequestTarget> {
    let target = RequestTarget::from_url(rd).ok()?;
    state
        .core()
        .forward_auth_may_return_to(&target)
        .then_some(target)
}

pub async fn start(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<StartQuery>,
) -> Response {
    let Some(rd) = allowed_return(&state, &q.rd) else {
        return crate::pages::message_page(
            &state,
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid",
            "It does not lead back to an application this sign-in protects.",
            None,
        );
    };
    let token = session_token(&jar, &state);
    let next = match state.core().forward_auth_next(token.as_deref(), &rd).await {
        Ok(n) => n,
        Err(e) => return crate::pages::error_page(&state, e),
    };
    let to = match next {
        NextStep::Return => return Redirect::to(rd.url().as_str()).into_response(),
        NextStep::SignIn => "/login",
        // Step-up returns to /account, which sends the browser on to `rd`.
        NextStep::StepUp => "/account/step-up?next=/account",
        NextStep::SetUp { .. } => "/account/security",
    };
    let jar = remember_return(&state, jar, rd.url().to_string());
    (jar, Redirect::to(to)).into_response()
}

/// Where `/account` sends the browser once it is signed in (or stepped up): forward-auth's
/// original request, or an OIDC request to continue.
pub fn remember_return(state: &AppState, jar: CookieJar, url: String) -> CookieJar {
    jar.add(build_cookie(state, "return", url, Some(RETURN_TTL)))
}

/// After a sign-in: where the browser was going when forward-auth sent it here, if anywhere
/// (checked again, the cookie is the browser's), with the jar that forgets it.
pub fn take_return(state: &AppState, jar: CookieJar) -> (CookieJar, Option<String>) {
    let Some(value) = jar
        .get(cookie_name(state, "return"))
        .map(|c| c.value().to_owned())
    else {
        return (jar, None);
    };
    let mut gone = build_cookie(state, "return", String::new(), Some(Duration::ZERO));
    gone.make_removal();
    let jar = jar.add(gone);
    (
        jar,
        allowed_return(state, &value).map(|t| t.url().to_string()),
    )
}
