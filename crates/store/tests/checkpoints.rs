//! SQLite's write-ahead log reaches the database file through the store's background
//! checkpoint, since connections never checkpoint inside a write.

use std::time::Duration;
use twofold_store::{ConnectOptions, SqlStore};

#[tokio::test]
async fn the_log_is_checkpointed_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("twofold.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let store = SqlStore::connect(&url, &ConnectOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let auto: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(auto, 0, "writes never checkpoint");
    // Let the checkpoint after the migrations pass, then write about 2 MB.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = std::fs::metadata(&file).unwrap().len();
    let detail = "x".repeat(2_000);
    for i in 0..1_000 {
        sqlx::query("INSERT INTO audit_log (id, at, event, detail) VALUES ($1, $2, 'test', $3)")
            .bind(format!("row-{i}"))
            .bind(i64::from(i))
            .bind(&detail)
            .execute(store.pool())
            .await
            .unwrap();
    }
    let written = std::fs::metadata(&file).unwrap().len();
    let mut grown = written;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        grown = std::fs::metadata(&file).unwrap().len();
        if grown >= before + 1_500_000 {
            break;
        }
    }
    assert!(
        grown >= before + 1_500_000,
        "the database file grew from {before} to {grown} bytes ({written} right after the writes)"
    );
    store.close().await;
}
