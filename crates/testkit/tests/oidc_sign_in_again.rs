//! `prompt=login` and `max_age` ask for a fresh sign-in. Any site can send a browser to the
//! authorization endpoint with them, so the request alone must sign nobody out: the session
//! stays usable until the fresh sign-in succeeds, and only then is it replaced.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret;
use serde_json::Value;
use time::Duration;
use twofold_core::Clock;
use twofold_core::model::RequestMeta;
use twofold_core::oidc::jwt::SigningAlg;
use twofold_core::service::NewClient;
use twofold_testkit::totp::{csrf_of, handed_back};
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app};

const PW: &str = "correct horse battery staple 42";
const CB: &str = "https://app.example/callback";

/// A confidential first-party client (no consent screen, no PKCE needed).
async fn add_client(app: &TestApp) -> (String, String) {
    let (c, secret) = app
        .core
        .oidc_add_client(
            NewClient {
                name: "Acme Shop".into(),
                redirect_uris: vec![CB.into()],
                post_logout_redirect_uris: vec![],
                confidential: true,
                first_party: true,
                id_token_alg: SigningAlg::Es256,
            },
            &RequestMeta::default(),
        )
        .await
        .unwrap();
    (c.id, secret.unwrap().expose_secret().to_owned())
}

fn authorize_url(app: &TestApp, client_id: &str, extra: &str) -> String {
    app.at(&format!(
        "/oidc/authorize?response_type=code&scope=openid&client_id={client_id}&redirect_uri={}&state=s&{extra}",
        url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>()
    ))
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn account(app: &TestApp, c: &reqwest::Client) -> (u16, Value) {
    let r = c.get(app.at("/api/v1/account")).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The `auth_time` of the ID token the code is redeemed for.
async fn auth_time_of(app: &TestApp, client: &(String, String), code: &str) -> i64 {
    let tokens: Value = reqwest::Client::new()
        .post(app.at("/oidc/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CB),
            ("client_id", client.0.as_str()),
            ("client_secret", client.1.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().expect("an id_token");
    let payload = URL_SAFE_NO_PAD
        .decode(id_token.split('.').nth(1).unwrap())
        .unwrap();
    let claims: Value = serde_json::from_slice(&payload).unwrap();
    claims["auth_time"].as_i64().expect("auth_time")
}

async fn a_request_alone_signs_nobody_out(db: TestDb) {
    let app = spawn_app(db).await;
    let email = "ada@example.com";
    app.verified_account(email, PW).await;
    let c = app.client();
    assert_eq!(app.log_in_json(&c, email, PW).await["status"], "signed_in");
    let (_, before) = account(&app, &c).await;
    let client = add_client(&app).await;
    app.clock.advance(Duration::minutes(5));

    // Opened from another site; the browser is sent to sign in again and goes no further.
    for extra in ["prompt=login", "max_age=0"] {
        let r = c
            .get(authorize_url(&app, &client.0, extra))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{extra}");
        assert_eq!(location(&r), "/login?again=1", "{extra}");
        let html = app.get_text(&c, "/login?again=1").await;
        assert!(html.contains("action=\"/login\""), "{html}");
        assert!(html.contains(email), "the address is filled in: {html}");
        let (status, now) = account(&app, &c).await;
        assert_eq!(status, 200, "{extra}: the session is still usable");
        assert_eq!(now["session"]["id"], before["session"]["id"], "{extra}");
    }

    // The fresh sign-in (for the max_age=0 request, a second after it was made): a new
    // session with a fresh auth_time, and the old one ends.
    let html = app.get_text(&c, "/login?again=1").await;
    let r = c
        .post(app.at("/login"))
        .form(&[
            ("csrf", csrf_of(&html).as_str()),
            ("email", email),
            ("password", PW),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), location(&r).as_str()),
        (303, "/account")
    );
    let signed_in_at = app.clock.now().unix_timestamp();
    app.clock.advance(Duration::seconds(1));
    let r = c.get(app.at("/account")).send().await.unwrap();
    let next = location(&r);
    assert!(next.contains("/oidc/authorize/continue"), "{next}");
    let html = c.get(&next).send().await.unwrap().text().await.unwrap();
    let back = handed_back(&html).unwrap_or_else(|| panic!("not handed back: {html}"));
    let code = url::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    assert_eq!(auth_time_of(&app, &client, &code).await, signed_in_at);

    let (status, after) = account(&app, &c).await;
    assert_eq!(status, 200);
    assert_ne!(after["session"]["id"], before["session"]["id"]);
    let sessions: Value = c
        .get(app.at("/api/v1/account/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&Value> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, [&after["session"]["id"]], "the replaced session ended");
}
both_backends!(
    a_request_alone_signs_nobody_out_case,
    a_request_alone_signs_nobody_out
);
