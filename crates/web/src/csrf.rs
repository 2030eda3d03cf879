//! Cross-site request forgery defences.
//!
//! Forms carry a tag derived (keyed hash) from a random per-browser cookie: a signed double
//! submit, which needs no server state and works before sign-in. On top of that, any
//! state-changing request whose `Origin` or `Sec-Fetch-Site` says it came from another site is
//! refused, which also covers the JSON API.

use crate::error::problem;
use crate::session::{build_cookie, cookie_name};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Makes sure the browser has a CSRF cookie; returns the jar to send and the tag for forms.
pub fn ensure(jar: CookieJar, state: &AppState) -> (CookieJar, String) {
    if let Some(c) = jar.get(cookie_name(state, "csrf")) {
        let tag = state.core().csrf_tag(c.value());
        return (jar, tag);
    }
    let secret = state.core().new_secret().expose_secret().to_owned();
    let tag = state.core().csrf_tag(&secret);
    (jar.add(build_cookie(state, "csrf", secret, None)), tag)
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A form body whose CSRF tag has been checked against the browser's cookie.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(req.headers());
        let cookie = jar
            .get(cookie_name(state, "csrf"))
            .map(|c| c.value().to_owned());
        let body = Bytes::from_request(req, state).await.map_err(|_| {
            crate::pages::message_page(
                state,
                StatusCode::BAD_REQUEST,
                "Bad request",
                "The form could not be read.",
                None,
            )
        })?;
        let submitted: CsrfField = serde_urlencoded::from_bytes(&body).unwrap_or(CsrfField {
            csrf: String::new(),
        });
        let valid = cookie
            .as_deref()
            .is_some_and(|c| state.core().csrf_tag_matches(c, &submitted.csrf));
        if !valid {
            return Err(crate::pages::message_page(
                state,
                StatusCode::FORBIDDEN,
                "This form has expired",
                "For your security, the form could not be accepted. Go back, reload the page and try again.",
                None,
            ));
        }
        serde_urlencoded::from_bytes(&body)
            .map(CsrfForm)
            .map_err(|_| {
                crate::pages::message_page(
                    state,
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    "Some fields of the form were missing or malformed.",
                    None,
                )
            })
    }
}

/// Refuses state-changing requests sent from another site.
pub async fn reject_cross_origin(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || crate::oidc::cross_site_allowed(req.uri().path());
    if !safe {
        let headers = req.headers();
        let origin_ok = headers
            .get("origin")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|o| o == state.settings().origin());
        let fetch_site_ok = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|s| matches!(s, "same-origin" | "none"));
        if !origin_ok || !fetch_site_ok {
            tracing::warn!(
                origin = ?headers.get("origin"),
                sec_fetch_site = ?headers.get("sec-fetch-site"),
                expected = state.settings().origin(),
                "refused a cross-site request"
            );
            return problem(
                StatusCode::FORBIDDEN,
                "cross-origin",
                "Cross-site requests are not allowed.",
                None,
            );
        }
    }
    next.run(req).await
}
