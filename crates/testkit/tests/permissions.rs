//! Sensitive permissions ("remote session"): 2FA must be on and a second factor recent.
//! Without 2FA the user is prompted to set it up, and doing so from the prompt ends the
//! session so that the next sign-in uses the new factor. Changing the password follows the
//! step-up rule too.

use serde_json::{Value, json};
use time::Duration;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app};

const PW: &str = "correct horse battery staple";

async fn permission(app: &TestApp, c: &reqwest::Client) -> (u16, Value) {
    let r = c
        .get(app.at("/api/v1/session/permissions/remote-session"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn remote_session(db: TestDb) {
    let app = spawn_app(db).await;
    let email = "support@example.com";
    app.verified_account(email, PW).await;
    let c = app.client();
    assert_eq!(app.log_in(&c, email, PW).await.status(), 200);

    // No 2FA: refused, with a prompt to set it up.
    let (status, body) = permission(&app, &c).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["type"],
        "urn:twofold:problem:two-factor-setup-required"
    );
    let r = c
        .get(app.at("/account/remote-session"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("/account/remote-session/set-up")
    );
    let r = c
        .get(app.at("/account/remote-session/set-up"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/account/security?setup=1");

    // Setting up from the prompt ends this session.
    let (secret, codes) = app.enroll_totp(&c, "phone").await;
    assert!(codes.is_some(), "the first factor shows its backup codes");
    let r = c.get(app.at("/api/v1/account")).send().await.unwrap();
    assert_eq!(
        r.status(),
        401,
        "signed out after setting up from the prompt"
    );

    // Signing in again with the new factor grants the permission for the step-up window.
    let c = app.client();
    let answer: Value = app.log_in(&c, email, PW).await.json().await.unwrap();
    assert_eq!(answer["status"], "second_factor_required");
    app.clock.advance(Duration::seconds(30));
    let r = app.second_factor(&c, &app.code_now(&secret)).await;
    assert_eq!(r.status(), 200);
    let (status, body) = permission(&app, &c).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["permission"], "remote_session");
    assert_eq!(body["granted"], true);
    let r = c
        .get(app.at("/account/remote-session"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("You may start a remote session")
    );

    // Later, the second factor must be proven again.
    app.clock.advance(Duration::minutes(6));
    let (status, body) = permission(&app, &c).await;
    assert_eq!(status, 403);
    assert_eq!(body["type"], "urn:twofold:problem:step-up-required");
    let r = c
        .get(app.at("/account/remote-session"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["location"],
        "/account/step-up?next=/account/remote-session"
    );
    // Changing the password is sensitive in the same way.
    let r = c
        .post(app.at("/api/v1/account/password"))
        .json(&json!({ "current_password": PW, "new_password": "another horse battery staple" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(app.at("/api/v1/session/step-up"))
        .json(&json!({ "code": app.code_now(&secret) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(permission(&app, &c).await.0, 200);

    // Unknown permissions are not found; anonymous callers are not signed in.
    let r = c
        .get(app.at("/api/v1/session/permissions/launch-missiles"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(permission(&app, &app.client()).await.0, 401);
}
both_backends!(remote_session_case, remote_session);
