//! Known devices: a correct password from a new browser or a new IP network needs the code
//! sent by email before anything else; known ones go straight on; the per-account switch turns
//! network checks off; the code works once under concurrency and within its budget; the
//! new-device mail's "this wasn't me" link signs out everything and starts a password reset.

use serde_json::{Value, json};
use twofold_core::Clock;
use twofold_core::model::RequestMeta;
use twofold_core::ports::{AccountStore, DeviceStore};
use twofold_testkit::smtp::ReceivedMail;
use twofold_testkit::totp::csrf_of;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app_with};

const PW: &str = "correct horse battery staple";

async fn spawn(db: TestDb) -> TestApp {
    spawn_app_with(db, |s| s.devices = Default::default()).await
}

/// The API login from `ip` (played through X-Forwarded-For from the loopback proxy).
async fn log_in_from(app: &TestApp, c: &reqwest::Client, email: &str, ip: &str) -> Value {
    let r = c
        .post(app.at("/api/v1/session"))
        .header("x-forwarded-for", ip)
        .json(&json!({ "email": email, "password": PW }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    r.json().await.unwrap()
}

async fn confirm(app: &TestApp, c: &reqwest::Client, code: &str, ip: &str) -> reqwest::Response {
    c.post(app.at("/api/v1/session/device"))
        .header("x-forwarded-for", ip)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap()
}

/// The `nth` (0-based) mail to `email` whose subject starts with `subject`; other mails may
/// arrive in any order around it.
async fn nth_mail(app: &TestApp, email: &str, subject: &str, nth: usize) -> ReceivedMail {
    for _ in 0..300 {
        let found: Vec<ReceivedMail> = app
            .smtp
            .all()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == email) && m.subject().starts_with(subject))
            .collect();
        if let Some(m) = found.get(nth) {
            return m.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no mail #{nth} '{subject}' to {email}");
}

/// The code of the `nth` device-verification mail to `email`, and that mail's text.
async fn device_code(app: &TestApp, email: &str, nth: usize) -> (String, String) {
    let mail = nth_mail(app, email, "Confirm your sign-in", nth).await;
    let code = mail.subject().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(code.len(), 6, "{}", mail.subject());
    (code, mail.data)
}

async fn notice(app: &TestApp, email: &str, nth: usize) -> ReceivedMail {
    nth_mail(app, email, "New sign-in", nth).await
}

fn status(v: &Value) -> &str {
    v["status"].as_str().unwrap()
}

async fn devices_and_networks(db: TestDb) {
    let app = spawn(db).await;
    let email = "ann@example.com";
    app.verified_account(email, PW).await;
    let mails = |app: &TestApp| app.smtp.count_to(email);
    let home = "198.51.100.7";

    // A new browser: the password is right, but only the emailed code lets it on.
    let a = app.client();
    let v = log_in_from(&app, &a, email, home).await;
    assert_eq!(status(&v), "device_verification_required", "{v}");
    assert_eq!(v["sent_to"], "a•••@example.com");
    let (code, body) = device_code(&app, email, 0).await;
    assert!(
        body.contains("browser or device you have not used"),
        "{body}"
    );
    // The device session reaches nothing else: not the account, not the second step, not pages.
    for path in ["/api/v1/account", "/api/v1/session/second-factor"] {
        let r = a.get(app.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = a.get(app.at("/account")).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/login");
    let r = confirm(&app, &a, "000000", home).await;
    assert_eq!(r.status(), 422);
    let r = confirm(&app, &a, &code, home).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(status(&v), "signed_in", "{v}");
    // The owner hears of the new device, with where and what it was.
    let n = notice(&app, email, 0).await;
    assert!(n.data.contains("198.51.100.7"), "{}", n.data);
    assert!(n.link("/login/report").is_some());

    // The browser is known now: straight in, no mail; from the same /24 too.
    app.log_out(&a).await;
    let before = mails(&app);
    for ip in [home, "198.51.100.200"] {
        let v = log_in_from(&app, &a, email, ip).await;
        assert_eq!(status(&v), "signed_in", "{ip}: {v}");
        app.log_out(&a).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(mails(&app), before, "nothing mailed for a known browser");

    // A used code does not admit another browser.
    let b = app.client();
    let v = log_in_from(&app, &b, email, home).await;
    assert_eq!(status(&v), "device_verification_required");
    let r = confirm(&app, &b, &code, home).await;
    assert_eq!(r.status(), 422, "an old code is no code");
    let (code_b, _) = device_code(&app, email, 1).await;
    assert_eq!(confirm(&app, &b, &code_b, home).await.status(), 200);
    notice(&app, email, 1).await;
    app.log_out(&b).await;

    // A known browser on a new network: a code again, saying why; no new-device mail.
    let away = "203.0.113.9";
    let before = mails(&app);
    let v = log_in_from(&app, &a, email, away).await;
    assert_eq!(status(&v), "device_verification_required");
    let (code, body) = device_code(&app, email, 2).await;
    assert!(body.contains("from a network you have not used"), "{body}");
    assert_eq!(confirm(&app, &a, &code, away).await.status(), 200);
    app.log_out(&a).await;
    let v = log_in_from(&app, &a, email, "203.0.113.77").await;
    assert_eq!(status(&v), "signed_in");
    app.log_out(&a).await;
    let v = log_in_from(&app, &a, email, "2001:db8:1:2::5").await;
    assert_eq!(status(&v), "device_verification_required", "IPv6 /48");
    device_code(&app, email, 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        mails(&app),
        before + 2,
        "only the two codes: no new-device mail"
    );

    // The operator's per-account switch turns network checks off, not device checks.
    app.core
        .set_ip_verification(email, false, &RequestMeta::default())
        .await
        .unwrap();
    let v = log_in_from(&app, &a, email, "192.0.2.1").await;
    assert_eq!(status(&v), "signed_in", "{v}");
    let a2 = app.client();
    let v = log_in_from(&app, &a2, email, "192.0.2.1").await;
    assert_eq!(status(&v), "device_verification_required");
}
both_backends!(
    devices_and_networks_need_the_emailed_code,
    devices_and_networks
);

async fn no_bypass_of_the_second_factor(db: TestDb) {
    let app = spawn(db).await;
    let email = "ben@example.com";
    app.verified_account(email, PW).await;
    let a = app.client();
    let v = log_in_from(&app, &a, email, "10.1.1.1").await;
    assert_eq!(status(&v), "device_verification_required");
    let (code, _) = device_code(&app, email, 0).await;
    assert_eq!(confirm(&app, &a, &code, "10.1.1.1").await.status(), 200);
    let (secret, _) = app.enroll_totp(&a, "phone").await;
    app.log_out(&a).await;

    // With 2FA, a confirmed new browser still has the second step ahead of it.
    let b = app.client();
    let v = log_in_from(&app, &b, email, "10.1.1.1").await;
    assert_eq!(status(&v), "device_verification_required");
    let (code, _) = device_code(&app, email, 1).await;
    let r = confirm(&app, &b, &code, "10.1.1.1").await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(status(&v), "second_factor_required", "{v}");
    let r = b.get(app.at("/api/v1/account")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    app.clock.advance(time::Duration::seconds(30));
    let r = app.second_factor(&b, &app.code_now(&secret)).await;
    assert_eq!(r.status(), 200);
}
both_backends!(
    a_confirmed_device_still_needs_the_second_factor,
    no_bypass_of_the_second_factor
);

async fn once_under_concurrency(db: TestDb) {
    let app = spawn(db).await;
    let email = "cat@example.com";
    app.verified_account(email, PW).await;
    // Eight parallel requests with the right code: exactly one gets through.
    let c = app.client();
    log_in_from(&app, &c, email, "10.2.2.2").await;
    let (code, _) = device_code(&app, email, 0).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, url, code) = (c.clone(), app.at("/api/v1/session/device"), code.clone());
        tasks.push(tokio::spawn(async move {
            c.post(url)
                .json(&json!({ "code": code }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
}
both_backends!(
    a_device_code_works_once_under_concurrency,
    once_under_concurrency
);

async fn within_budget(db: TestDb) {
    let app = spawn(db).await;
    let email = "cy@example.com";
    app.verified_account(email, PW).await;
    // Five wrong codes end the device session: the right one is refused afterwards.
    let d = app.client();
    log_in_from(&app, &d, email, "10.2.2.2").await;
    let (code, _) = device_code(&app, email, 0).await;
    for i in 0..5 {
        let r = confirm(&app, &d, "111111", "10.2.2.2").await;
        let expected = if i < 4 { 422 } else { 401 };
        assert_eq!(r.status().as_u16(), expected, "wrong code #{}", i + 1);
    }
    assert_eq!(confirm(&app, &d, &code, "10.2.2.2").await.status(), 401);

    // Across sessions the account's budget (9 free failures) blocks further tries, even a
    // right code, while the password stays right.
    let e = app.client();
    log_in_from(&app, &e, email, "10.2.2.2").await;
    for i in 0..4 {
        let r = confirm(&app, &e, "222222", "10.2.2.2").await;
        assert_eq!(r.status(), 422, "wrong code #{}", i + 6);
    }
    let f = app.client();
    log_in_from(&app, &f, email, "10.2.2.2").await;
    let (code, _) = device_code(&app, email, 2).await;
    assert_eq!(confirm(&app, &f, "333333", "10.2.2.2").await.status(), 422);
    let r = confirm(&app, &f, &code, "10.2.2.2").await;
    assert_eq!(r.status(), 429, "a right code waits out the backoff too");
    assert!(r.headers().get("retry-after").is_some());
}
both_backends!(device_codes_have_an_attempt_budget, within_budget);

async fn this_wasnt_me(db: TestDb) {
    let app = spawn(db).await;
    let email = "dan@example.com";
    app.verified_account(email, PW).await;
    let owner = app.client();
    log_in_from(&app, &owner, email, "10.3.3.3").await;
    let (code, _) = device_code(&app, email, 0).await;
    assert_eq!(confirm(&app, &owner, &code, "10.3.3.3").await.status(), 200);
    let notice = notice(&app, email, 0).await;
    let link = notice.link("/login/report").expect("report link");
    let token = notice.token("/login/report").unwrap();

    // Opening the link changes nothing (mail scanners open links); the button does.
    let page = app.client();
    let html = page.get(&link).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Secure your account"), "{html}");
    assert_eq!(
        owner
            .get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let csrf = csrf_of(&html);
    let r = page
        .post(app.at("/login/report"))
        .form(&[("csrf", csrf.as_str()), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/password-reset?token="), "{to}");

    // Every session is out and the browser is no longer known.
    assert_eq!(
        owner
            .get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let v = log_in_from(&app, &owner, email, "10.3.3.3").await;
    assert_eq!(status(&v), "device_verification_required");

    // The reset token it handed over works (once), and the report link does not work twice.
    let reset = to.split("token=").nth(1).unwrap();
    let r = app
        .client()
        .post(app.at("/api/v1/password-reset/complete"))
        .json(&json!({ "token": reset, "password": "a brand new passphrase 42" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let r = page
        .post(app.at("/login/report"))
        .form(&[("csrf", csrf.as_str()), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
both_backends!(this_wasnt_me_signs_out_everywhere, this_wasnt_me);

async fn link_browsers_become_known(db: TestDb) {
    let app = spawn(db).await;
    let email = "eve@example.com";
    let c = app.client();
    let r = c
        .post(app.at("/api/v1/signup"))
        .json(&json!({ "email": email, "password": PW }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let token = app
        .smtp
        .wait_for(email, 0)
        .await
        .token("/verify-email")
        .unwrap();
    // The verification link opened in this browser (the page's button) proves the mailbox.
    let html = c
        .get(app.at(&format!("/verify-email?token={token}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = c
        .post(app.at("/verify-email"))
        .header("x-forwarded-for", "10.4.4.4")
        .form(&[("csrf", csrf_of(&html).as_str()), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = log_in_from(&app, &c, email, "10.4.4.4").await;
    assert_eq!(status(&v), "signed_in", "{v}");
    // No new-device mail for the browser that signed up: verification mail only.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.smtp.count_to(email), 1);
}
both_backends!(
    the_browser_that_opens_the_link_is_known,
    link_browsers_become_known
);

async fn place_in_the_mail(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("city.mmdb");
    let bytes = twofold_testkit::mmdb::city_database(
        "203.0.113.0".parse().unwrap(),
        24,
        "Testville",
        "Examplia",
        "EX",
    );
    std::fs::write(&path, bytes).unwrap();
    let app = spawn_app_with(db, |s| {
        s.devices = twofold_core::device::DeviceSettings {
            geoip_database: Some(path.clone()),
            ..Default::default()
        }
    })
    .await;
    let email = "geo@example.com";
    app.verified_account(email, PW).await;
    for (nth, ip) in ["203.0.113.40", "198.51.100.40"].into_iter().enumerate() {
        let c = app.client();
        log_in_from(&app, &c, email, ip).await;
        let (code, _) = device_code(&app, email, nth).await;
        assert_eq!(confirm(&app, &c, &code, ip).await.status(), 200);
        let mail = notice(&app, email, nth).await;
        let located = mail
            .data
            .contains("Where:   Testville, Examplia (approximate");
        assert_eq!(located, nth == 0, "{ip}: {}", mail.data);
    }
    assert!(twofold_core::geo::GeoIp::from_bytes(b"not a database".to_vec()).is_err());
}
both_backends!(the_new_device_mail_names_the_place, place_in_the_mail);

/// A known browser's record follows its visits: a sign-in more than an hour after the last
/// one it recorded refreshes its last-seen time, address and user agent (and its network's),
/// one within the hour writes nothing; neither adds a browser or an audit row.
async fn visits_are_recorded(db: TestDb) {
    let app = spawn(db).await;
    let email = "visits@example.com";
    app.verified_account(email, PW).await;
    let account = app.store.account_by_email(email).await.unwrap().unwrap().id;
    let c = app.client();
    let sign_in = |ip: &'static str, agent: &'static str| {
        let (app, c) = (&app, &c);
        async move {
            let r = c
                .post(app.at("/api/v1/session"))
                .header("x-forwarded-for", ip)
                .header("user-agent", agent)
                .json(&json!({ "email": email, "password": PW }))
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            assert_eq!(status(&v), "signed_in", "{v}");
            app.log_out(c).await;
        }
    };
    let v = log_in_from(&app, &c, email, "198.51.100.7").await;
    assert_eq!(status(&v), "device_verification_required");
    let (code, _) = device_code(&app, email, 0).await;
    assert_eq!(confirm(&app, &c, &code, "198.51.100.7").await.status(), 200);
    app.log_out(&c).await;
    let first = app.clock.now();
    let devices = || async { app.store.known_devices_of(account).await.unwrap() };
    let network_seen = || async {
        sqlx::query_scalar::<_, i64>("SELECT last_seen_at FROM known_networks")
            .fetch_one(app.store.pool())
            .await
            .unwrap()
            / 1000
    };
    assert_eq!(
        devices().await[0].last_seen_at.unix_timestamp(),
        first.unix_timestamp()
    );

    app.clock.advance(time::Duration::minutes(50));
    sign_in("198.51.100.8", "Agent/2").await;
    let d = devices().await;
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].last_seen_at.unix_timestamp(),
        first.unix_timestamp(),
        "within the hour"
    );
    assert_eq!(d[0].ip.as_deref(), Some("198.51.100.7"));

    app.clock.advance(time::Duration::minutes(20));
    sign_in("198.51.100.9", "Agent/3").await;
    let now = app.clock.now().unix_timestamp();
    let d = devices().await;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].last_seen_at.unix_timestamp(), now);
    assert_eq!(d[0].first_seen_at.unix_timestamp(), first.unix_timestamp());
    assert_eq!(d[0].ip.as_deref(), Some("198.51.100.9"));
    assert_eq!(d[0].user_agent.as_deref(), Some("Agent/3"));
    assert_eq!(network_seen().await, now);
    let remembered: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE event = 'device_remembered'")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(remembered, 1, "visits are not audited as new browsers");
}
both_backends!(a_known_browsers_visits_are_recorded, visits_are_recorded);
