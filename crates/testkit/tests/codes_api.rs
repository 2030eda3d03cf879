//! Codes sent by email (and, with the stand-in gateway, SMS) through the verification API:
//! single use, expiry, attempt limits, resend cooldown, idempotent sends, concurrency.

use serde_json::{Value, json};
use std::sync::Arc;
use time::Duration;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app};

async fn key(app: &TestApp) -> String {
    app.core.create_api_key("acme", "test").await.unwrap().1
}

fn api(app: &TestApp, key: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, app.at(&format!("/api/v1/subjects{path}")))
        .bearer_auth(key)
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> reqwest::Response {
    api(app, key, reqwest::Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The code in the `nth` mail to `to` (its subject ends with it).
async fn mailed_code(app: &TestApp, to: &str, nth: usize) -> String {
    let mail = app.smtp.wait_for(to, nth).await;
    let subject = mail.subject();
    let code = subject.rsplit(' ').next().unwrap().to_owned();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{subject}"
    );
    code
}

async fn challenge(app: &TestApp, key: &str, subject: &str, factor: &str) -> reqwest::Response {
    post(
        app,
        key,
        &format!("/{subject}/challenges"),
        json!({ "factor_id": factor }),
    )
    .await
}

async fn verify(app: &TestApp, key: &str, subject: &str, code: &str) -> Value {
    let r = post(
        app,
        key,
        &format!("/{subject}/verify"),
        json!({ "code": code }),
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// An active email factor for `subject`, confirmed with the first mailed code.
async fn email_factor(app: &TestApp, key: &str, subject: &str, address: &str) -> String {
    let r = post(
        app,
        key,
        &format!("/{subject}/factors"),
        json!({ "type": "email", "email": address }),
    )
    .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["status"], "pending");
    let id = created["id"].as_str().unwrap().to_owned();
    let r = challenge(app, key, subject, &id).await;
    assert_eq!(r.status(), 202);
    let nth = app.smtp.count_to(address);
    let code = mailed_code(app, address, nth).await;
    let r = post(
        app,
        key,
        &format!("/{subject}/factors/{id}/confirm"),
        json!({ "code": code }),
    )
    .await;
    assert_eq!(r.status(), 200);
    // The cooldown for the next code starts now.
    app.clock.advance(Duration::seconds(31));
    id
}

async fn email_code_lifecycle(db: TestDb) {
    let app = spawn_app(db).await;
    let k = key(&app).await;
    let to = "ann@example.com";

    // Bad input: no address, a phone for an email factor, an invalid address.
    let r = post(&app, &k, "/u1/factors", json!({ "type": "email" })).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = post(
        &app,
        &k,
        "/u1/factors",
        json!({ "type": "email", "email": "nope" }),
    )
    .await;
    assert_eq!(r.status(), 400);

    let r = post(
        &app,
        &k,
        "/u1/factors",
        json!({ "type": "email", "email": to }),
    )
    .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["hint"], "a•••@example.com");
    let id = created["id"].as_str().unwrap().to_owned();

    // A pending factor takes no part in /verify, and a wrong confirmation code is refused.
    let r = challenge(&app, &k, "u1", &id).await;
    assert_eq!(r.status(), 202);
    let sent: Value = r.json().await.unwrap();
    assert_eq!(sent["channel"], "email");
    let code = mailed_code(&app, to, 0).await;
    assert_eq!(verify(&app, &k, "u1", &code).await["valid"], false);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let r = post(
        &app,
        &k,
        &format!("/u1/factors/{id}/confirm"),
        json!({ "code": wrong }),
    )
    .await;
    assert_eq!(r.status(), 422);
    let r = post(
        &app,
        &k,
        &format!("/u1/factors/{id}/confirm"),
        json!({ "code": code }),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "active");
    assert_eq!(body["backup_codes"].as_array().unwrap().len(), 10);

    // Verify with a fresh code: once, and never again.
    app.clock.advance(Duration::seconds(31));
    let r = challenge(&app, &k, "u1", &id).await;
    assert_eq!(r.status(), 202);
    let sent: Value = r.json().await.unwrap();
    let code = mailed_code(&app, to, 1).await;
    let path = format!("/u1/challenges/{}", sent["challenge_id"].as_str().unwrap());
    let status = app
        .api_get_until(&k, &path, |v| v["delivery"] != "queued")
        .await;
    assert_eq!(status["status"], "pending");
    assert_eq!(status["delivery"], "sent");
    let ok = verify(&app, &k, "u1", &code).await;
    assert_eq!(ok["valid"], true);
    assert_eq!(ok["type"], "email");
    assert_eq!(ok["factor_id"], id.as_str());
    assert_eq!(verify(&app, &k, "u1", &code).await["valid"], false);

    // Expired after 10 minutes.
    app.clock.advance(Duration::seconds(31));
    assert_eq!(challenge(&app, &k, "u1", &id).await.status(), 202);
    let code = mailed_code(&app, to, 2).await;
    app.clock
        .advance(Duration::minutes(10) + Duration::seconds(1));
    assert_eq!(verify(&app, &k, "u1", &code).await["valid"], false);

    // Five wrong tries kill a code, even for the right one afterwards.
    assert_eq!(challenge(&app, &k, "u1", &id).await.status(), 202);
    let code = mailed_code(&app, to, 3).await;
    let wrong = if code == "111111" { "222222" } else { "111111" };
    for _ in 0..5 {
        assert_eq!(verify(&app, &k, "u1", wrong).await["valid"], false);
    }
    assert_eq!(verify(&app, &k, "u1", &code).await["valid"], false);

    // Another tenant's key does not reach the challenge.
    let other = app.core.create_api_key("globex", "test").await.unwrap().1;
    let r = challenge(&app, &other, "u1", &id).await;
    assert_eq!(r.status(), 404);
}
both_backends!(email_code_lifecycle, email_code_lifecycle);

async fn cooldown_replacement_and_idempotency(db: TestDb) {
    let app = spawn_app(db).await;
    let k = key(&app).await;
    let to = "bo@example.com";
    let id = email_factor(&app, &k, "u2", to).await;
    let sent_before = app.smtp.count_to(to);

    // Idempotency-Key: the retried request gets the same challenge and no second mail.
    let send = |key: &'static str| {
        api(&app, &k, reqwest::Method::POST, "/u2/challenges")
            .header("Idempotency-Key", key)
            .json(&json!({ "factor_id": id }))
            .send()
    };
    let first = send("retry-1").await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = send("retry-1").await.unwrap();
    assert_eq!(again.status(), 202);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["challenge_id"], again["challenge_id"]);
    let old_code = mailed_code(&app, to, sent_before).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        app.smtp.count_to(to),
        sent_before + 1,
        "a retried send mailed twice"
    );

    // Within 30 s another code is refused with Retry-After.
    let r = challenge(&app, &k, "u2", &id).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["type"], "urn:twofold:problem:send-limited");

    // After the cooldown a new code voids the old one.
    app.clock.advance(Duration::seconds(31));
    assert_eq!(challenge(&app, &k, "u2", &id).await.status(), 202);
    let new_code = mailed_code(&app, to, sent_before + 1).await;
    if new_code != old_code {
        assert_eq!(verify(&app, &k, "u2", &old_code).await["valid"], false);
    }
    assert_eq!(verify(&app, &k, "u2", &new_code).await["valid"], true);

    // The same key for another factor is refused, and sends nothing.
    let other = email_factor(&app, &k, "u2", "bo-other@example.com").await;
    let r = api(&app, &k, reqwest::Method::POST, "/u2/challenges")
        .header("Idempotency-Key", "retry-1")
        .json(&json!({ "factor_id": other }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        app.smtp.count_to("bo-other@example.com"),
        1,
        "only its confirmation code"
    );

    // Housekeeping forgets challenges a day after they expired, and old quota counters.
    let path = format!("/u2/challenges/{}", first["challenge_id"].as_str().unwrap());
    let r = api(&app, &k, reqwest::Method::GET, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.clock.advance(Duration::days(3));
    assert!(app.core.purge_code_challenges().await.unwrap() >= 2);
    let r = api(&app, &k, reqwest::Method::GET, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
both_backends!(
    cooldown_replacement_and_idempotency,
    cooldown_replacement_and_idempotency
);

async fn one_code_one_success_under_concurrency(db: TestDb) {
    let app = Arc::new(spawn_app(db).await);
    let k = key(&app).await;
    let to = "cy@example.com";
    let id = email_factor(&app, &k, "u3", to).await;
    let nth = app.smtp.count_to(to);
    assert_eq!(challenge(&app, &k, "u3", &id).await.status(), 202);
    let code = mailed_code(&app, to, nth).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (app, k, code) = (app.clone(), k.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            // The losers count as wrong codes, so late ones may meet the spent budget (429).
            let r = post(&app, &k, "/u3/verify", json!({ "code": code })).await;
            match r.status().as_u16() {
                200 => r.json::<Value>().await.unwrap()["valid"] == true,
                429 => false,
                s => panic!("unexpected status {s}"),
            }
        }));
    }
    let mut valid = 0;
    for t in tasks {
        if t.await.unwrap() {
            valid += 1;
        }
    }
    assert_eq!(valid, 1, "one code was accepted {valid} times");
}
both_backends!(
    one_code_one_success_under_concurrency,
    one_code_one_success_under_concurrency
);

async fn sms_factor(app: &TestApp, key: &str, subject: &str, phone: &str) -> String {
    let r = post(
        app,
        key,
        &format!("/{subject}/factors"),
        json!({ "type": "sms", "phone": phone }),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let created: Value = r.json().await.unwrap();
    created["id"].as_str().unwrap().to_owned()
}

async fn sms_quotas_and_circuit_breaker(db: TestDb) {
    let app = twofold_testkit::spawn_app_with(db, |s| {
        s.send_quotas.sms_per_day = 8;
        s.send_quotas.allowed_countries = vec!["US".into(), "DE".into()];
    })
    .await;
    // Quota windows are fixed (the hour, the UTC day): start just after midnight so that the
    // hour this test spends never straddles a boundary.
    let midnight = time::OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
    app.clock.set(midnight + Duration::seconds(30));
    let k = key(&app).await;

    // Numbers: validated, E.164, masked; countries outside the allow-list refused.
    let r = post(
        &app,
        &k,
        "/s1/factors",
        json!({ "type": "sms", "phone": "415 555 0132" }),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = post(
        &app,
        &k,
        "/s1/factors",
        json!({ "type": "sms", "phone": "+1 415" }),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = post(
        &app,
        &k,
        "/s1/factors",
        json!({ "type": "sms", "phone": "+44 20 7946 0958" }),
    )
    .await;
    assert_eq!(r.status(), 400);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("this country"),
        "{problem}"
    );
    let r = post(
        &app,
        &k,
        "/s1/factors",
        json!({ "type": "sms", "phone": "+1 (415) 555-8318" }),
    )
    .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["hint"], "+1 ••• ••• 8318");
    let factor = created["id"].as_str().unwrap().to_owned();

    // Five texts per number per hour, even with the cooldown respected; then 429 until the
    // hour is over.
    for i in 0..5 {
        let r = challenge(&app, &k, "s1", &factor).await;
        assert_eq!(r.status(), 202, "send {i}");
        app.clock.advance(Duration::seconds(31));
    }
    let r = challenge(&app, &k, "s1", &factor).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 3600, "{retry}");
    app.clock.advance(Duration::seconds(retry as i64 + 1));
    // (The pending factor has expired by now; the number is free again for a new one.)
    let again = sms_factor(&app, &k, "s1b", "+1 415 555 8318").await;
    assert_eq!(challenge(&app, &k, "s1b", &again).await.status(), 202);

    // The daily budget (8 here) is shared by every number; when spent, SMS stops (503) while
    // email codes go on.
    app.clock.advance(Duration::seconds(31));
    let mut sent = 6;
    let mut subject = 2;
    while sent < 8 {
        let s = format!("s{subject}");
        let f = sms_factor(&app, &k, &s, &format!("+1 415 555 01{subject:02}")).await;
        assert_eq!(challenge(&app, &k, &s, &f).await.status(), 202);
        sent += 1;
        subject += 1;
    }
    let f = sms_factor(&app, &k, "s9", "+49 30 901820").await;
    let r = challenge(&app, &k, "s9", &f).await;
    assert_eq!(r.status(), 503);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["type"], "urn:twofold:problem:sms-unavailable");
    let e = post(
        &app,
        &k,
        "/s9/factors",
        json!({ "type": "email", "email": "s9@example.com" }),
    )
    .await;
    let e: Value = e.json().await.unwrap();
    assert_eq!(
        challenge(&app, &k, "s9", e["id"].as_str().unwrap())
            .await
            .status(),
        202
    );

    // Sends by channel, country and outcome, for Prometheus.
    let metrics = reqwest::get(app.at("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = |channel: &str, country: &str, outcome: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("twofold_codes_requested_total{")
                    && l.contains(&format!("channel=\"{channel}\""))
                    && l.contains(&format!("country=\"{country}\""))
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    assert_eq!(line("sms", "US", "queued"), Some(8), "{metrics}");
    assert_eq!(line("sms", "US", "quota"), Some(1), "{metrics}");
    assert_eq!(line("sms", "DE", "circuit_open"), Some(1), "{metrics}");
    // (Other tests in this binary send email codes too when run in one process.)
    assert!(line("email", "unknown", "queued") >= Some(1), "{metrics}");
}
both_backends!(
    sms_quotas_and_circuit_breaker,
    sms_quotas_and_circuit_breaker
);

async fn per_ip_quota_uses_the_end_users_address(db: TestDb) {
    let app = twofold_testkit::spawn_app_with(db, |s| s.send_quotas.per_ip_per_hour = 2).await;
    let midnight = time::OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
    app.clock.set(midnight + Duration::seconds(30));
    let k = key(&app).await;
    let mut factors = Vec::new();
    for i in 0..4 {
        let r = post(
            &app,
            &k,
            &format!("/p{i}/factors"),
            json!({ "type": "email", "email": format!("p{i}@example.com") }),
        )
        .await;
        let v: Value = r.json().await.unwrap();
        factors.push(v["id"].as_str().unwrap().to_owned());
    }
    let send = |i: usize, ip: &'static str| {
        let (app, k, f) = (&app, &k, factors[i].clone());
        async move {
            let path = format!("/p{i}/challenges");
            post(app, k, &path, json!({ "factor_id": f, "client_ip": ip })).await
        }
    };
    assert_eq!(send(0, "203.0.113.9").await.status(), 202);
    assert_eq!(send(1, "203.0.113.9").await.status(), 202);
    assert_eq!(send(2, "203.0.113.9").await.status(), 429);
    assert_eq!(send(2, "198.51.100.7").await.status(), 202);
    // Without client_ip, the app server's own address is not counted.
    assert_eq!(challenge(&app, &k, "p3", &factors[3]).await.status(), 202);
    let r = post(
        &app,
        &k,
        "/p3/challenges",
        json!({ "factor_id": factors[3], "client_ip": "nope" }),
    )
    .await;
    assert_eq!(r.status(), 400);
}
both_backends!(
    per_ip_quota_uses_the_end_users_address,
    per_ip_quota_uses_the_end_users_address
);
