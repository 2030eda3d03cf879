//! Changing the sign-in address: a sensitive change (current password, and with 2FA a fresh
//! second factor), confirmed from the new mailbox; the old address is told, other sessions and
//! links mailed to the old address end, an address of another account is never taken over, and
//! only the latest request's link works.

use serde_json::{Value, json};
use time::Duration;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app};

const PW: &str = "correct horse battery staple";

async fn request(app: &TestApp, c: &reqwest::Client, new: &str, pw: &str) -> reqwest::Response {
    c.post(app.at("/api/v1/account/email"))
        .json(&json!({ "new_email": new, "current_password": pw }))
        .send()
        .await
        .unwrap()
}

async fn confirm(app: &TestApp, c: &reqwest::Client, token: &str) -> reqwest::Response {
    c.post(app.at("/api/v1/account/email/confirm"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
}

async fn problem(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or_default();
    (status, body["type"].as_str().unwrap_or_default().to_owned())
}

async fn login_status(app: &TestApp, email: &str) -> (u16, Value) {
    let r = app.log_in(&app.client(), email, PW).await;
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or_default())
}

async fn change_with_step_up(db: TestDb) {
    let app = spawn_app(db).await;
    let (old, new) = ("ann@example.com", "ann@new.example");
    app.verified_account(old, PW).await;
    let a = app.client();
    app.log_in(&a, old, PW).await;
    let (secret, _) = app.enroll_totp(&a, "phone").await;
    // The "authenticator added" notice (mail #1 after the verification link) goes out in the
    // background; counting mails to the old address below must not race it.
    app.smtp.wait_for(old, 1).await;
    let other = app.client();
    app.log_in(&other, old, PW).await;
    app.clock.advance(Duration::seconds(30));
    assert_eq!(
        app.second_factor(&other, &app.code_now(&secret))
            .await
            .status(),
        200
    );

    // Minutes after the last second factor, the change asks for one again.
    app.clock.advance(Duration::minutes(10));
    let (s, t) = problem(request(&app, &a, new, PW).await).await;
    assert_eq!(
        (s, t.as_str()),
        (403, "urn:twofold:problem:step-up-required")
    );
    app.clock.advance(Duration::seconds(30));
    let r = a
        .post(app.at("/api/v1/session/step-up"))
        .json(&json!({ "code": app.code_now(&secret) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The current password too, and not the same address.
    assert_eq!(request(&app, &a, new, "wrong password").await.status(), 400);
    assert_eq!(request(&app, &a, old, PW).await.status(), 400);
    let before_old = app.smtp.count_to(old);
    assert_eq!(request(&app, &a, new, PW).await.status(), 202);
    let link = app.smtp.wait_for(new, 0).await;
    assert!(link.subject().starts_with("Confirm your new email address"));
    let token = link.token("/account/email/confirm").unwrap();
    let told = app.smtp.wait_for(old, before_old).await;
    assert!(
        told.data.contains(new),
        "the old address hears of the request"
    );

    // Nothing changes before the link is used.
    assert_eq!(login_status(&app, new).await.0, 401);
    assert_eq!(login_status(&app, old).await.0, 200);

    let r = confirm(&app, &a, &token).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["email"], new);
    // This session stays, the other one ends; the old address no longer signs in.
    assert_eq!(
        a.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        other
            .get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(login_status(&app, old).await.0, 401);
    let (s, v) = login_status(&app, new).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (200, Some("second_factor_required"))
    );
    let changed = app.smtp.wait_for(old, before_old + 1).await;
    assert!(
        changed.subject().contains("was changed"),
        "{}",
        changed.subject()
    );
    // The link works once.
    let (s, t) = problem(confirm(&app, &app.client(), &token).await).await;
    assert_eq!((s, t.as_str()), (400, "urn:twofold:problem:invalid-token"));
}
both_backends!(
    an_address_change_needs_step_up_and_the_new_mailbox,
    change_with_step_up
);

async fn taken_and_superseded(db: TestDb) {
    let app = spawn_app(db).await;
    let (cy, dan) = ("cy@example.com", "dan@example.com");
    app.verified_account(cy, PW).await;
    app.verified_account(dan, PW).await;
    let c = app.client();
    app.log_in(&c, cy, PW).await;

    // A reset link mailed to the old address before the change...
    let r = app
        .client()
        .post(app.at("/api/v1/password-reset"))
        .json(&json!({ "email": cy }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let reset = app
        .smtp
        .wait_for(cy, 1)
        .await
        .token("/password-reset")
        .unwrap();

    // Another account's address: the request looks the same; the link cannot take it over.
    assert_eq!(request(&app, &c, dan, PW).await.status(), 202);
    let to_dan = app.smtp.wait_for(dan, 1).await;
    let token = to_dan.token("/account/email/confirm").unwrap();
    let (s, t) = problem(confirm(&app, &c, &token).await).await;
    assert_eq!(s, 400);
    assert_ne!(
        t, "urn:twofold:problem:invalid-token",
        "says the address is taken"
    );
    assert_eq!(login_status(&app, cy).await.0, 200, "cy keeps its address");

    // Two requests: only the latest link works.
    let (first, second) = ("cy@one.example", "cy@two.example");
    assert_eq!(request(&app, &c, first, PW).await.status(), 202);
    assert_eq!(request(&app, &c, second, PW).await.status(), 202);
    let t1 = app
        .smtp
        .wait_for(first, 0)
        .await
        .token("/account/email/confirm")
        .unwrap();
    let t2 = app
        .smtp
        .wait_for(second, 0)
        .await
        .token("/account/email/confirm")
        .unwrap();
    let (s, t) = problem(confirm(&app, &c, &t1).await).await;
    assert_eq!((s, t.as_str()), (400, "urn:twofold:problem:invalid-token"));
    assert_eq!(confirm(&app, &c, &t2).await.status(), 200);

    // ...no longer works once the address changed.
    let r = app
        .client()
        .post(app.at("/api/v1/password-reset/complete"))
        .json(&json!({ "token": reset, "password": "a brand new passphrase 42" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(login_status(&app, second).await.0, 200);
}
both_backends!(
    an_address_of_another_account_is_never_taken,
    taken_and_superseded
);

async fn through_the_pages(db: TestDb) {
    let app = spawn_app(db).await;
    let (old, new) = ("eve@example.com", "eve@new.example");
    app.verified_account(old, PW).await;
    let c = app.client();
    app.log_in(&c, old, PW).await;
    let html = c
        .get(app.at("/account/security"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("You sign in with <strong>eve@example.com</strong>"));
    let csrf = twofold_testkit::totp::csrf_of(&html);
    let r = c
        .post(app.at("/account/email"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("new_email", new),
            ("current_password", PW),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("We sent a link to eve@new.example")
    );
    let link = app
        .smtp
        .wait_for(new, 0)
        .await
        .link("/account/email/confirm")
        .unwrap();
    // Opening the link changes nothing; its button does.
    let page = c.get(&link).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Use this address"), "{page}");
    assert_eq!(login_status(&app, old).await.0, 200);
    let token = link.split("token=").nth(1).unwrap();
    let r = c
        .post(app.at("/account/email/confirm"))
        .form(&[
            ("csrf", twofold_testkit::totp::csrf_of(&page).as_str()),
            ("token", token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("you sign in with eve@new.example")
    );
    assert_eq!(login_status(&app, new).await.0, 200);
}
both_backends!(an_address_change_through_the_pages, through_the_pages);
