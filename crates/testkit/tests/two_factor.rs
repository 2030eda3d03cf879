//! Authenticator apps, backup codes, the second step of login and step-up, on both backends,
//! with codes from `oathtool`.

use serde_json::{Value, json};
use time::Duration;
use twofold_core::Clock;
use twofold_testkit::totp::{csrf_of, oathtool_code};
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app};

const PW: &str = "correct horse battery staple 42";

/// A verified account signed in on a fresh client, with an authenticator enrolled.
async fn enrolled(app: &TestApp, email: &str) -> (reqwest::Client, String, Vec<String>) {
    app.verified_account(email, PW).await;
    let c = app.client();
    assert_eq!(app.log_in(&c, email, PW).await.status(), 200);
    let (secret, codes) = app.enroll_totp(&c, "My phone").await;
    let codes = codes.expect("the first factor creates backup codes");
    assert_eq!(codes.len(), 10);
    (c, secret, codes)
}

async fn login_needs_the_second_factor(db: TestDb) {
    let app = spawn_app(db).await;
    let (_, secret, _) = enrolled(&app, "tfa@example.com").await;
    let added = app.smtp.wait_for("tfa@example.com", 1).await;
    assert!(
        added.subject().contains("security settings changed"),
        "{}",
        added.subject()
    );

    let c = app.client();
    let r = app.log_in(&c, "tfa@example.com", PW).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "second_factor_required", "methods": ["totp", "backup_code"]})
    );

    // The partial session opens nothing but the second step.
    assert_eq!(
        c.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.get(app.at("/api/v1/account/sessions"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let page = c.get(app.at("/account")).send().await.unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(
        c.get(app.at("/account/security"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    assert_eq!(
        c.get(app.at("/login/second-factor"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // The code used to confirm the enrolment cannot be replayed.
    let used = app.code_now(&secret);
    let r = app.second_factor(&c, &used).await;
    assert_eq!(r.status(), 422);

    app.clock.advance(Duration::seconds(30));
    let r = app.second_factor(&c, &app.code_now(&secret)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "signed_in");
    let account: Value = c
        .get(app.at("/api/v1/account"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["session"]["amr"], json!(["pwd", "otp", "mfa"]));

    // The same code again, on a new login, is a replay.
    let c2 = app.client();
    app.log_in(&c2, "tfa@example.com", PW).await;
    assert_eq!(
        app.second_factor(&c2, &app.code_now(&secret))
            .await
            .status(),
        422
    );
    // A code one step old is still accepted (±1 window) only if that step is newer than the last used: it is not.
    app.clock.advance(Duration::seconds(30));
    assert_eq!(
        app.second_factor(&c2, &app.code_now(&secret))
            .await
            .status(),
        200
    );
}
both_backends!(login_second_factor_case, login_needs_the_second_factor);

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

/// One code raced from many second steps at once (a phished code against its owner, or a
/// double submit): exactly one signs in, with one full session and one `login_succeeded`
/// row; the others are wrong codes and their partial sessions stay as they were.
async fn one_code_signs_in_once(db: TestDb) {
    let app = spawn_app(db).await;
    let (_, secret, _) = enrolled(&app, "race@example.com").await;
    let clients: Vec<reqwest::Client> = (0..6).map(|_| app.client()).collect();
    for c in &clients {
        let body = app.log_in_json(c, "race@example.com", PW).await;
        assert_eq!(body["status"], "second_factor_required");
    }
    app.clock.advance(Duration::seconds(30));
    let code = app.code_now(&secret);
    let full = "SELECT COUNT(*) FROM sessions WHERE kind = 'full'";
    let succeeded = "SELECT COUNT(*) FROM audit_log WHERE event = 'login_succeeded'";
    let (full_before, succeeded_before) = (count(&app, full).await, count(&app, succeeded).await);
    // Two from the first partial session, one from each of the others.
    let mut tasks = Vec::new();
    for c in clients.iter().chain(clients.first()) {
        let (c, url, code) = (
            c.clone(),
            app.at("/api/v1/session/second-factor"),
            code.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = c
                .post(url)
                .json(&json!({ "code": code }))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    // The loser sharing the winner's partial session may find it gone (401).
    assert!(
        statuses.iter().all(|s| [200, 401, 422].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(count(&app, full).await, full_before + 1);
    assert_eq!(count(&app, succeeded).await, succeeded_before + 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM sessions WHERE kind = 'partial'").await,
        5
    );
}
both_backends!(one_code_case, one_code_signs_in_once);

async fn backup_codes_work_once_and_notify(db: TestDb) {
    let app = spawn_app(db).await;
    let (_, _, codes) = enrolled(&app, "paper@example.com").await;
    let c = app.client();
    app.log_in(&c, "paper@example.com", PW).await;
    let r = c
        .post(app.at("/api/v1/session/second-factor"))
        .json(&json!({"backup_code": codes[0].to_uppercase()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["backup_codes_left"], 9);
    let notice = app.smtp.wait_for("paper@example.com", 2).await;
    assert!(
        notice.subject().contains("backup code was used"),
        "{}",
        notice.subject()
    );

    let c2 = app.client();
    app.log_in(&c2, "paper@example.com", PW).await;
    assert_eq!(
        app.second_factor(&c2, &codes[0]).await.status(),
        422,
        "a backup code works once"
    );

    // 50 parallel uses of one code: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let c = app.client();
        app.log_in(&c, "paper@example.com", PW).await;
        let url = app.at("/api/v1/session/second-factor");
        let code = codes[1].clone();
        tasks.push(tokio::spawn(async move {
            c.post(url)
                .json(&json!({"backup_code": code}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
}
both_backends!(backup_codes_case, backup_codes_work_once_and_notify);

async fn second_step_budgets(db: TestDb) {
    let app = spawn_app(db).await;
    let (_, secret, _) = enrolled(&app, "budget@example.com").await;
    app.clock.advance(Duration::seconds(30));

    // Five wrong codes void the partial session, and the owner is told.
    let c = app.client();
    app.log_in(&c, "budget@example.com", PW).await;
    for i in 0..4 {
        assert_eq!(
            app.second_factor(&c, "000000").await.status(),
            422,
            "attempt {i}"
        );
    }
    let r = app.second_factor(&c, "000000").await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "urn:twofold:problem:second-step-void");
    assert_eq!(
        app.second_factor(&c, &app.code_now(&secret)).await.status(),
        401,
        "the void session stays void"
    );
    let warning = app.smtp.wait_for("budget@example.com", 2).await;
    assert!(
        warning.subject().contains("may know your Twofold password"),
        "{}",
        warning.subject()
    );

    // Across sessions: after 10 failures in the hour the account waits, and a correct
    // password does not reset that.
    let c = app.client();
    app.log_in(&c, "budget@example.com", PW).await;
    for _ in 0..4 {
        app.second_factor(&c, "111111").await;
    }
    let c = app.client();
    app.log_in(&c, "budget@example.com", PW).await;
    app.second_factor(&c, "222222").await;
    let r = app.second_factor(&c, &app.code_now(&secret)).await;
    assert_eq!(r.status(), 429, "budget spent: even the right code waits");
    assert!(r.headers().get("retry-after").is_some());
    let c = app.client();
    assert_eq!(app.log_in(&c, "budget@example.com", PW).await.status(), 200);
    assert_eq!(
        app.second_factor(&c, &app.code_now(&secret)).await.status(),
        429,
        "a correct password resets nothing"
    );

    app.clock.advance(Duration::seconds(61));
    let c = app.client();
    app.log_in(&c, "budget@example.com", PW).await;
    assert_eq!(
        app.second_factor(&c, &app.code_now(&secret)).await.status(),
        200
    );
}
both_backends!(second_step_budget_case, second_step_budgets);

async fn abandoned_second_step_is_reported(db: TestDb) {
    let app = spawn_app(db).await;
    enrolled(&app, "gone@example.com").await;
    let c = app.client();
    app.log_in(&c, "gone@example.com", PW).await;
    app.clock.advance(Duration::minutes(11));
    assert_eq!(app.core.notify_abandoned_second_steps().await.unwrap(), 1);
    assert_eq!(
        app.core.notify_abandoned_second_steps().await.unwrap(),
        0,
        "told once"
    );
    let mail = app.smtp.wait_for("gone@example.com", 2).await;
    assert!(mail.subject().contains("may know your Twofold password"));
    assert_eq!(app.second_factor(&c, "123456").await.status(), 401);
}
both_backends!(abandoned_case, abandoned_second_step_is_reported);

async fn sensitive_changes_need_step_up(db: TestDb) {
    let app = spawn_app(db).await;
    let (c, secret, _) = enrolled(&app, "stepup@example.com").await;
    app.clock.advance(Duration::minutes(6));
    let html = c
        .get(app.at("/account/security"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&html);
    let step_up = "/account/step-up?next=/account/security";
    for path in ["/account/security/totp", "/account/security/backup-codes"] {
        let r = c
            .post(app.at(path))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers().get("location").unwrap(), step_up, "{path}");
    }
    let factor_id = html
        .split("/account/security/factors/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let r = c
        .post(app.at(&format!("/account/security/factors/{factor_id}/remove")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("location").unwrap(), step_up);
    assert!(html.contains("Two-factor authentication is <strong>on</strong>"));

    // A wrong code does not step up; a right one does, and the change goes through.
    let r = c
        .post(app.at("/account/step-up"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("code", "000000"),
            ("next", "/account/security"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let code = app.code_now(&secret);
    let r = c
        .post(app.at("/account/step-up"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("code", code.as_str()),
            ("next", "/account/security"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = c
        .post(app.at(&format!("/account/security/factors/{factor_id}/remove")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers().get("location").unwrap(),
        "/account/security?removed=1"
    );
    let html = c
        .get(app.at("/account/security"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Two-factor authentication is <strong>off</strong>"));
    // With 2FA off, login is one step again and the old backup codes are gone.
    let c2 = app.client();
    let body: Value = app
        .log_in(&c2, "stepup@example.com", PW)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "signed_in");
}
both_backends!(step_up_case, sensitive_changes_need_step_up);

async fn second_factor_through_the_pages(db: TestDb) {
    let app = spawn_app(db).await;
    let (_, secret, _) = enrolled(&app, "pages2fa@example.com").await;
    app.clock.advance(Duration::seconds(30));
    let c = app.client();
    let csrf = csrf_of(
        &c.get(app.at("/login"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let r = c
        .post(app.at("/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "pages2fa@example.com"),
            ("password", PW),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("location").unwrap(), "/login/second-factor");
    let html = c
        .get(app.at("/login/second-factor"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Authentication code") && html.contains("Use a backup code"));
    let r = c
        .post(app.at("/login/second-factor"))
        .form(&[("csrf", csrf.as_str()), ("code", "999999")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("That code is not correct.")
    );
    let code = oathtool_code(&secret, app.clock.now());
    let r = c
        .post(app.at("/login/second-factor"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("location").unwrap(), "/account");
    assert_eq!(
        c.get(app.at("/account")).send().await.unwrap().status(),
        200
    );
}
both_backends!(pages_second_factor_case, second_factor_through_the_pages);

async fn operator_reset_removes_everything(db: TestDb) {
    let app = spawn_app(db).await;
    let (c, _, _) = enrolled(&app, "lost@example.com").await;
    let meta = twofold_core::model::RequestMeta::default();
    assert!(
        app.core
            .reset_two_factor("lost@example.com", "", &meta)
            .await
            .is_err(),
        "a reason is required"
    );
    assert_eq!(
        app.core
            .reset_two_factor("lost@example.com", "lost phone, ticket 42", &meta)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        c.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "sessions end"
    );
    let mail = app.smtp.wait_for("lost@example.com", 2).await;
    assert!(mail.data.contains("An operator removed all second factors"));
    let c2 = app.client();
    let body: Value = app
        .log_in(&c2, "lost@example.com", PW)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "signed_in");
}
both_backends!(operator_reset_case, operator_reset_removes_everything);
