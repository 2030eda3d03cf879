//! Prometheus `/metrics`: parsed by an independent parser (the prometheus-parse crate), with
//! logins by outcome, second-factor checks by method and outcome, security events by name,
//! HTTP latency histograms per route pattern and database pool use; only loopback scrapers
//! without a token, only the right bearer token with one.

use prometheus_parse::{Scrape, Value};
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app, spawn_app_configured};

const PW: &str = "correct horse battery staple";

async fn scrape(app: &TestApp, auth: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(app.at("/metrics"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            Value::Summary(_) => f64::NAN,
        })
        .reduce(|a, b| a + b)
}

async fn figures(db: TestDb) {
    let app = spawn_app(db).await;
    let email = "metrics@example.com";
    app.verified_account(email, PW).await;
    let c = app.client();
    app.log_in(&c, email, PW).await;
    let (secret, _) = app.enroll_totp(&c, "phone").await;
    app.log_out(&c).await;
    app.log_in(&c, email, "wrong password").await;
    app.log_in(&c, email, PW).await;
    app.second_factor(&c, "000000").await;
    app.clock.advance(time::Duration::seconds(30));
    app.second_factor(&c, &app.code_now(&secret)).await;

    let (status, text) = scrape(&app, None).await;
    assert_eq!(status, 200, "a loopback scraper needs no token");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = Scrape::parse(lines).expect("Prometheus text format");
    let at_least = |name: &str, labels: &[(&str, &str)], n: f64| {
        let v = value(&parsed, name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} missing:\n{text}"));
        assert!(v >= n, "{name} {labels:?} = {v}, expected ≥ {n}");
    };
    at_least("twofold_logins_total", &[("outcome", "signed_in")], 1.0);
    at_least(
        "twofold_logins_total",
        &[("outcome", "invalid_credentials")],
        1.0,
    );
    at_least(
        "twofold_logins_total",
        &[("outcome", "second_factor_required")],
        1.0,
    );
    at_least(
        "twofold_second_factor_checks_total",
        &[("method", "code"), ("outcome", "wrong")],
        1.0,
    );
    at_least(
        "twofold_second_factor_checks_total",
        &[("method", "totp"), ("outcome", "success")],
        1.0,
    );
    at_least(
        "twofold_events_total",
        &[("event", "factor_enrollment_started")],
        1.0,
    );
    at_least("twofold_events_total", &[("event", "login_failed")], 1.0);
    at_least("twofold_enrollments_total", &[("method", "totp")], 1.0);
    at_least(
        "twofold_http_request_duration_seconds_count",
        &[("route", "/api/v1/session"), ("method", "POST")],
        3.0,
    );
    at_least("twofold_db_pool_connections", &[("state", "idle")], 0.0);
    // The second step's code check read its factors and budget in a group.
    at_least(
        "twofold_code_check_group_seconds_count",
        &[("statement", "check_state")],
        1.0,
    );
    assert!(!text.contains(email), "no personal data in metrics");
    assert!(!text.contains(&secret), "no secrets in metrics");
}
both_backends!(metrics_parse_and_count, figures);

async fn guarded(db: TestDb) {
    let app = spawn_app_configured(
        db,
        |_| {},
        |w| w.metrics_token = Some("s3cret-scrape-token".to_owned().into()),
    )
    .await;
    assert_eq!(scrape(&app, None).await.0, 401);
    assert_eq!(scrape(&app, Some("Bearer wrong")).await.0, 401);
    assert_eq!(scrape(&app, Some("s3cret-scrape-token")).await.0, 401);
    assert_eq!(
        scrape(&app, Some("Bearer s3cret-scrape-token")).await.0,
        200
    );

    // Without a token, a client elsewhere (through the trusted proxy) is refused.
    let open = spawn_app(TestDb::sqlite().await).await;
    let r = reqwest::Client::new()
        .get(open.at("/metrics"))
        .header("x-forwarded-for", "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
both_backends!(metrics_need_loopback_or_the_token, guarded);
