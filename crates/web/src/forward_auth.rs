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
use twofold_core::service::{ForwardAuth, NextStep};
use url::Url;

/// How long a sign-in may take and still return to where it started.
const RETURN_TTL: Duration = Duration::minutes(30);

/// The request the proxy is asking about: nginx sends `X-Original-URL` (as our example
/// configuration sets it); Traefik and Caddy send `X-Forwarded-Proto`, `-Host` and `-Uri`.
fn original_url(headers: &HeaderMap) -> Option<Url> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(u) = get("x-original-url") {
        return Url::parse(u).ok();
    }
    let host = get("x-forwarded-host")?;
    let proto = get("x-forwarded-proto").unwrap_or("https");
    let uri = get("x-forwarded-uri").unwrap_or("/");
    Url::parse(&format!("{proto}://{host}{uri}")).ok()
}

fn host_of(url: &Url) -> String {
    match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    }
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
        (status = 400, body = crate::api::schema::Problem, description = "The proxy sent no original URL"),
    ))]
pub async fn check(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let original = original_url(&headers).ok_or_else(|| {
        CoreError::invalid(
            "x-forwarded-uri",
            "Send X-Original-URL, or X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-Uri.",
        )
    })?;
    let token = session_token(&jar, &state);
    match state
        .core()
        .forward_auth(token.as_deref(), &host_of(&original), original.path())
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
            let to = start_url(&state, &original);
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

/// Only addresses of hosts the rules name (or Twofold itself) are returned to: anything else
/// would make the sign-in an open redirect.
fn allowed_return(state: &AppState, rd: &str) -> Option<Url> {
    let url = Url::parse(rd).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() {
        return None;
    }
    let own = Url::parse(&state.settings().public_url).ok();
    let ours = own.is_some_and(|o| o.host_str() == url.host_str());
    (ours || state.core().forward_auth_host(url.host_str()?)).then_some(url)
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
    let next = match state
        .core()
        .forward_auth_next(token.as_deref(), &host_of(&rd), rd.path())
        .await
    {
        Ok(n) => n,
        Err(e) => return crate::pages::error_page(&state, e),
    };
    let to = match next {
        NextStep::Return => return Redirect::to(rd.as_str()).into_response(),
        NextStep::SignIn => "/login",
        // Step-up returns to /account, which sends the browser on to `rd`.
        NextStep::StepUp => "/account/step-up?next=/account",
        NextStep::SetUp { .. } => "/account/security",
    };
    let jar = remember_return(&state, jar, rd.to_string());
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
    (jar, allowed_return(state, &value).map(|u| u.to_string()))
}
