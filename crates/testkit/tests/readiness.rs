//! `/readyz` proves that a write commits, and writes at most once per interval.

use time::Duration;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app};

async fn beat(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT beat_at FROM heartbeat WHERE id = 1")
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

async fn readyz(app: &TestApp) -> u16 {
    reqwest::get(app.at("/readyz"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn readiness_writes_a_heartbeat(db: TestDb) {
    let app = spawn_app(db).await;
    assert_eq!(readyz(&app).await, 200);
    let first = beat(&app).await;
    assert!(first > 0, "the probe wrote its heartbeat");
    // Within the interval the probe trusts its last write.
    app.clock.advance(Duration::seconds(1));
    assert_eq!(readyz(&app).await, 200);
    assert_eq!(beat(&app).await, first);
    app.clock.advance(Duration::seconds(2));
    assert_eq!(readyz(&app).await, 200);
    assert!(beat(&app).await > first, "written again after the interval");

    // A write that cannot commit makes the node not ready, at once after the interval,
    // and ready again as soon as writes commit.
    sqlx::query("DELETE FROM heartbeat")
        .execute(app.store.pool())
        .await
        .unwrap();
    app.clock.advance(Duration::seconds(3));
    assert_eq!(readyz(&app).await, 503);
    assert_eq!(
        readyz(&app).await,
        503,
        "a failed write is not remembered as fresh"
    );
    sqlx::query("INSERT INTO heartbeat (id, beat_at) VALUES (1, 0)")
        .execute(app.store.pool())
        .await
        .unwrap();
    assert_eq!(readyz(&app).await, 200);
}
both_backends!(heartbeat, readiness_writes_a_heartbeat);

/// PostgreSQL sessions carry statement, lock and idle-transaction limits (migrations ran
/// without the first two, on a connection closed afterwards).
async fn postgres_sessions_are_bounded(db: TestDb) {
    let app = spawn_app(db).await;
    if app.store.backend() != twofold_store::Backend::Postgres {
        return;
    }
    for _ in 0..4 {
        let row: (String, String, String) = sqlx::query_as(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),
                    current_setting('idle_in_transaction_session_timeout')",
        )
        .fetch_one(app.store.pool())
        .await
        .unwrap();
        assert_eq!(row, ("15s".into(), "10s".into(), "30s".into()));
    }
}
both_backends!(session_limits, postgres_sessions_are_bounded);
