//! Every attempt limit holds under parallel requests: an attempt is paid for before it is
//! evaluated, so a burst of 200 guesses released together (real sockets, see
//! `twofold_testkit::burst`) evaluates at most the limit, and a right guess after the limit is
//! refused. On PostgreSQL each burst is split across two nodes of one database.

use serde_json::{Value, json};
use time::Duration;
use twofold_core::Clock;
use twofold_core::model::Owner;
use twofold_core::ports::AttemptStore;
use twofold_core::throttle::{AttemptKey, Budget, Reservation};
use twofold_testkit::burst::{RawRequest, RawResponse, burst};
use twofold_testkit::totp::oathtool_code;
use twofold_testkit::{Backend, Node, TestApp, TestDb, both_backends, spawn_app, spawn_app_with};

const PW: &str = "correct horse battery staple 7";
const N: usize = 200;

/// Where a burst goes: the app, and on PostgreSQL a second node of its database too.
struct Targets {
    urls: Vec<String>,
    _node: Option<Node>,
}

async fn targets(app: &TestApp) -> Targets {
    let node = match app.db.backend {
        Backend::Postgres => Some(app.second_node(|_| {}).await),
        Backend::Sqlite => None,
    };
    let mut urls = vec![app.url.clone()];
    urls.extend(node.as_ref().map(|n| n.url.clone()));
    Targets { urls, _node: node }
}

/// `n` JSON POSTs of `body(i)` to `path`, spread over the targets.
fn posts(
    t: &Targets,
    path: &str,
    headers: &[(&str, &str)],
    n: usize,
    body: impl Fn(usize) -> Value,
) -> Vec<RawRequest> {
    (0..n)
        .map(|i| RawRequest::post_json(&t.urls[i % t.urls.len()], path, headers, &body(i)))
        .collect()
}

fn count(answers: &[RawResponse], status: u16) -> usize {
    answers.iter().filter(|a| a.status == status).count()
}

/// The statuses of a burst, for failure messages.
fn statuses(answers: &[RawResponse]) -> String {
    let mut seen: std::collections::BTreeMap<u16, usize> = Default::default();
    for a in answers {
        *seen.entry(a.status).or_default() += 1;
    }
    format!("{seen:?}")
}

async fn audit_count(app: &TestApp, event: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE event = $1")
        .bind(event)
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

/// A code of `secret` that is certainly wrong now (the right one with its last digit moved).
fn wrong_code(right: &str, i: usize) -> String {
    let mut c: Vec<u8> = right.bytes().collect();
    let last = c.len() - 1;
    c[last] = b'0' + ((c[last] - b'0' + 1 + (i % 9) as u8) % 10);
    String::from_utf8(c).unwrap()
}

/// The backoff rule, as the reservation statement applies it: (attempts on record, seconds
/// since the last) → granted, or refused with the wait.
async fn reservation_follows_the_rule(db: TestDb) {
    let store = db.store().await;
    let budget = Budget::second_factor();
    let now = time::OffsetDateTime::now_utc();
    let key = AttemptKey::LoginIp("192.0.2.9".parse().unwrap());
    let cases: [(i64, i64, Reservation); 8] = [
        (9, 0, Reservation::Granted { count: 10 }),
        (
            10,
            10,
            Reservation::Refused {
                retry_after_secs: 20,
            },
        ),
        (10, 31, Reservation::Granted { count: 11 }),
        (
            12,
            100,
            Reservation::Refused {
                retry_after_secs: 20,
            },
        ),
        (12, 121, Reservation::Granted { count: 13 }),
        (
            20,
            3_599,
            Reservation::Refused {
                retry_after_secs: 1,
            },
        ),
        (20, 3_601, Reservation::Granted { count: 1 }),
        (
            40,
            1_800,
            Reservation::Refused {
                retry_after_secs: 1_800,
            },
        ),
    ];
    for (failures, age, expected) in cases {
        let last = now - Duration::seconds(age);
        sqlx::query("DELETE FROM attempt_budgets")
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO attempt_budgets (key, failures, last_failure_at) VALUES ($1, $2, $3)",
        )
        .bind(key.to_string())
        .bind(failures)
        .bind((last.unix_timestamp_nanos() / 1_000_000) as i64)
        .execute(store.pool())
        .await
        .unwrap();
        let got = store.reserve_attempt(&key, &budget, now).await.unwrap();
        assert_eq!(got, expected, "{failures} attempts {age} s ago");
    }
}
both_backends!(reservation_rule_case, reservation_follows_the_rule);

/// 200 concurrent reservations on one key grant exactly the burst; another key beside them is
/// not touched; given back and cleared attempts no longer count.
async fn concurrent_reservations_grant_the_burst(db: TestDb) {
    let store = std::sync::Arc::new(db.store().await);
    let budget = Budget::second_factor();
    let now = time::OffsetDateTime::now_utc();
    let owner = Owner::Subject(uuid::Uuid::new_v4());
    let key = AttemptKey::SecondFactor(owner);
    let other = AttemptKey::SecondFactor(Owner::Subject(uuid::Uuid::new_v4()));
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (store, key) = (
                store.clone(),
                if i % 20 == 0 {
                    other.clone()
                } else {
                    key.clone()
                },
            );
            tokio::spawn(async move { store.reserve_attempt(&key, &budget, now).await.unwrap() })
        })
        .collect();
    let mut granted = std::collections::BTreeMap::<String, Vec<u32>>::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if let Reservation::Granted { count } = t.await.unwrap() {
            let k = if i % 20 == 0 { "other" } else { "key" };
            granted.entry(k.into()).or_default().push(count);
        }
    }
    for counts in granted.values_mut() {
        counts.sort_unstable();
    }
    assert_eq!(granted["key"], (1..=10).collect::<Vec<_>>());
    assert_eq!(granted["other"], (1..=10).collect::<Vec<_>>());
    // Spent: refused with the backoff's first wait.
    assert_eq!(
        store.reserve_attempt(&key, &budget, now).await.unwrap(),
        Reservation::Refused {
            retry_after_secs: 30
        }
    );
    store.give_back_attempt(&key).await.unwrap();
    assert_eq!(
        store.reserve_attempt(&key, &budget, now).await.unwrap(),
        Reservation::Granted { count: 10 }
    );
    store.clear_attempts(&key).await.unwrap();
    assert_eq!(
        store.reserve_attempt(&key, &budget, now).await.unwrap(),
        Reservation::Granted { count: 1 }
    );
}
both_backends!(
    concurrent_reservations_case,
    concurrent_reservations_grant_the_burst
);

/// A verification-API subject with an authenticator app: (API key, subject, TOTP secret).
async fn api_subject(app: &TestApp) -> (String, String, String) {
    let (_, key) = app.core.create_api_key("acme", "test").await.unwrap();
    let subject = "user-1";
    let c = reqwest::Client::new();
    let created: Value = c
        .post(app.at(&format!("/api/v1/subjects/{subject}/factors")))
        .bearer_auth(&key)
        .json(&json!({ "type": "totp", "label": "phone" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, secret) = (
        created["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    let r = c
        .post(app.at(&format!("/api/v1/subjects/{subject}/factors/{id}/confirm")))
        .bearer_auth(&key)
        .json(&json!({ "code": oathtool_code(secret, app.clock.now()) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The confirming step is used; the next checks use later steps.
    app.clock.advance(Duration::seconds(30));
    (key, subject.into(), secret.into())
}

/// `/verify`: a burst of wrong codes is answered `valid:false` at most ten times, the rest
/// 429; the right code after them is refused.
async fn verify_burst_evaluates_at_most_the_limit(db: TestDb) {
    let app = spawn_app(db).await;
    let (key, subject, secret) = api_subject(&app).await;
    let t = targets(&app).await;
    let right = oathtool_code(&secret, app.clock.now());
    let auth = format!("Bearer {key}");
    let path = format!("/api/v1/subjects/{subject}/verify");
    let answers = burst(posts(
        &t,
        &path,
        &[("Authorization", &auth)],
        N,
        |i| json!({ "code": wrong_code(&right, i) }),
    ))
    .await;
    let evaluated = answers
        .iter()
        .filter(|a| a.status == 200 && a.json()["valid"] == false)
        .count();
    assert!(
        (1..=10).contains(&evaluated),
        "{evaluated} evaluated: {}",
        statuses(&answers)
    );
    assert_eq!(
        count(&answers, 429),
        N - evaluated,
        "{}",
        statuses(&answers)
    );
    assert_eq!(
        audit_count(&app, "second_factor_failed").await,
        evaluated as i64
    );
    let after = burst(posts(
        &t,
        &path,
        &[("Authorization", &auth)],
        1,
        |_| json!({ "code": right }),
    ))
    .await;
    assert_eq!(after[0].status, 429, "{}", after[0].body);
}
both_backends!(verify_burst_case, verify_burst_evaluates_at_most_the_limit);

/// 50 requests with one right code at once: exactly one succeeds, and the others, racing it,
/// leave nothing on the budget (they proved nothing), so the next wrong code is answered.
async fn replayed_right_code_gives_its_attempt_back(db: TestDb) {
    let app = spawn_app(db).await;
    let (key, subject, secret) = api_subject(&app).await;
    let t = targets(&app).await;
    let right = oathtool_code(&secret, app.clock.now());
    let auth = format!("Bearer {key}");
    let path = format!("/api/v1/subjects/{subject}/verify");
    let answers = burst(posts(
        &t,
        &path,
        &[("Authorization", &auth)],
        50,
        |_| json!({ "code": right }),
    ))
    .await;
    let valid = answers.iter().filter(|a| a.json()["valid"] == true).count();
    assert_eq!(valid, 1, "{}", statuses(&answers));
    assert_eq!(audit_count(&app, "second_factor_failed").await, 0);
    let left: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(failures), 0) AS BIGINT) FROM attempt_budgets WHERE key LIKE 'second_factor:%'",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(left, 0);
    let next = burst(posts(
        &t,
        &path,
        &[("Authorization", &auth)],
        1,
        |_| json!({ "code": wrong_code(&right, 0) }),
    ))
    .await;
    assert_eq!(next[0].status, 200, "{}", next[0].body);
    assert_eq!(next[0].json()["valid"], false);
}
both_backends!(replay_race_case, replayed_right_code_gives_its_attempt_back);

/// The `name=value` pairs of a response's cookies, as a `Cookie` header.
fn cookies(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ")
}

/// An account with an authenticator app, and a waiting second step: (cookie, TOTP secret).
async fn waiting_second_step(app: &TestApp) -> (String, String) {
    app.verified_account("ann@example.com", PW).await;
    let c = app.client();
    app.log_in_json(&c, "ann@example.com", PW).await;
    let (secret, _) = app.enroll_totp(&c, "phone").await;
    app.clock.advance(Duration::seconds(30));
    let r = reqwest::Client::new()
        .post(app.at("/api/v1/session"))
        .json(&json!({ "email": "ann@example.com", "password": PW }))
        .send()
        .await
        .unwrap();
    let cookie = cookies(&r);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "second_factor_required", "{v}");
    (cookie, secret)
}

/// The second step: a burst on one waiting sign-in checks at most its five codes; the sign-in
/// is then void, and the right code does not sign in.
async fn second_step_burst_checks_at_most_five(db: TestDb) {
    let app = spawn_app(db).await;
    let (cookie, secret) = waiting_second_step(&app).await;
    let t = targets(&app).await;
    let right = app.code_now(&secret);
    let path = "/api/v1/session/second-factor";
    let answers = burst(posts(
        &t,
        path,
        &[("Cookie", &cookie)],
        N,
        |i| json!({ "code": wrong_code(&right, i) }),
    ))
    .await;
    let evaluated = audit_count(&app, "second_factor_failed").await;
    assert!(
        (1..=5).contains(&evaluated),
        "{evaluated}: {}",
        statuses(&answers)
    );
    assert_eq!(count(&answers, 200), 0);
    assert!(count(&answers, 422) <= 4, "{}", statuses(&answers));
    let after = burst(posts(
        &t,
        path,
        &[("Cookie", &cookie)],
        1,
        |_| json!({ "code": right }),
    ))
    .await;
    assert_eq!(after[0].status, 401, "{}", after[0].body);
}
both_backends!(
    second_step_burst_case,
    second_step_burst_checks_at_most_five
);

/// Step-up in a signed-in session: a burst checks at most the account's ten codes.
async fn step_up_burst_checks_at_most_ten(db: TestDb) {
    let app = spawn_app(db).await;
    let (cookie, secret) = waiting_second_step(&app).await;
    let c = reqwest::Client::new();
    let r = c
        .post(app.at("/api/v1/session/second-factor"))
        .header("cookie", &cookie)
        .json(&json!({ "code": app.code_now(&secret) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = cookies(&r);
    app.clock.advance(Duration::seconds(30));
    let t = targets(&app).await;
    let right = app.code_now(&secret);
    let path = "/api/v1/session/step-up";
    let answers = burst(posts(
        &t,
        path,
        &[("Cookie", &cookie)],
        N,
        |i| json!({ "code": wrong_code(&right, i) }),
    ))
    .await;
    let evaluated = count(&answers, 422);
    assert!((1..=10).contains(&evaluated), "{}", statuses(&answers));
    assert_eq!(
        count(&answers, 429),
        N - evaluated,
        "{}",
        statuses(&answers)
    );
    let after = burst(posts(
        &t,
        path,
        &[("Cookie", &cookie)],
        1,
        |_| json!({ "code": right }),
    ))
    .await;
    assert_eq!(after[0].status, 429, "{}", after[0].body);
}
both_backends!(step_up_burst_case, step_up_burst_checks_at_most_ten);

/// The password: a burst of wrong passwords for one account checks at most six (five free
/// and the one that starts the wait); the right password after them is refused.
async fn password_burst_checks_at_most_six(db: TestDb) {
    let app = spawn_app(db).await;
    app.verified_account("bob@example.com", PW).await;
    let t = targets(&app).await;
    let path = "/api/v1/session";
    let answers = burst(posts(
        &t,
        path,
        &[],
        N,
        |i| json!({ "email": "bob@example.com", "password": format!("wrong password {i}") }),
    ))
    .await;
    let evaluated = count(&answers, 401);
    assert!((1..=6).contains(&evaluated), "{}", statuses(&answers));
    assert_eq!(audit_count(&app, "login_failed").await, evaluated as i64);
    let right = burst(posts(
        &t,
        path,
        &[],
        1,
        |_| json!({ "email": "bob@example.com", "password": PW }),
    ))
    .await;
    assert_eq!(right[0].status, 429, "{}", right[0].body);
}
both_backends!(password_burst_case, password_burst_checks_at_most_six);

/// The code emailed for a new browser: a burst on one waiting sign-in checks at most five;
/// the sign-in is then over, and the right code does not sign in.
async fn device_code_burst_checks_at_most_five(db: TestDb) {
    let app = spawn_app_with(db, |s| s.devices = Default::default()).await;
    app.verified_account("cy@example.com", PW).await;
    let r = reqwest::Client::new()
        .post(app.at("/api/v1/session"))
        .json(&json!({ "email": "cy@example.com", "password": PW }))
        .send()
        .await
        .unwrap();
    let cookie = cookies(&r);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "device_verification_required", "{v}");
    let mail = app.smtp.wait_for("cy@example.com", 1).await;
    assert!(
        mail.subject().starts_with("Confirm your sign-in"),
        "{}",
        mail.subject()
    );
    let right = mail.subject().rsplit(' ').next().unwrap().to_owned();
    let t = targets(&app).await;
    let path = "/api/v1/session/device";
    let answers = burst(posts(
        &t,
        path,
        &[("Cookie", &cookie)],
        N,
        |i| json!({ "code": wrong_code(&right, i) }),
    ))
    .await;
    let evaluated = audit_count(&app, "device_code_failed").await
        + audit_count(&app, "device_verification_void").await;
    assert!(
        (1..=5).contains(&evaluated),
        "{evaluated}: {}",
        statuses(&answers)
    );
    assert_eq!(count(&answers, 200), 0, "{}", statuses(&answers));
    let after = burst(posts(
        &t,
        path,
        &[("Cookie", &cookie)],
        1,
        |_| json!({ "code": right }),
    ))
    .await;
    assert_eq!(after[0].status, 401, "{}", after[0].body);
}
both_backends!(
    device_code_burst_case,
    device_code_burst_checks_at_most_five
);
