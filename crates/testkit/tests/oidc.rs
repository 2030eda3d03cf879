//! The OpenID Connect provider, driven by an independent relying party (the `openidconnect`
//! crate): discovery, code + PKCE, the ID token verified against the JWK Set with `amr`,
//! `acr` and `auth_time`; refresh rotation and reuse; code replay; step-up through
//! `acr_values`; `prompt=login`; consent; refused requests; logout.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreProviderMetadata,
};
use openidconnect::{
    AuthenticationContextClass, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use time::Duration;
use twofold_core::Clock;
use twofold_core::model::RequestMeta;
use twofold_core::oidc::jwt::SigningAlg;
use twofold_core::service::NewClient;
use twofold_testkit::totp::handed_back;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app};

const PW: &str = "correct horse battery staple 42";
const CB: &str = "https://app.example/callback";

type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

type HttpFuture =
    Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, reqwest::Error>> + Send>>;

/// The relying party's HTTP: plain reqwest, without Twofold's cookies.
fn rp_http() -> impl Fn(openidconnect::HttpRequest) -> HttpFuture {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    move |req| {
        let client = client.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let res = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut out = openidconnect::http::Response::builder().status(res.status());
            for (k, v) in res.headers() {
                out = out.header(k, v);
            }
            let body = res.bytes().await?.to_vec();
            Ok(out.body(body).unwrap())
        })
    }
}

async fn add_client(
    app: &TestApp,
    confidential: bool,
    first_party: bool,
) -> (String, Option<String>) {
    add_client_signing(app, confidential, first_party, SigningAlg::Es256).await
}

async fn add_client_signing(
    app: &TestApp,
    confidential: bool,
    first_party: bool,
    id_token_alg: SigningAlg,
) -> (String, Option<String>) {
    use secrecy::ExposeSecret;
    let (c, secret) = app
        .core
        .oidc_add_client(
            NewClient {
                name: "Acme Shop".into(),
                redirect_uris: vec![CB.into()],
                post_logout_redirect_uris: vec!["https://app.example/bye".into()],
                confidential,
                first_party,
                id_token_alg,
            },
            &RequestMeta::default(),
        )
        .await
        .unwrap();
    (c.id, secret.map(|s| s.expose_secret().to_owned()))
}

async fn relying_party(app: &TestApp, id: &str, secret: Option<&str>) -> Rp {
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.url.clone()).unwrap(), &rp_http())
            .await
            .expect("discovery");
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(id.into()),
        secret.map(|s| ClientSecret::new(s.into())),
    )
    .set_redirect_uri(RedirectUrl::new(CB.into()).unwrap())
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn query(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// An account with an authenticator app, signed in with password and code on `c`.
async fn two_factor_account(app: &TestApp, c: &reqwest::Client, email: &str) -> String {
    app.verified_account(email, PW).await;
    app.log_in_json(c, email, PW).await;
    let (secret, _) = app.enroll_totp(c, "phone").await;
    app.log_out(c).await;
    app.clock.advance(Duration::seconds(30));
    let v = app.log_in_json(c, email, PW).await;
    assert_eq!(v["status"], "second_factor_required", "{v}");
    let r = app.second_factor(c, &app.code_now(&secret)).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    secret
}

struct Started {
    url: String,
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

fn start(rp: &Rp, extra: &[(&str, &str)]) -> Started {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge);
    for (k, v) in extra {
        req = req.add_extra_param(*k, *v);
    }
    let (url, state, nonce) = req.url();
    Started {
        url: url.to_string(),
        state,
        nonce,
        verifier,
    }
}

async fn redeem(
    app: &TestApp,
    rp: &Rp,
    started: Started,
    code: &str,
) -> (CoreIdTokenClaims, openidconnect::core::CoreTokenResponse) {
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code.into()))
        .unwrap()
        .set_pkce_verifier(started.verifier)
        .request_async(&rp_http())
        .await
        .expect("token exchange");
    let now = app.clock.now();
    let verifier = rp.id_token_verifier().set_time_fn(move || chrono_like(now));
    let claims = tokens
        .id_token()
        .expect("an id_token")
        .claims(&verifier, &started.nonce)
        .expect("the id_token verifies against the JWK Set")
        .clone();
    (claims, tokens)
}

/// The relying party's refresh-token grant; an error comes back as its debug text (with the
/// OAuth `error` code in it).
async fn refresh_with(
    rp: &Rp,
    token: &RefreshToken,
) -> Result<openidconnect::core::CoreTokenResponse, String> {
    rp.exchange_refresh_token(token)
        .unwrap()
        .request_async(&rp_http())
        .await
        .map_err(|e| format!("{e:?}"))
}

fn chrono_like(t: time::OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), 0).unwrap()
}

fn amr(claims: &CoreIdTokenClaims) -> Vec<String> {
    claims
        .auth_method_refs()
        .map(|v| v.iter().map(|a| a.to_string()).collect())
        .unwrap_or_default()
}

async fn code_flow(db: TestDb) {
    let app = spawn_app(db).await;
    let c = app.client();
    let email = "ada@example.com";
    two_factor_account(&app, &c, email).await;
    let signed_in_at = app.clock.now().unix_timestamp();
    let (id, secret) = add_client(&app, true, true).await;
    let rp = relying_party(&app, &id, secret.as_deref()).await;

    let started = start(&rp, &[]);
    let r = c.get(&started.url).send().await.unwrap();
    assert_eq!(
        r.status(),
        303,
        "a signed-in first-party user goes straight back"
    );
    let back = location(&r);
    assert!(back.starts_with(CB), "{back}");
    assert_eq!(
        query(&back, "state").as_deref(),
        Some(started.state.secret().as_str())
    );
    assert_eq!(query(&back, "iss").as_deref(), Some(app.url.as_str()));
    let code = query(&back, "code").unwrap();
    let (claims, tokens) = redeem(&app, &rp, started, &code).await;
    assert_eq!(claims.subject().as_str().len(), 36, "the account id");
    assert_eq!(claims.email().map(|e| e.as_str()), Some(email));
    assert_eq!(claims.email_verified(), Some(true));
    let methods = amr(&claims);
    assert!(methods.contains(&"pwd".to_owned()), "{methods:?}");
    assert!(methods.contains(&"otp".to_owned()), "{methods:?}");
    assert!(methods.contains(&"mfa".to_owned()), "{methods:?}");
    assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("aal2"));
    let auth_time = claims.auth_time().unwrap().timestamp();
    assert!(
        (auth_time - signed_in_at).abs() <= 1,
        "{auth_time} vs {signed_in_at}"
    );

    // The access token reads userinfo.
    let info: serde_json::Value = reqwest::Client::new()
        .get(app.at("/oidc/userinfo"))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], email);
    assert_eq!(info["sub"], claims.subject().as_str());

    // A code works once; its second use also revokes what the first one bought.
    let replay = rp
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .request_async(&rp_http())
        .await;
    assert!(
        format!("{replay:?}").contains("invalid_grant"),
        "{replay:?}"
    );
    let r = reqwest::Client::new()
        .get(app.at("/oidc/userinfo"))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the replayed code's tokens are revoked");
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    // Refresh tokens rotate; the old one coming back revokes the family.
    let started = start(&rp, &[]);
    let back = location(&c.get(&started.url).send().await.unwrap());
    let (_, tokens) = redeem(&app, &rp, started, &query(&back, "code").unwrap()).await;
    let first = tokens.refresh_token().unwrap().clone();
    let rotated = refresh_with(&rp, &first).await.expect("refresh");
    let second = rotated.refresh_token().unwrap().clone();
    assert_ne!(first.secret(), second.secret());
    let id_token = rotated.id_token().unwrap();
    let refreshed = id_token
        .claims(&rp.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
        .unwrap();
    assert_eq!(
        refreshed.auth_time().unwrap().timestamp(),
        auth_time,
        "the sign-in's time"
    );
    let reuse = refresh_with(&rp, &first).await;
    assert!(format!("{reuse:?}").contains("invalid_grant"), "{reuse:?}");
    let after = refresh_with(&rp, &second).await;
    assert!(
        format!("{after:?}").contains("invalid_grant"),
        "family revoked: {after:?}"
    );

    // A new password (new security stamp) ends every grant given before it.
    let started = start(&rp, &[]);
    let back = location(&c.get(&started.url).send().await.unwrap());
    let (_, tokens) = redeem(&app, &rp, started, &query(&back, "code").unwrap()).await;
    let refresh = RefreshToken::new(tokens.refresh_token().unwrap().secret().clone());
    let r = c
        .post(app.at("/api/v1/account/password"))
        .json(&serde_json::json!({"current_password": PW, "new_password": "an entirely new passphrase 7"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let stale = refresh_with(&rp, &refresh).await;
    assert!(format!("{stale:?}").contains("invalid_grant"), "{stale:?}");
}
both_backends!(code_flow_case, code_flow);

async fn refused(db: TestDb) {
    let app = spawn_app(db).await;
    let c = app.client();
    // A browser app's preflight for userinfo is answered (no cookies are involved).
    let r = c
        .request(reqwest::Method::OPTIONS, app.at("/oidc/userinfo"))
        .header("origin", "https://spa.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(
        r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("Authorization")
    );
    let (id, secret) = add_client(&app, true, true).await;
    let (public_id, _) = add_client(&app, false, true).await;
    let authorize = |params: &[(&str, &str)]| {
        let mut url = url::Url::parse(&app.at("/oidc/authorize")).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url.to_string()
    };
    // A wrong redirect URI is never redirected to.
    for uri in [
        "https://evil.example/callback",
        "https://app.example/callback/x",
    ] {
        let r = c
            .get(authorize(&[
                ("response_type", "code"),
                ("client_id", &id),
                ("redirect_uri", uri),
                ("scope", "openid"),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.headers().get("location").is_none());
    }
    // An unknown client neither.
    let r = c
        .get(authorize(&[("client_id", "nope"), ("redirect_uri", CB)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A public client without PKCE: back with the error and the state.
    let r = c
        .get(authorize(&[
            ("response_type", "code"),
            ("client_id", &public_id),
            ("redirect_uri", CB),
            ("scope", "openid"),
            ("state", "s1"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let back = location(&r);
    assert_eq!(query(&back, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query(&back, "state").as_deref(), Some("s1"));
    // prompt=none and nobody signed in.
    let r = c
        .get(authorize(&[
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", CB),
            ("scope", "openid"),
            ("prompt", "none"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        query(&location(&r), "error").as_deref(),
        Some("login_required")
    );
    // Not signed in: to the login page, which comes back here.
    let r = c
        .get(authorize(&[
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", CB),
            ("scope", "openid"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/login");
    // A wrong client secret, and a secret for a public client.
    let token = |form: Vec<(&'static str, String)>| {
        reqwest::Client::new()
            .post(app.at("/oidc/token"))
            .form(&form)
            .send()
    };
    let r = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", "x".into()),
        ("client_id", id.clone()),
        ("client_secret", "wrong".into()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    let r = reqwest::Client::new()
        .post(app.at("/oidc/token"))
        .basic_auth(&id, secret.as_deref())
        .form(&[("grant_type", "authorization_code"), ("code", "made-up")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let r = token(vec![
        ("grant_type", "password".into()),
        ("client_id", public_id.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
}
both_backends!(refused_case, refused);

/// Follows the hosted pages from `url` until the browser is handed back to the application;
/// `step_up` runs when a step-up is asked for.
async fn follow(app: &TestApp, c: &reqwest::Client, mut url: String) -> String {
    for _ in 0..8 {
        if url.starts_with(CB) {
            return url;
        }
        let r = c
            .get(if url.starts_with('/') {
                app.at(&url)
            } else {
                url.clone()
            })
            .send()
            .await
            .unwrap();
        if r.status() == 303 || r.status() == 302 {
            url = location(&r);
            continue;
        }
        let html = r.text().await.unwrap();
        return handed_back(&html).unwrap_or_else(|| panic!("stuck at {url}: {html}"));
    }
    panic!("too many redirects");
}

async fn step_up_and_prompt_login(db: TestDb) {
    let app = spawn_app(db).await;
    let c = app.client();
    let email = "grace@example.com";
    app.verified_account(email, PW).await;
    app.log_in_json(&c, email, PW).await;
    let (id, secret) = add_client(&app, true, true).await;
    let rp = relying_party(&app, &id, secret.as_deref()).await;

    // Password only: aal1, which is all a plain request gets.
    let started = start(&rp, &[]);
    let back = location(&c.get(&started.url).send().await.unwrap());
    let (claims, _) = redeem(&app, &rp, started, &query(&back, "code").unwrap()).await;
    assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("aal1"));
    assert_eq!(amr(&claims), ["pwd"]);

    // acr_values=aal2 without a second factor: set one up, prove it, come back with aal2.
    let started = start(&rp, &[("acr_values", "aal2")]);
    let r = c.get(&started.url).send().await.unwrap();
    assert_eq!(location(&r), "/account/security");
    let (secret, _) = app.enroll_totp(&c, "phone").await;
    let r = c.get(app.at("/account")).send().await.unwrap();
    let mut next = location(&r);
    assert!(next.contains("/oidc/authorize/continue"), "{next}");
    let r = c.get(&next).send().await.unwrap();
    let back = if location(&r).starts_with("/account/step-up") {
        app.clock.advance(Duration::seconds(30));
        let s = c
            .post(app.at("/api/v1/session/step-up"))
            .json(&serde_json::json!({ "code": app.code_now(&secret) }))
            .send()
            .await
            .unwrap();
        assert!(s.status().is_success(), "{}", s.text().await.unwrap());
        next = app.at("/account");
        follow(&app, &c, next).await
    } else {
        // Confirming the new authenticator proved it in this session.
        handed_back(&r.text().await.unwrap()).expect("handed back")
    };
    let (claims, _) = redeem(&app, &rp, started, &query(&back, "code").unwrap()).await;
    assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("aal2"));
    assert!(
        amr(&claims).contains(&"otp".to_owned()),
        "{:?}",
        amr(&claims)
    );
    let first_auth_time = claims.auth_time().unwrap().timestamp();

    // prompt=login: the session is not enough, however strong; a new sign-in is.
    app.clock.advance(Duration::minutes(2));
    let started = start(&rp, &[("prompt", "login")]);
    let r = c.get(&started.url).send().await.unwrap();
    assert_eq!(location(&r), "/login?again=1");
    assert_eq!(
        c.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "the session lasts until a new sign-in replaces it"
    );
    app.clock.advance(Duration::seconds(30));
    let v = app.log_in_json(&c, email, PW).await;
    assert_eq!(v["status"], "second_factor_required");
    assert_eq!(
        app.second_factor(&c, &app.code_now(&secret)).await.status(),
        200
    );
    let back = follow(&app, &c, app.at("/account")).await;
    let (claims, _) = redeem(&app, &rp, started, &query(&back, "code").unwrap()).await;
    assert!(claims.auth_time().unwrap().timestamp() > first_auth_time);

    // A remembered browser signs in with the password alone (aal1); acr_values=aal2 asks
    // for a step-up, and the code comes after it.
    app.log_out(&c).await;
    app.clock.advance(Duration::seconds(30));
    app.log_in_json(&c, email, PW).await;
    let r = c
        .post(app.at("/api/v1/session/second-factor"))
        .json(&serde_json::json!({ "code": app.code_now(&secret), "remember": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.log_out(&c).await;
    assert_eq!(app.log_in_json(&c, email, PW).await["status"], "signed_in");
    let started = start(&rp, &[("acr_values", "aal2")]);
    let r = c.get(&started.url).send().await.unwrap();
    assert_eq!(location(&r), "/account/step-up?next=/account");
    app.clock.advance(Duration::seconds(30));
    let s = c
        .post(app.at("/api/v1/session/step-up"))
        .json(&serde_json::json!({ "code": app.code_now(&secret) }))
        .send()
        .await
        .unwrap();
    assert_eq!(s.status(), 200);
    let back = follow(&app, &c, app.at("/account")).await;
    let (claims, _) = redeem(&app, &rp, started, &query(&back, "code").unwrap()).await;
    assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("aal2"));

    // acr_values=phr without a key: set-up of a key is asked for, nothing is issued.
    let started = start(&rp, &[("acr_values", "phr")]);
    let r = c.get(&started.url).send().await.unwrap();
    assert_eq!(location(&r), "/account/security");
    // prompt=none cannot ask: interaction_required.
    let started = start(&rp, &[("acr_values", "phr"), ("prompt", "none")]);
    let r = c.get(&started.url).send().await.unwrap();
    assert_eq!(
        query(&location(&r), "error").as_deref(),
        Some("interaction_required")
    );
}
both_backends!(step_up_and_prompt_login_case, step_up_and_prompt_login);

async fn consent_and_logout(db: TestDb) {
    let app = spawn_app(db).await;
    let c = app.client();
    let email = "lin@example.com";
    app.verified_account(email, PW).await;
    app.log_in_json(&c, email, PW).await;
    let (id, secret) = add_client(&app, true, false).await;
    let rp = relying_party(&app, &id, secret.as_deref()).await;

    // A third-party app asks first; "Deny" goes back with access_denied.
    let started = start(&rp, &[]);
    let r = c.get(&started.url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Allow Acme Shop to sign you in?"), "{html}");
    let csrf = twofold_testkit::totp::csrf_of(&html);
    let request = html
        .split("name=\"request\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let r = c
        .post(app.at("/oidc/consent"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("request", &request),
            ("decision", "deny"),
        ])
        .send()
        .await
        .unwrap();
    let back = handed_back(&r.text().await.unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"));

    // "Allow" gives a code, and the next request does not ask again.
    let started = start(&rp, &[]);
    let html = c
        .get(&started.url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let request = html
        .split("name=\"request\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let r = c
        .post(app.at("/oidc/consent"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("request", &request),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    let back = handed_back(&r.text().await.unwrap()).unwrap();
    let (claims, tokens) = redeem(&app, &rp, started, &query(&back, "code").unwrap()).await;
    assert_eq!(claims.email().map(|e| e.as_str()), Some(email));
    let started = start(&rp, &[]);
    let r = c.get(&started.url).send().await.unwrap();
    assert_eq!(r.status(), 303, "consent is remembered");

    // Logout without a hint asks; with the app's ID token it signs out and goes back.
    let r = c
        .get(app.at("/oidc/logout?post_logout_redirect_uri=https%3A%2F%2Fapp.example%2Fbye"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Sign out?"));
    assert_eq!(
        c.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let hint = tokens.id_token().unwrap().to_string();
    let mut url = url::Url::parse(&app.at("/oidc/logout")).unwrap();
    url.query_pairs_mut()
        .append_pair("id_token_hint", &hint)
        .append_pair("post_logout_redirect_uri", "https://app.example/bye")
        .append_pair("state", "st");
    let r = c.get(url.as_str()).send().await.unwrap();
    assert_eq!(location(&r), "https://app.example/bye?state=st");
    assert_eq!(
        c.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // An unregistered address is not redirected to.
    let r = c
        .get(
            app.at(
                "/oidc/logout?client_id=x&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F",
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("location").is_none());
    // Discovery names the acr values.
    let d: serde_json::Value = c
        .get(app.at("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        d["acr_values_supported"],
        serde_json::json!(["aal1", "aal2", "phr"])
    );
    let _ = AuthenticationContextClass::new("phr".into());
}
both_backends!(consent_and_logout_case, consent_and_logout);

/// An RS256 client gets RS256 ID tokens; rotating the keys keeps old tokens verifiable (the
/// retired key stays published) while new ones carry the new key id; `max_age` asks for a
/// fresh sign-in once the session is older.
async fn keys_and_max_age(db: TestDb) {
    let app = spawn_app(db).await;
    let c = app.client();
    let email = "rsa@example.com";
    app.verified_account(email, PW).await;
    app.log_in_json(&c, email, PW).await;
    let (id, secret) = add_client_signing(&app, true, true, SigningAlg::Rs256).await;
    let rp = relying_party(&app, &id, secret.as_deref()).await;
    let started = start(&rp, &[]);
    let back = location(&c.get(&started.url).send().await.unwrap());
    let (_, tokens) = redeem(&app, &rp, started, &query(&back, "code").unwrap()).await;
    let old_token = tokens.id_token().unwrap().to_string();
    let header = |t: &str| -> serde_json::Value {
        use base64::Engine;
        let h = t.split('.').next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(header(&old_token)["alg"], "RS256");

    let made = app.core.rotate_signing_keys().await.unwrap();
    assert_eq!(made.len(), 2, "ES256 and RS256 are both in use");
    let jwks: serde_json::Value = c
        .get(app.at("/oidc/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 4, "{jwks}");
    // A fresh discovery (new JWK Set): the old token still verifies, new ones use the new key.
    let rp = relying_party(&app, &id, secret.as_deref()).await;
    let old = openidconnect::core::CoreIdToken::from_str(&old_token).unwrap();
    old.claims(&rp.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
        .expect("a token signed before the rotation");
    let started = start(&rp, &[]);
    let back = location(&c.get(&started.url).send().await.unwrap());
    let (_, tokens) = redeem(&app, &rp, started, &query(&back, "code").unwrap()).await;
    let new_kid = header(&tokens.id_token().unwrap().to_string())["kid"].clone();
    assert_ne!(new_kid, header(&old_token)["kid"]);
    assert!(
        made.iter()
            .any(|k| serde_json::json!(k.id.to_string()) == new_kid)
    );

    // max_age: a session older than that is sent to sign in again.
    app.clock.advance(Duration::minutes(10));
    let started = start(&rp, &[("max_age", "300")]);
    assert_eq!(
        location(&c.get(&started.url).send().await.unwrap()),
        "/login?again=1"
    );

    // Housekeeping keeps what has not been expired for a day.
    assert_eq!(app.core.purge_oidc().await.unwrap(), 0);

    // A refresh token's lifetime runs from the sign-in: rotating does not extend it.
    let mut refresh = tokens.refresh_token().unwrap().clone();
    for days in [20, 9] {
        app.clock.advance(Duration::days(days));
        let rotated = refresh_with(&rp, &refresh).await;
        refresh = rotated
            .expect("within 30 days of the sign-in")
            .refresh_token()
            .unwrap()
            .clone();
    }
    app.clock.advance(Duration::days(2));
    let late = refresh_with(&rp, &refresh).await;
    assert!(format!("{late:?}").contains("invalid_grant"), "{late:?}");

    // Codes and tokens expired for more than a day are forgotten.
    assert!(app.core.purge_oidc().await.unwrap() >= 4);
}
both_backends!(keys_and_max_age_case, keys_and_max_age);
