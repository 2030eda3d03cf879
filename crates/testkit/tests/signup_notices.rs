//! "Sign-up attempt" notices to the owner of a taken address: at most one a minute, however
//! many sign-ups arrive at once (the conditional upsert that queues the mail is what refuses
//! the rest), and the next one once the minute has passed.

use serde_json::json;
use time::Duration;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app};

const PW: &str = "correct horse battery staple";

/// Notices queued so far: the outbox row is written in the request's own transaction, so
/// once every request has answered this is final.
async fn queued_notices(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE kind = 'signup_existing'")
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

async fn sign_up(url: String, email: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .json(&json!({ "email": email, "password": "another horse battery staple" }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn one_notice_per_interval(db: TestDb) {
    let app = spawn_app(db).await;
    let email = "taken@example.com";
    app.verified_account(email, PW).await;
    let before = app.smtp.count_to(email);

    let url = app.at("/api/v1/signup");
    let mut parallel = tokio::task::JoinSet::new();
    for _ in 0..8 {
        parallel.spawn(sign_up(url.clone(), email));
    }
    let answers = parallel.join_all().await;
    assert!(answers.iter().all(|s| *s == 202), "{answers:?}");
    assert_eq!(queued_notices(&app).await, 1);
    let mail = app.smtp.wait_for(email, before).await;
    assert!(
        mail.subject().contains("Sign-up attempt"),
        "{}",
        mail.subject()
    );

    // Within the minute: still one. After it: the next attempt is told again.
    app.clock.advance(Duration::seconds(59));
    assert_eq!(sign_up(url.clone(), email).await, 202);
    assert_eq!(queued_notices(&app).await, 1);
    app.clock.advance(Duration::seconds(1));
    assert_eq!(sign_up(url.clone(), email).await, 202);
    assert_eq!(queued_notices(&app).await, 2);
    app.smtp.wait_for(email, before + 1).await;
}
both_backends!(one_notice_per_interval_case, one_notice_per_interval);
