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

/// A step-up `next` that is not a plain account path (here with CR/LF, which would split the
/// `Location` header) is refused before the code is looked at, so the code still works.
async fn step_up_refuses_a_bad_next_before_the_code(db: TestDb) {
    let app = spawn_app(db).await;
    let email = "crlf@example.com";
    app.verified_account(email, PW).await;
    let c = app.client();
    assert_eq!(app.log_in(&c, email, PW).await.status(), 200);
    let (secret, _) = app.enroll_totp(&c, "phone").await;
    app.clock.advance(Duration::minutes(6));

    // Opened with it: the page offers the default instead.
    let html = app
        .get_text(&c, "/account/step-up?next=/account%0d%0aX:1")
        .await
        .replace("&#x2f;", "/");
    assert!(
        html.contains(r#"name="next" value="/account/security""#),
        "{html}"
    );
    let csrf = twofold_testkit::totp::csrf_of(&html);

    // Posted with it: 400 and the form again, and the code is not spent.
    let code = app.code_now(&secret);
    let step_up = |next: &'static str| {
        c.post(app.at("/account/step-up"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("code", code.as_str()),
                ("next", next),
            ])
            .send()
    };
    for bad in ["/account\r\nX:1", "/account%0d%0aX:1", "/account/../admin"] {
        let r = step_up(bad).await.unwrap();
        assert_eq!(r.status(), 400, "{bad:?}");
        let html = r.text().await.unwrap().replace("&#x2f;", "/");
        assert!(html.contains("not one of your account pages"), "{html}");
        assert!(
            html.contains(r#"name="next" value="/account/security""#),
            "{html}"
        );
    }
    let r = step_up("/account/remote-session").await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/account/remote-session");
    assert_eq!(permission(&app, &c).await.0, 200);
}
both_backends!(
    step_up_refuses_a_bad_next_before_the_code_case,
    step_up_refuses_a_bad_next_before_the_code
);
