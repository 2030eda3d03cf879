//! The session cookie and the extractors that turn it into a signed-in account.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use time::Duration;
use twofold_core::CoreError;
use twofold_core::service::SessionContext;

/// `__Host-` cookies must be `Secure`, which plain-http development cannot send back, so the
/// prefix (and `Secure`) is used exactly when the public URL is https.
pub fn cookie_name(state: &AppState, base: &'static str) -> &'static str {
    let shared = state.settings().cookie_domain.is_some();
    match (state.settings().secure_cookies(), base) {
        // `__Host-` forbids a Domain attribute; a session shared with subdomains is `__Secure-`.
        (true, "session") if shared => "__Secure-twofold_session",
        (true, "session") => "__Host-twofold_session",
        (false, "session") => "twofold_session",
        (true, "passkey") => "__Host-twofold_passkey",
        (false, "passkey") => "twofold_passkey",
        (true, "trusted") => "__Host-twofold_trusted",
        (false, "trusted") => "twofold_trusted",
        (true, "reauth") => "__Host-twofold_reauth",
        (false, "reauth") => "twofold_reauth",
        (true, "return") => "__Host-twofold_return",
        (false, "return") => "twofold_return",
        (true, "device") => "__Host-twofold_device",
        (false, "device") => "twofold_device",
        (true, _) => "__Host-twofold_csrf",
        (false, _) => "twofold_csrf",
    }
}

pub fn build_cookie(
    state: &AppState,
    base: &'static str,
    value: String,
    max_age: Option<Duration>,
) -> Cookie<'static> {
    let mut c = Cookie::build((cookie_name(state, base), value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.settings().secure_cookies());
    if let Some(age) = max_age {
        c = c.max_age(age);
    }
    // Only the session is shared with subdomains (forward-auth behind one login); every other
    // cookie is read by Twofold alone.
    if base == "session"
        && let Some(domain) = &state.settings().cookie_domain
    {
        c = c.domain(domain.clone());
    }
    c.build()
}

pub fn session_cookie(state: &AppState, token: String) -> Cookie<'static> {
    let lifetime = state.core().settings().session_lifetime;
    build_cookie(state, "session", token, Some(lifetime))
}

pub fn removal_cookie(state: &AppState) -> Cookie<'static> {
    let mut c = build_cookie(state, "session", String::new(), Some(Duration::ZERO));
    c.make_removal();
    c
}

/// The browser's device cookie, if it has a well-formed one.
pub fn device_cookie(jar: &CookieJar, state: &AppState) -> Option<String> {
    jar.get(cookie_name(state, "device"))
        .map(|c| c.value().to_owned())
        .filter(|v| twofold_core::token::decode_token(v).is_some())
}

/// The browser's device cookie, or a new one for a browser without one; either way (re)set in
/// the jar for as long as a browser stays known, so a browser in use keeps its cookie as long
/// as its record.
pub fn device_token(jar: CookieJar, state: &AppState) -> (CookieJar, String) {
    let token = device_cookie(&jar, state).unwrap_or_else(|| {
        secrecy::ExposeSecret::expose_secret(&state.core().new_device_token()).to_owned()
    });
    let jar = jar.add(build_cookie(
        state,
        "device",
        token.clone(),
        Some(twofold_core::device::KNOWN_DEVICE_LIFETIME),
    ));
    (jar, token)
}

/// The "remember this browser" token, if this browser has one.
pub fn trusted_browser_token(jar: &CookieJar, state: &AppState) -> Option<String> {
    jar.get(cookie_name(state, "trusted"))
        .map(|c| c.value().to_owned())
}

/// Remembers this browser after a good second factor, when the user asked for it.
pub async fn remember_browser(
    state: &AppState,
    jar: CookieJar,
    remember: bool,
    session: &twofold_core::model::Session,
    meta: &twofold_core::model::RequestMeta,
) -> Result<CookieJar, twofold_core::CoreError> {
    if !remember {
        return Ok(jar);
    }
    let core = state.core();
    Ok(match core.remember_browser(session, meta).await? {
        Some(token) => {
            let ttl = core.settings().trusted_browser_ttl.unwrap_or_default();
            jar.add(build_cookie(
                state,
                "trusted",
                secrecy::ExposeSecret::expose_secret(&token).to_owned(),
                Some(ttl),
            ))
        }
        None => jar,
    })
}

pub fn session_token(jar: &CookieJar, state: &AppState) -> Option<String> {
    jar.get(cookie_name(state, "session"))
        .map(|c| c.value().to_owned())
}

/// The session behind the cookie: a full one, or a forced-enrollment one, which each extractor
/// below must turn away except [`EnrollingSession`] (and [`PageSession`], by redirecting it
/// to the set-up page).
async fn resolve(parts: &mut Parts, state: &AppState) -> Result<SessionContext, CoreError> {
    let jar = CookieJar::from_headers(&parts.headers);
    let token = session_token(&jar, state).ok_or(CoreError::Unauthenticated)?;
    state.core().authenticate_enrolling(&token).await
}

fn is_full(ctx: &SessionContext) -> bool {
    ctx.session.kind == twofold_core::model::SessionKind::Full
}

/// A signed-in page visitor; anyone else is sent to the login page.
pub struct PageSession(pub SessionContext);

impl FromRequestParts<AppState> for PageSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match resolve(parts, state).await {
            Ok(ctx) if is_full(&ctx) => Ok(Self(ctx)),
            // The policy wants 2FA set up before anything else.
            Ok(_) => Err(Redirect::to("/login/set-up").into_response()),
            Err(CoreError::Unauthenticated) => Err(Redirect::to("/login").into_response()),
            Err(e) => Err(crate::pages::error_page(state, e)),
        }
    }
}

/// A visitor who may add a factor: signed in, or in the forced-enrollment step after the
/// password (the policy requires 2FA the account lacks). Anyone else is sent to the login page.
pub struct EnrollingSession(pub SessionContext);

impl FromRequestParts<AppState> for EnrollingSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match resolve(parts, state).await {
            Ok(ctx) => Ok(Self(ctx)),
            Err(CoreError::Unauthenticated) => Err(Redirect::to("/login").into_response()),
            Err(e) => Err(crate::pages::error_page(state, e)),
        }
    }
}

/// Signed in or not; pages like /login use it to skip what is already done.
pub struct MaybeSession(pub Option<SessionContext>);

impl FromRequestParts<AppState> for MaybeSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match resolve(parts, state).await {
            Ok(ctx) if is_full(&ctx) => Ok(Self(Some(ctx))),
            Ok(_) | Err(CoreError::Unauthenticated) => Ok(Self(None)),
            Err(e) => Err(crate::pages::error_page(state, e)),
        }
    }
}

/// A signed-in API caller; anyone else gets 401 problem+json.
pub struct ApiSession(pub SessionContext);

impl FromRequestParts<AppState> for ApiSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match resolve(parts, state).await {
            Ok(ctx) if is_full(&ctx) => Ok(Self(ctx)),
            Ok(_) => Err(ApiError(CoreError::Unauthenticated)),
            Err(e) => Err(ApiError(e)),
        }
    }
}
