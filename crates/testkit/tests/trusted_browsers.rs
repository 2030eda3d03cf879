//! "Remember this browser": skips the second factor for its own account only, until a fixed
//! expiry, and is forgotten by a new security stamp, by "Forget", and by a used backup code.

use serde_json::{Value, json};
use time::Duration;
use twofold_testkit::totp::csrf_of;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app};

const PW: &str = "correct horse battery staple";

/// Logs `c` in with the password; returns the login answer's status field.
async fn password(app: &TestApp, c: &reqwest::Client, email: &str, pw: &str) -> String {
    let r = app.log_in(c, email, pw).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    r.json::<Value>().await.unwrap()["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn second_factor(app: &TestApp, c: &reqwest::Client, code: &str, remember: bool) {
    let r = c
        .post(app.at("/api/v1/session/second-factor"))
        .json(&json!({ "code": code, "remember": remember }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

async fn trusted_browsers(db: TestDb) {
    let app = spawn_app(db).await;
    let (a, b) = ("ann@example.com", "ben@example.com");
    let mut secrets = Vec::new();
    for email in [a, b] {
        app.verified_account(email, PW).await;
        let c = app.client();
        assert_eq!(password(&app, &c, email, PW).await, "signed_in");
        secrets.push(app.enroll_totp(&c, "phone").await.0);
    }
    let step = |app: &TestApp| app.clock.advance(Duration::seconds(30));

    // Ticking "remember" sets a cookie; the next password login in that browser is complete.
    let browser = app.client();
    assert_eq!(
        password(&app, &browser, a, PW).await,
        "second_factor_required"
    );
    step(&app);
    second_factor(&app, &browser, &app.code_now(&secrets[0]), true).await;
    app.log_out(&browser).await;
    assert_eq!(password(&app, &browser, a, PW).await, "signed_in");
    let me: Value = browser
        .get(app.at("/api/v1/account"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["session"]["amr"],
        json!(["pwd"]),
        "the session does not claim a second factor"
    );

    // Only for its own account.
    app.log_out(&browser).await;
    assert_eq!(
        password(&app, &browser, b, PW).await,
        "second_factor_required"
    );
    // Without ticking it, nothing is remembered.
    let other = app.client();
    assert_eq!(
        password(&app, &other, a, PW).await,
        "second_factor_required"
    );
    step(&app);
    second_factor(&app, &other, &app.code_now(&secrets[0]), false).await;
    app.log_out(&other).await;
    assert_eq!(
        password(&app, &other, a, PW).await,
        "second_factor_required"
    );

    // Listed in Security settings, and forgotten from there.
    app.log_out(&browser).await;
    assert_eq!(password(&app, &browser, a, PW).await, "signed_in");
    let html = browser
        .get(app.at("/account/security"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Remembered browsers"), "{html}");
    let r = browser
        .post(app.at("/account/trusted-browsers/forget"))
        .form(&[("csrf", csrf_of(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    app.log_out(&browser).await;
    assert_eq!(
        password(&app, &browser, a, PW).await,
        "second_factor_required"
    );

    // The expiry is fixed: 30 days after ticking, whatever happens in between.
    step(&app);
    second_factor(&app, &browser, &app.code_now(&secrets[0]), true).await;
    app.clock.advance(Duration::days(29));
    app.log_out(&browser).await;
    assert_eq!(password(&app, &browser, a, PW).await, "signed_in");
    app.clock.advance(Duration::days(1) + Duration::minutes(1));
    app.log_out(&browser).await;
    assert_eq!(
        password(&app, &browser, a, PW).await,
        "second_factor_required"
    );

    // A password change (new security stamp) forgets it.
    step(&app);
    second_factor(&app, &browser, &app.code_now(&secrets[0]), true).await;
    let r = browser
        .post(app.at("/api/v1/account/password"))
        .json(&json!({ "current_password": PW, "new_password": "violet tractor harbour lemonade" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    app.log_out(&browser).await;
    let pw = "violet tractor harbour lemonade";
    assert_eq!(
        password(&app, &browser, a, pw).await,
        "second_factor_required"
    );

    // A used backup code (a lost phone) forgets every remembered browser.
    step(&app);
    second_factor(&app, &browser, &app.code_now(&secrets[0]), true).await;
    app.log_out(&browser).await;
    assert_eq!(password(&app, &browser, a, pw).await, "signed_in");
    let lost = app.client();
    let c = app.client();
    assert_eq!(password(&app, &c, a, pw).await, "second_factor_required");
    step(&app);
    second_factor(&app, &c, &app.code_now(&secrets[0]), false).await;
    // New backup codes need a fresh second factor; the login just gave one.
    let html = c
        .get(app.at("/account/security"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = c
        .post(app.at("/account/security/backup-codes"))
        .form(&[("csrf", csrf_of(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let backup = twofold_testkit::totp::backup_codes_of(&r.text().await.unwrap());
    // New backup codes bump the stamp too; remember the browser again, then use a code.
    step(&app);
    app.log_out(&browser).await;
    assert_eq!(
        password(&app, &browser, a, pw).await,
        "second_factor_required"
    );
    second_factor(&app, &browser, &app.code_now(&secrets[0]), true).await;
    app.log_out(&browser).await;
    assert_eq!(password(&app, &browser, a, pw).await, "signed_in");
    // (New backup codes ended the other sessions: sign in afresh with the backup code.)
    assert_eq!(password(&app, &lost, a, pw).await, "second_factor_required");
    let r = lost
        .post(app.at("/api/v1/session/second-factor"))
        .json(&json!({ "backup_code": backup[0] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.log_out(&browser).await;
    assert_eq!(
        password(&app, &browser, a, pw).await,
        "second_factor_required"
    );
}
both_backends!(trusted_browsers, trusted_browsers);
