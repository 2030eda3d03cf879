//! Mail goes through the outbox: nothing is lost while SMTP is down, and no two deliveries
//! of one message happen even with several workers.

use std::collections::HashSet;
use std::sync::Arc;
use time::Duration;
use twofold_core::Clock;
use twofold_core::model::NewOutboxItem;
use twofold_core::ports::OutboxStore;
use twofold_testkit::{TestDb, both_backends, spawn_app};

const PW: &str = "correct horse battery staple 42";

async fn mail_survives_an_smtp_outage(db: TestDb) {
    let app = spawn_app(db).await;
    app.smtp.stop();
    let c = app.client();
    let r = c
        .post(app.at("/api/v1/signup"))
        .json(&serde_json::json!({"email": "outage@example.com", "password": PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // Let the worker fail a few times against the dead server.
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        app.clock.advance(Duration::seconds(30));
        app.core.outbox_wakeup().notify_one();
    }
    assert_eq!(app.smtp.count_to("outage@example.com"), 0);
    assert_eq!(app.core.pending_messages().await.unwrap(), 1);

    app.smtp.restart().await;
    // Time goes on until the retry comes due. Advancing once is not enough: on a loaded
    // machine the worker may still be in the try the last wake-up started, fail it against
    // the server as it comes back, and schedule the next try after the new time.
    for _ in 0..100 {
        app.clock.advance(Duration::minutes(5));
        app.core.outbox_wakeup().notify_one();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if app.smtp.count_to("outage@example.com") > 0 {
            break;
        }
    }
    if app.smtp.count_to("outage@example.com") == 0 {
        let row = sqlx::query(
            "SELECT attempts, next_attempt_at, leased_until, sent_at, failed_at, last_error FROM outbox",
        )
        .fetch_one(app.store.pool())
        .await
        .unwrap();
        use sqlx::Row;
        panic!(
            "not delivered after the outage: attempts {:?}, next {:?}, leased {:?}, sent {:?}, failed {:?}, error {:?}; clock {}",
            row.try_get::<i64, _>("attempts"),
            row.try_get::<i64, _>("next_attempt_at"),
            row.try_get::<Option<i64>, _>("leased_until"),
            row.try_get::<Option<i64>, _>("sent_at"),
            row.try_get::<Option<i64>, _>("failed_at"),
            row.try_get::<Option<String>, _>("last_error"),
            (app.clock.now().unix_timestamp_nanos() / 1_000_000),
        );
    }
    let mail = app.smtp.wait_for("outage@example.com", 0).await;
    assert!(mail.token("/verify-email").is_some());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.smtp.count_to("outage@example.com"),
        1,
        "delivered exactly once"
    );
    assert_eq!(app.core.pending_messages().await.unwrap(), 0);
}
both_backends!(smtp_outage_case, mail_survives_an_smtp_outage);

async fn concurrent_claims_never_share_a_message(db: TestDb) {
    let store = Arc::new(db.store().await);
    let now = time::OffsetDateTime::now_utc();
    for i in 0..60u8 {
        let item = NewOutboxItem {
            id: uuid::Uuid::now_v7(),
            kind: "test",
            key_id: "k".into(),
            payload: vec![i],
            created_at: now,
            give_up_at: None,
        };
        store.enqueue(&item, None).await.unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_outbox(now, now + Duration::minutes(2), 7)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    break;
                }
                mine.extend(batch.into_iter().map(|i| i.id));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 60, "every message claimed once");
    assert_eq!(unique.len(), 60, "no message claimed twice");
    // Leased messages stay invisible until the lease runs out.
    assert!(
        store
            .claim_outbox(now, now + Duration::minutes(2), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .claim_outbox(now + Duration::minutes(3), now + Duration::minutes(5), 100)
            .await
            .unwrap()
            .len(),
        60
    );
}
both_backends!(claim_case, concurrent_claims_never_share_a_message);
