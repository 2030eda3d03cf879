//! WebAuthn ceremonies without a browser: options, single use, expiry, binding to the session
//! or browser, and credential ids that are unique across accounts. The full ceremonies run in
//! Chromium with a virtual authenticator (e2e/).

use serde_json::Value;
use time::Duration;
use twofold_core::model::*;
use twofold_core::ports::{StoreError, WebauthnStore};
use twofold_testkit::totp::csrf_of;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app_with};

const PASSWORD: &str = "correct horse battery staple";

async fn app(db: TestDb) -> TestApp {
    spawn_app_with(db, |s| {
        // Browsers refuse IP addresses as relying-party ids; localhost is a secure context.
        let origin = s.public_url.replace("127.0.0.1", "localhost");
        s.relying_party.id = "localhost".into();
        s.relying_party.origins = vec![origin];
    })
    .await
}

async fn begin(app: &TestApp, c: &reqwest::Client, path: &str, kind: &str) -> reqwest::Response {
    let html = c
        .get(app.at("/account/security"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    c.post(app.at(path))
        .form(&[("csrf", csrf_of(&html).as_str()), ("kind", kind)])
        .send()
        .await
        .unwrap()
}

async fn finish(app: &TestApp, c: &reqwest::Client, ceremony: &str) -> (u16, String) {
    let html = c
        .get(app.at("/account/security"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = c
        .post(app.at("/account/security/keys/finish"))
        .form(&[
            ("csrf", csrf_of(&html).as_str()),
            ("ceremony", ceremony),
            ("credential", r#"{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"attestationObject":"AAAA","clientDataJSON":"AAAA"},"extensions":{}}"#),
            ("name", "Key"),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn ceremonies(db: TestDb) {
    let app = app(db).await;
    app.verified_account("kim@example.com", PASSWORD).await;
    let c = app.client();
    assert_eq!(
        app.log_in(&c, "kim@example.com", PASSWORD).await.status(),
        200
    );

    // Options for a passkey: a fresh challenge, our relying party, a discoverable credential
    // with user verification required.
    let r = begin(&app, &c, "/account/security/keys/begin", "passkey").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let pk = &body["options"]["publicKey"];
    assert_eq!(pk["rp"]["id"], "localhost");
    assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
    assert!(pk["challenge"].as_str().unwrap().len() >= 43);
    let ceremony = body["ceremony"].as_str().unwrap().to_owned();
    // A security key: user verification only preferred.
    let r = begin(&app, &c, "/account/security/keys/begin", "security_key").await;
    let sk: Value = r.json().await.unwrap();
    assert_eq!(
        sk["options"]["publicKey"]["authenticatorSelection"]["userVerification"],
        "preferred"
    );
    assert_ne!(sk["options"]["publicKey"]["challenge"], pk["challenge"]);

    // Another session cannot finish this session's ceremony.
    let other = app.client();
    assert_eq!(
        app.log_in(&other, "kim@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    let (status, html) = finish(&app, &other, &ceremony).await;
    assert_eq!(status, 400);
    assert!(html.contains("expired or was already used"), "{html}");
    // A response that does not verify uses the ceremony up; a second try is refused too.
    let (status, html) = finish(&app, &c, &ceremony).await;
    assert_eq!(status, 400);
    assert!(
        html.contains("could not be verified") || html.contains("could not be read"),
        "{html}"
    );
    let (status, html) = finish(&app, &c, &ceremony).await;
    assert_eq!(status, 400);
    assert!(html.contains("expired or was already used"), "{html}");

    // Five minutes and it is gone.
    let r = begin(&app, &c, "/account/security/keys/begin", "security_key").await;
    let late: Value = r.json().await.unwrap();
    app.clock
        .advance(Duration::minutes(5) + Duration::seconds(1));
    let (status, html) = finish(&app, &c, late["ceremony"].as_str().unwrap()).await;
    assert_eq!(status, 400);
    assert!(html.contains("expired or was already used"), "{html}");

    // Passkey sign-in: options without a user; the ceremony is tied to this browser by a cookie.
    let anon = app.client();
    let html = anon
        .get(app.at("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Sign in with a passkey"));
    let csrf = csrf_of(&html);
    let r = anon
        .post(app.at("/login/passkey/begin"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("twofold_passkey=")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["options"]["publicKey"]["userVerification"], "required");
    assert_eq!(body["options"]["mediation"], "conditional");
    let stranger = app.client();
    let html = stranger
        .get(app.at("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = stranger
        .post(app.at("/login/passkey/finish"))
        .form(&[
            ("csrf", csrf_of(&html).as_str()),
            ("ceremony", body["ceremony"].as_str().unwrap()),
            ("credential", "{}"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("started in another browser")
    );
}
both_backends!(ceremonies, ceremonies);

fn factor(owner: &str, id: uuid::Uuid, now: time::OffsetDateTime) -> Factor {
    Factor {
        id,
        owner: owner.into(),
        kind: "webauthn".into(),
        label: "Key".into(),
        status: FactorStatus::Active,
        key_id: "k".into(),
        secret: vec![1],
        params: Default::default(),
        last_step: -1,
        last_drift: 0,
        drift_matches: 0,
        created_at: now,
        expires_at: None,
        confirmed_at: Some(now),
        last_used_at: None,
        hint: Some("security key".into()),
    }
}

fn effects(now: time::OffsetDateTime) -> Effects {
    Effects {
        audit: AuditEvent {
            id: uuid::Uuid::now_v7(),
            at: now,
            account_id: None,
            event: "factor_added",
            ip: None,
            user_agent: None,
            detail: serde_json::json!({}),
        },
        mail: None,
        new_stamp: None,
    }
}

/// Store contract: a credential id is registered once, across every owner; counters only
/// move forward; a suspicious credential is no longer offered.
async fn credential_ids_are_unique_and_counters_move_forward(db: TestDb) {
    let store = db.store().await;
    let now = time::OffsetDateTime::now_utc();
    let credential = |owner: &str, factor_id| WebauthnCredential {
        factor_id,
        owner: owner.into(),
        credential_id: vec![7; 32],
        passkey: "{}".into(),
        counter: 0,
        discoverable: false,
        aaguid: None,
        suspicious_at: None,
    };
    let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    store
        .add_webauthn_factor(
            &factor("subject:a", a, now),
            &credential("subject:a", a),
            &[],
            &effects(now),
        )
        .await
        .unwrap();
    let again = store
        .add_webauthn_factor(
            &factor("subject:b", b, now),
            &credential("subject:b", b),
            &[],
            &effects(now),
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    // Nothing of the refused registration was written.
    assert!(
        store
            .webauthn_credentials_of("subject:b")
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        store
            .record_webauthn_use(&[7; 32], 5, "{}", now, None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_webauthn_use(&[7; 32], 5, "{}", now, None)
            .await
            .unwrap(),
        "same counter twice"
    );
    assert!(
        !store
            .record_webauthn_use(&[7; 32], 3, "{}", now, None)
            .await
            .unwrap(),
        "counter went back"
    );
    assert!(
        store
            .record_webauthn_use(&[7; 32], 6, "{}", now, None)
            .await
            .unwrap()
    );
    store
        .mark_webauthn_suspicious(&[7; 32], now, &effects(now))
        .await
        .unwrap();
    assert!(
        store
            .webauthn_credentials_of("subject:a")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .record_webauthn_use(&[7; 32], 9, "{}", now, None)
            .await
            .unwrap(),
        "a blocked key stays blocked"
    );
}
both_backends!(
    credential_ids_are_unique_and_counters_move_forward,
    credential_ids_are_unique_and_counters_move_forward
);

async fn api_ceremonies(db: TestDb) {
    let app = app(db).await;
    let key = app.core.create_api_key("acme", "test").await.unwrap().1;
    let post = |path: String, body: Value| {
        let key = key.clone();
        let url = app.at(&format!("/api/v1/subjects{path}"));
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    // No key yet: nothing to assert with.
    let (status, _) = post("/bob/webauthn/assertions".into(), serde_json::json!({})).await;
    assert_eq!(status, 404);
    let (status, body) = post("/bob/webauthn/registrations".into(), serde_json::json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["options"]["publicKey"]["rp"]["id"], "localhost");
    assert_eq!(body["options"]["publicKey"]["user"]["name"], "bob");
    let id = body["registration_id"].as_str().unwrap().to_owned();
    let (status, _) = post(
        "/bob/webauthn/registrations".into(),
        serde_json::json!({"kind": "carrier-pigeon"}),
    )
    .await;
    assert_eq!(status, 400);
    // Another tenant cannot finish it.
    let other = app.core.create_api_key("globex", "test").await.unwrap().1;
    let r = reqwest::Client::new()
        .post(app.at(&format!(
            "/api/v1/subjects/bob/webauthn/registrations/{id}/finish"
        )))
        .bearer_auth(other)
        .json(&serde_json::json!({"credential": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let junk = serde_json::json!({"credential": {"id": "AAAA"}});
    let (status, problem) = post(
        format!("/bob/webauthn/registrations/{id}/finish"),
        junk.clone(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(problem["type"], "urn:twofold:problem:key-rejected");
    let (status, problem) = post(format!("/bob/webauthn/registrations/{id}/finish"), junk).await;
    assert_eq!(status, 400);
    assert!(
        problem["detail"].as_str().unwrap().contains("already used"),
        "{problem}"
    );
}
both_backends!(api_ceremonies, api_ceremonies);

async fn relying_party_per_tenant(db: TestDb) {
    let app = app(db).await;
    let acme = app.core.create_api_key("acme", "test").await.unwrap().1;
    let globex = app.core.create_api_key("globex", "test").await.unwrap().1;
    let origins = vec!["https://app.acme.example".to_owned()];
    app.core
        .set_tenant_relying_party("acme", "acme.example", &origins)
        .await
        .unwrap();
    assert!(
        app.core
            .set_tenant_relying_party("acme", "other.example", &origins)
            .await
            .is_err()
    );
    assert!(
        app.core
            .set_tenant_relying_party("nobody", "acme.example", &origins)
            .await
            .is_err()
    );
    let rp_of = |key: String| {
        let url = app.at("/api/v1/subjects/carol/webauthn/registrations");
        async move {
            let v: Value = reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["options"]["publicKey"]["rp"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(rp_of(acme).await, "acme.example");
    assert_eq!(rp_of(globex).await, "localhost");
}
both_backends!(relying_party_per_tenant, relying_party_per_tenant);
