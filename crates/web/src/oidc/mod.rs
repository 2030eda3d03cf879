//! The OpenID Connect provider over HTTP: discovery, JWK Set, the authorization endpoint
//! with its consent screen, token and userinfo ([`token`]), and RP-initiated logout. Each
//! handler shapes one core call's answer.

mod token;

use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::pages::{message_page, render};
use crate::session::{MaybeSession, PageSession, session_token};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use serde::Deserialize;
use twofold_core::oidc::{ACR_VALUES, AuthorizeParams, SCOPES};
use twofold_core::service::{Authorize, Logout, LogoutParams, NextStep};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oidc/jwks", get(jwks))
        .route("/oidc/authorize", get(authorize).post(authorize_form))
        .route("/oidc/authorize/continue", get(resume))
        .route("/oidc/consent", post(consent))
        .route("/oidc/token", post(token::token).options(token::preflight))
        .route(
            "/oidc/userinfo",
            get(token::userinfo)
                .post(token::userinfo)
                .options(token::preflight),
        )
        .route("/oidc/logout", get(logout).post(logout_form))
        .route("/oidc/logout/confirm", post(logout_confirm))
}

/// Paths whose POSTs come from other sites by design (an application's form or server), and
/// which no cookie alone can make do anything the GET form could not.
pub fn cross_site_allowed(path: &str) -> bool {
    matches!(
        path,
        "/oidc/authorize" | "/oidc/token" | "/oidc/userinfo" | "/oidc/logout"
    )
}

fn public(mut res: Response) -> Response {
    // Browser apps (public clients) read these from their own origin.
    res.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    res
}

async fn discovery(State(state): State<AppState>) -> Response {
    let iss = &state.settings().public_url;
    public(
        Json(serde_json::json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/oidc/authorize"),
            "token_endpoint": format!("{iss}/oidc/token"),
            "userinfo_endpoint": format!("{iss}/oidc/userinfo"),
            "jwks_uri": format!("{iss}/oidc/jwks"),
            "end_session_endpoint": format!("{iss}/oidc/logout"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": SCOPES,
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "acr", "azp", "sid", "email", "email_verified"],
            "acr_values_supported": ACR_VALUES,
            "prompt_values_supported": ["none", "login", "consent"],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "authorization_response_iss_parameter_supported": true,
        }))
        .into_response(),
    )
}

async fn jwks(State(state): State<AppState>) -> Response {
    match state.core().oidc_jwks().await {
        Ok(set) => public(Json(set).into_response()),
        Err(e) => crate::error::ApiError(e).into_response(),
    }
}

async fn authorize(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    let token = session_token(&jar, &state);
    let outcome = state
        .core()
        .oidc_authorize(token.as_deref(), &params, &meta)
        .await;
    answer(&state, jar, None, outcome, false)
}

async fn authorize_form(
    state: State<AppState>,
    jar: CookieJar,
    client: Client,
    Form(params): Form<AuthorizeParams>,
) -> Response {
    authorize(state, jar, client, Query(params)).await
}

#[derive(Deserialize)]
struct ResumeQuery {
    #[serde(default)]
    request: String,
}

/// Reached after a sign-in, step-up or consent form: a redirect from here would be part of that
/// form's navigation, so the application is handed the browser by a page instead.
async fn resume(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    MaybeSession(user): MaybeSession,
    Query(q): Query<ResumeQuery>,
) -> Response {
    let token = session_token(&jar, &state);
    let outcome = state
        .core()
        .oidc_continue(token.as_deref(), &q.request, &meta)
        .await;
    answer(&state, jar, user.as_ref(), outcome, true)
}

#[derive(Deserialize)]
struct ConsentForm {
    request: String,
    decision: String,
}

async fn consent(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    PageSession(ctx): PageSession,
    CsrfForm(form): CsrfForm<ConsentForm>,
) -> Response {
    let token = session_token(&jar, &state).unwrap_or_default();
    let outcome = state
        .core()
        .oidc_consent(&ctx, &token, &form.request, form.decision == "allow", &meta)
        .await;
    answer(&state, jar, Some(&ctx), outcome, true)
}

/// Hands the browser back to an application.
pub(crate) fn hand_back(state: &AppState, jar: CookieJar, url: &str, after_form: bool) -> Response {
    if !after_form {
        return (jar, Redirect::to(url)).into_response();
    }
    let app = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "the application".into());
    render(
        state,
        jar,
        None,
        StatusCode::OK,
        "continue.html",
        context! { url, app },
    )
}

fn answer(
    state: &AppState,
    jar: CookieJar,
    user: Option<&twofold_core::service::SessionContext>,
    outcome: Result<Authorize, twofold_core::CoreError>,
    after_form: bool,
) -> Response {
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return crate::pages::error_page(state, e),
    };
    match outcome {
        Authorize::Redirect(url) => hand_back(state, jar, &url, after_form),
        Authorize::Refuse(why) => message_page(
            state,
            StatusCode::BAD_REQUEST,
            "This sign-in cannot go on",
            why,
            None,
        ),
        Authorize::Consent {
            request_id,
            client_name,
            scope,
        } => render(
            state,
            jar,
            user,
            StatusCode::OK,
            "oidc_consent.html",
            context! { client => client_name, scope, request => request_id },
        ),
        Authorize::Interact { next, request_id } => {
            let back = continue_url(state, &request_id);
            let to = match next {
                NextStep::Return => return Redirect::to(&back).into_response(),
                NextStep::SignIn => "/login",
                NextStep::StepUp => "/account/step-up?next=/account",
                NextStep::SetUp { .. } => "/account/security",
            };
            let jar = crate::forward_auth::remember_return(state, jar, back);
            (jar, Redirect::to(to)).into_response()
        }
        Authorize::SignInAgain { request_id } => {
            let back = continue_url(state, &request_id);
            let jar = crate::forward_auth::remember_return(state, jar, back);
            (jar, Redirect::to(crate::pages::SIGN_IN_AGAIN)).into_response()
        }
    }
}

fn continue_url(state: &AppState, request_id: &str) -> String {
    format!(
        "{}/oidc/authorize/continue?request={request_id}",
        state.settings().public_url
    )
}

async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    MaybeSession(user): MaybeSession,
    Query(params): Query<LogoutParams>,
) -> Response {
    end_session(&state, jar, meta, user, params, false).await
}

async fn logout_form(
    state: State<AppState>,
    jar: CookieJar,
    client: Client,
    user: MaybeSession,
    Form(params): Form<LogoutParams>,
) -> Response {
    logout(state, jar, client, user, Query(params)).await
}

async fn logout_confirm(
    State(state): State<AppState>,
    jar: CookieJar,
    Client(meta): Client,
    MaybeSession(user): MaybeSession,
    CsrfForm(params): CsrfForm<LogoutParams>,
) -> Response {
    end_session(&state, jar, meta, user, params, true).await
}

async fn end_session(
    state: &AppState,
    jar: CookieJar,
    meta: twofold_core::model::RequestMeta,
    user: Option<twofold_core::service::SessionContext>,
    params: LogoutParams,
    confirmed: bool,
) -> Response {
    let token = session_token(&jar, state);
    let outcome = state
        .core()
        .oidc_logout(token.as_deref(), &params, confirmed, &meta)
        .await;
    match outcome {
        Err(e) => crate::pages::error_page(state, e),
        Ok(Logout::Confirm { client_name }) => render(
            state,
            jar,
            user.as_ref(),
            StatusCode::OK,
            "oidc_logout.html",
            context! { client => client_name, params => minijinja::Value::from(minijinja::value::Serde(&params)) },
        ),
        Ok(Logout::Done { redirect }) => {
            let jar = jar.add(crate::session::removal_cookie(state));
            match redirect {
                Some(url) => hand_back(state, jar, &url, confirmed),
                None => (
                    jar,
                    message_page(
                        state,
                        StatusCode::OK,
                        "You are signed out",
                        "You can close this window.",
                        Some(crate::pages::Link {
                            href: "/login",
                            label: "Sign in again",
                        }),
                    ),
                )
                    .into_response(),
            }
        }
    }
}
