//! The account lifecycle through the JSON API, on both backends.

use serde_json::{Value, json};
use time::Duration;
use twofold_core::ports::AccountStore;
use twofold_testkit::{TestDb, both_backends, spawn_app};

const PW: &str = "correct horse battery staple 42";

async fn problem(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(ct, "application/problem+json", "status {status}");
    (status, r.json().await.unwrap())
}

async fn signup_verify_login_logout(db: TestDb) {
    let app = spawn_app(db).await;
    let c = app.client();
    let r = c
        .post(app.at("/api/v1/signup"))
        .json(&json!({"email": "Alice@Example.com", "password": PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // Not verified yet: the right password is refused with a pointer to the mail.
    let r = app.log_in(&c, "alice@example.com", PW).await;
    let (status, body) = problem(r).await;
    assert_eq!(status, 403);
    assert_eq!(body["type"], "urn:twofold:problem:email-not-verified");

    let mail = app.smtp.wait_for("alice@example.com", 0).await;
    assert!(mail.subject().contains("Verify your email"));
    let token = mail.token("/verify-email").unwrap();
    let r = c
        .post(app.at("/api/v1/email-verification"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Single use.
    let r = c
        .post(app.at("/api/v1/email-verification"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 400);

    let r = app.log_in(&c, "ALICE@example.com ", PW).await;
    assert_eq!(r.status(), 200);
    let set_cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
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
    assert_eq!(account["email"], "alice@example.com");
    assert_eq!(account["email_verified"], true);
    assert_eq!(account["session"]["amr"], json!(["pwd"]));

    let sessions: Value = c
        .get(app.at("/api/v1/account/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(sessions["sessions"][0]["current"], true);

    let r = c.delete(app.at("/api/v1/session")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = c.get(app.at("/api/v1/account")).send().await.unwrap();
    assert_eq!(problem(r).await.0, 401);
}
both_backends!(signup_verify_login_logout_case, signup_verify_login_logout);

async fn no_account_enumeration(db: TestDb) {
    let app = spawn_app(db).await;
    app.verified_account("known@example.com", PW).await;
    let c = app.client();

    // Sign-up: same answer for a new and a taken address.
    let a = c
        .post(app.at("/api/v1/signup"))
        .json(&json!({"email": "known@example.com", "password": PW}))
        .send()
        .await
        .unwrap();
    let b = c
        .post(app.at("/api/v1/signup"))
        .json(&json!({"email": "fresh@example.com", "password": PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), b.status());
    assert_eq!(a.text().await.unwrap(), b.text().await.unwrap());
    // The owner of the taken address is told, by mail only.
    let notice = app.smtp.wait_for("known@example.com", 1).await;
    assert!(
        notice.subject().contains("Sign-up attempt"),
        "{}",
        notice.subject()
    );

    // Login: unknown account and wrong password look the same.
    let a = app
        .log_in(&c, "known@example.com", "wrong password entirely")
        .await;
    let b = app
        .log_in(&c, "nobody@example.com", "wrong password entirely")
        .await;
    assert_eq!(a.status(), 401);
    assert_eq!(a.status(), b.status());
    assert_eq!(a.text().await.unwrap(), b.text().await.unwrap());

    // Forgot password: same answer, mail only for the real account.
    let a = c
        .post(app.at("/api/v1/password-reset"))
        .json(&json!({"email": "known@example.com"}))
        .send()
        .await
        .unwrap();
    let b = c
        .post(app.at("/api/v1/password-reset"))
        .json(&json!({"email": "nobody@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 202);
    assert_eq!(a.status(), b.status());
    assert_eq!(a.text().await.unwrap(), b.text().await.unwrap());
    app.smtp.wait_for("known@example.com", 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.smtp.count_to("nobody@example.com"), 0);
}
both_backends!(no_account_enumeration_case, no_account_enumeration);

async fn password_reset_signs_everyone_out_and_nobody_in(db: TestDb) {
    let app = spawn_app(db).await;
    app.verified_account("reset@example.com", PW).await;
    let (a, b, c) = (app.client(), app.client(), app.client());
    assert_eq!(app.log_in(&a, "reset@example.com", PW).await.status(), 200);
    assert_eq!(app.log_in(&b, "reset@example.com", PW).await.status(), 200);

    let r = c
        .post(app.at("/api/v1/password-reset"))
        .json(&json!({"email": "reset@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mail = app.smtp.wait_for("reset@example.com", 1).await;
    let token = mail.token("/password-reset").unwrap();

    // A weak password is refused and the link stays usable.
    let r = c
        .post(app.at("/api/v1/password-reset/complete"))
        .json(&json!({"token": token, "password": "password1"}))
        .send()
        .await
        .unwrap();
    let (status, body) = problem(r).await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "urn:twofold:problem:weak-password");

    let new_pw = "new purple elephant umbrella 77";
    let r = c
        .post(app.at("/api/v1/password-reset/complete"))
        .json(&json!({"token": token, "password": new_pw}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("set-cookie").is_none(),
        "a reset must not sign anyone in"
    );
    assert_eq!(
        c.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        a.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        b.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // The link works once.
    let r = c
        .post(app.at("/api/v1/password-reset/complete"))
        .json(&json!({"token": token, "password": "yet another fine passphrase 9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(r).await.1["type"],
        "urn:twofold:problem:invalid-token"
    );

    assert_eq!(app.log_in(&c, "reset@example.com", PW).await.status(), 401);
    assert_eq!(
        app.log_in(&c, "reset@example.com", new_pw).await.status(),
        200
    );
    // The owner is told the password changed.
    let changed = app.smtp.wait_for("reset@example.com", 2).await;
    assert!(changed.subject().contains("password was changed"));
}
both_backends!(
    password_reset_case,
    password_reset_signs_everyone_out_and_nobody_in
);

async fn reset_link_expires_after_an_hour(db: TestDb) {
    let app = spawn_app(db).await;
    app.verified_account("late@example.com", PW).await;
    let c = app.client();
    c.post(app.at("/api/v1/password-reset"))
        .json(&json!({"email": "late@example.com"}))
        .send()
        .await
        .unwrap();
    let token = app
        .smtp
        .wait_for("late@example.com", 1)
        .await
        .token("/password-reset")
        .unwrap();
    app.clock.advance(Duration::minutes(61));
    let r = c
        .post(app.at("/api/v1/password-reset/complete"))
        .json(&json!({"token": token, "password": "new purple elephant umbrella 77"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 400);
}
both_backends!(reset_link_expiry_case, reset_link_expires_after_an_hour);

async fn verification_link_expires_after_two_hours(db: TestDb) {
    let app = spawn_app(db).await;
    let c = app.client();
    c.post(app.at("/api/v1/signup"))
        .json(&json!({"email": "slow@example.com", "password": PW}))
        .send()
        .await
        .unwrap();
    let token = app
        .smtp
        .wait_for("slow@example.com", 0)
        .await
        .token("/verify-email")
        .unwrap();
    app.clock.advance(Duration::hours(2) + Duration::seconds(1));
    let r = c
        .post(app.at("/api/v1/email-verification"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 400);
}
both_backends!(
    verification_expiry_case,
    verification_link_expires_after_two_hours
);

async fn one_time_links_are_consumed_once_under_concurrency(db: TestDb) {
    let app = spawn_app(db).await;
    let c = app.client();
    c.post(app.at("/api/v1/signup"))
        .json(&json!({"email": "race@example.com", "password": PW}))
        .send()
        .await
        .unwrap();
    let token = app
        .smtp
        .wait_for("race@example.com", 0)
        .await
        .token("/verify-email")
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let c = app.client();
        let url = app.at("/api/v1/email-verification");
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            c.post(url)
                .json(&json!({"token": token}))
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
    assert_eq!(ok, 1, "exactly one verification may succeed");

    // The same for a reset link: exactly one new password wins.
    c.post(app.at("/api/v1/password-reset"))
        .json(&json!({"email": "race@example.com"}))
        .send()
        .await
        .unwrap();
    let token = app
        .smtp
        .wait_for("race@example.com", 1)
        .await
        .token("/password-reset")
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = app.client();
        let url = app.at("/api/v1/password-reset/complete");
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            c.post(url).json(&json!({"token": token, "password": format!("racing unicorn meadow {i} lantern")})).send().await.unwrap().status().as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "exactly one reset may succeed");
}
both_backends!(
    one_time_links_case,
    one_time_links_are_consumed_once_under_concurrency
);

async fn revoked_session_stops_working(db: TestDb) {
    let app = spawn_app(db).await;
    app.verified_account("two@example.com", PW).await;
    let (a, b) = (app.client(), app.client());
    app.log_in(&a, "two@example.com", PW).await;
    app.log_in(&b, "two@example.com", PW).await;
    let sessions: Value = a
        .get(app.at("/api/v1/account/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = sessions["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let other = list.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = a
        .delete(app.at(&format!("/api/v1/account/sessions/{other}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        b.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        a.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Someone else's (or an unknown) session id is just "not found".
    let r = a
        .delete(app.at(&format!("/api/v1/account/sessions/{other}")))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 404);
    let r = a
        .delete(app.at("/api/v1/account/sessions/not-a-uuid"))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 404);
}
both_backends!(revoked_session_case, revoked_session_stops_working);

async fn sessions_expire_when_idle_and_on_stamp_change(db: TestDb) {
    let app = spawn_app(db).await;
    app.verified_account("idle@example.com", PW).await;
    let (a, b) = (app.client(), app.client());
    app.log_in(&a, "idle@example.com", PW).await;
    app.log_in(&b, "idle@example.com", PW).await;

    // Changing the password keeps this session and ends the other one.
    let r = a
        .post(app.at("/api/v1/account/password"))
        .json(&json!({"current_password": PW, "new_password": "brand new passphrase for idle 5"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        a.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        b.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    app.clock.advance(Duration::hours(23));
    assert_eq!(
        a.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.clock
        .advance(Duration::hours(24) + Duration::minutes(1));
    assert_eq!(
        a.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}
both_backends!(
    session_expiry_case,
    sessions_expire_when_idle_and_on_stamp_change
);

async fn login_attempt_budget_backs_off_without_an_oracle(db: TestDb) {
    let app = spawn_app(db).await;
    app.verified_account("target@example.com", PW).await;
    let c = app.client();
    for _ in 0..6 {
        assert_eq!(
            app.log_in(&c, "target@example.com", "not the password at all")
                .await
                .status(),
            401
        );
        assert_eq!(
            app.log_in(&c, "ghost@example.com", "not the password at all")
                .await
                .status(),
            401
        );
    }
    // Blocked now, even with the right password, and an unknown address looks the same.
    let known = app.log_in(&c, "target@example.com", PW).await;
    let unknown = app.log_in(&c, "ghost@example.com", PW).await;
    assert_eq!(known.status(), 429);
    assert_eq!(unknown.status(), 429);
    assert!(known.headers().get("retry-after").is_some());
    let (_, body) = problem(known).await;
    assert!(body["detail"].as_str().unwrap().contains("Try again in"));
    // After the backoff the right password works and resets the account's budget.
    app.clock.advance(Duration::seconds(5));
    assert_eq!(app.log_in(&c, "target@example.com", PW).await.status(), 200);
}
both_backends!(
    login_budget_case,
    login_attempt_budget_backs_off_without_an_oracle
);

/// Guessing across many addresses from one client spends that client's budget: after 20 free
/// failures (one per address, so no account budget is touched) even a right password from it
/// waits, and a successful login does not reset it.
async fn login_budget_per_client_ip(db: TestDb) {
    let app = spawn_app(db).await;
    app.verified_account("sprayed@example.com", PW).await;
    let c = app.client();
    for n in 0..21 {
        let email = format!("spray-{n}@example.com");
        assert_eq!(
            app.log_in(&c, &email, "not the password at all")
                .await
                .status(),
            401
        );
    }
    let blocked = app.log_in(&c, "sprayed@example.com", PW).await;
    assert_eq!(blocked.status(), 429);
    assert!(blocked.headers().get("retry-after").is_some());
    app.clock.advance(Duration::seconds(5));
    assert_eq!(
        app.log_in(&c, "sprayed@example.com", PW).await.status(),
        200
    );
    // The right password cleared nothing of the client's budget: its own attempt was given
    // back, but the wait it started stands, and the next failure waits again.
    app.clock.advance(Duration::seconds(5));
    assert_eq!(
        app.log_in(&c, "spray-x@example.com", "not the password at all")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.log_in(&c, "sprayed@example.com", PW).await.status(),
        429
    );
}
both_backends!(login_budget_ip_case, login_budget_per_client_ip);

async fn bad_input_gets_problem_json(db: TestDb) {
    let app = spawn_app(db).await;
    let c = app.client();
    let r = c
        .post(app.at("/api/v1/signup"))
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 400);
    let r = c
        .post(app.at("/api/v1/signup"))
        .body("email=a")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 415);
    let r = c
        .post(app.at("/api/v1/signup"))
        .json(&json!({"email": "a@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 422);
    let r = c
        .post(app.at("/api/v1/signup"))
        .json(&json!({"email": "not-an-email", "password": PW}))
        .send()
        .await
        .unwrap();
    let (status, body) = problem(r).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("email")));
    let r = c
        .post(app.at("/api/v1/signup"))
        .json(&json!({"email": "weak@example.com", "password": "password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(r).await.1["type"],
        "urn:twofold:problem:weak-password"
    );
    let r = c
        .post(app.at("/api/v1/signup"))
        .json(&json!({"email": "long@example.com", "password": "x".repeat(129)}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 400);
    // Nothing was created by the refused sign-ups.
    assert!(app.store.list_accounts(10, 0).await.unwrap().is_empty());
    let r = c.get(app.at("/api/v1/nope")).send().await.unwrap();
    assert_eq!(problem(r).await.0, 404);
}
both_backends!(bad_input_case, bad_input_gets_problem_json);

async fn cross_site_requests_are_refused(db: TestDb) {
    let app = spawn_app(db).await;
    app.verified_account("csrf@example.com", PW).await;
    let c = app.client();
    app.log_in(&c, "csrf@example.com", PW).await;
    let r = c
        .delete(app.at("/api/v1/session"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 403);
    let r = c
        .delete(app.at("/api/v1/session"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 403);
    assert_eq!(
        c.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = c
        .delete(app.at("/api/v1/session"))
        .header("origin", app.url.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}
both_backends!(cross_site_case, cross_site_requests_are_refused);
