//! The writes of a sign-in — a session with its audit row, a partial session replaced by a
//! full one, a browser and network remembered — are all or nothing on both backends (on
//! PostgreSQL each is one statement, on SQLite a transaction), and a partial session that is
//! gone already is not completed.

use time::{Duration, OffsetDateTime};
use twofold_core::model::*;
use twofold_core::ports::{AccountStore, DeviceStore, SessionStore};
use twofold_store::SqlStore;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app};
use uuid::Uuid;

const PW: &str = "correct horse battery staple 42";

fn session(account: AccountId, kind: SessionKind, now: OffsetDateTime) -> NewSession {
    NewSession {
        session: Session {
            id: Uuid::new_v4(),
            account_id: account,
            kind,
            factor_failures: 0,
            step_up_at: (kind == SessionKind::Full).then_some(now),
            amr: vec!["pwd".into()],
            auth_time: now,
            created_at: now,
            last_seen_at: now,
            expires_at: now + Duration::hours(1),
            ip: Some("192.0.2.7".into()),
            user_agent: Some("test agent".into()),
            security_stamp: "stamp".into(),
        },
        token_hash: Uuid::new_v4().as_bytes().to_vec(),
    }
}

fn audit(account: AccountId, event: &'static str, now: OffsetDateTime) -> AuditEvent {
    AuditEvent {
        id: Uuid::new_v4(),
        at: now,
        account_id: Some(account),
        event,
        ip: Some("192.0.2.7".into()),
        user_agent: None,
        detail: serde_json::json!({ "n": 1 }),
    }
}

async fn count(store: &SqlStore, sql: &str, id: String) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

async fn sessions_with(store: &SqlStore, id: Uuid) -> i64 {
    count(
        store,
        "SELECT COUNT(*) FROM sessions WHERE id = $1",
        id.to_string(),
    )
    .await
}

async fn audit_rows(store: &SqlStore, id: Uuid) -> i64 {
    count(
        store,
        "SELECT COUNT(*) FROM audit_log WHERE id = $1",
        id.to_string(),
    )
    .await
}

/// An app with one verified account, and that account's id.
async fn app_with_account(db: TestDb, email: &str) -> (TestApp, AccountId) {
    let app = spawn_app(db).await;
    app.verified_account(email, PW).await;
    let account = app.store.account_by_email(email).await.unwrap().unwrap().id;
    (app, account)
}

async fn session_writes_are_whole(db: TestDb) {
    let (app, account) = app_with_account(db, "writes@example.com").await;
    let store = &app.store;
    let now = OffsetDateTime::now_utc();

    let partial = session(account, SessionKind::Partial, now);
    let first = audit(account, "login_password_ok", now);
    store.create_session(&partial, &first).await.unwrap();
    assert_eq!(sessions_with(store, partial.session.id).await, 1);
    assert_eq!(audit_rows(store, first.id).await, 1);

    // An audit row that cannot be written (its id is taken) takes the session with it.
    let orphan = session(account, SessionKind::Partial, now);
    assert!(store.create_session(&orphan, &first).await.is_err());
    assert_eq!(sessions_with(store, orphan.session.id).await, 0);

    // Completing: the partial session goes, the full one and its audit row come.
    let full = session(account, SessionKind::Full, now);
    let done = audit(account, "login_ok", now);
    assert!(
        store
            .complete_partial_session(partial.session.id, &full, &done)
            .await
            .unwrap()
    );
    assert_eq!(sessions_with(store, partial.session.id).await, 0);
    assert_eq!(sessions_with(store, full.session.id).await, 1);
    assert_eq!(audit_rows(store, done.id).await, 1);
    let (found, _) = store
        .session_by_token_hash(&full.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.kind, SessionKind::Full);
    assert_eq!(found.amr, vec!["pwd".to_owned()]);
    assert_eq!(found.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(
        found.step_up_at.map(|t| t.unix_timestamp()),
        Some(now.unix_timestamp())
    );

    // The same partial session cannot be completed twice, nor a full one at all: nothing is
    // written.
    for gone in [partial.session.id, full.session.id] {
        let again = session(account, SessionKind::Full, now);
        let again_audit = audit(account, "login_ok", now);
        assert!(
            !store
                .complete_partial_session(gone, &again, &again_audit)
                .await
                .unwrap()
        );
        assert_eq!(sessions_with(store, again.session.id).await, 0);
        assert_eq!(audit_rows(store, again_audit.id).await, 0);
    }
    assert_eq!(sessions_with(store, full.session.id).await, 1);

    // A completion whose audit row fails leaves the partial session in place.
    let partial = session(account, SessionKind::Partial, now);
    store
        .create_session(&partial, &audit(account, "login_password_ok", now))
        .await
        .unwrap();
    let full = session(account, SessionKind::Full, now);
    assert!(
        store
            .complete_partial_session(partial.session.id, &full, &done)
            .await
            .is_err()
    );
    assert_eq!(sessions_with(store, partial.session.id).await, 1);
    assert_eq!(sessions_with(store, full.session.id).await, 0);
}
both_backends!(session_writes_case, session_writes_are_whole);

async fn remembered_devices_are_whole(db: TestDb) {
    let (app, account) = app_with_account(db, "devices@example.com").await;
    let store = &app.store;
    let now = OffsetDateTime::now_utc();
    let device = |at: OffsetDateTime, agent: &str| KnownDevice {
        id: Uuid::new_v4(),
        account_id: account,
        user_agent: Some(agent.into()),
        ip: Some("192.0.2.7".into()),
        first_seen_at: at,
        last_seen_at: at,
    };
    let hash = b"browser one".as_slice();
    let seen = |hash: &'static [u8], network: &'static str| async move {
        store.seen(account, hash, Some(network)).await.unwrap()
    };
    assert!(!seen(b"browser one", "192.0.2.0/24").await.device);

    let remembered = audit(account, "device_remembered", now);
    store
        .remember_device(
            &device(now, "first agent"),
            Some(hash),
            Some("192.0.2.0/24"),
            None,
            Some(&remembered),
        )
        .await
        .unwrap();
    let s = seen(b"browser one", "192.0.2.0/24").await;
    assert!(s.device && s.network == Some(true));
    assert_eq!(audit_rows(store, remembered.id).await, 1);

    // Seen again later: the same browser is updated, not added.
    let later = now + Duration::minutes(5);
    store
        .remember_device(
            &device(later, "second agent"),
            Some(hash),
            Some("192.0.2.0/24"),
            None,
            Some(&audit(account, "device_remembered", later)),
        )
        .await
        .unwrap();
    let devices = store.known_devices_of(account).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].user_agent.as_deref(), Some("second agent"));
    assert_eq!(
        devices[0].last_seen_at.unix_timestamp(),
        later.unix_timestamp()
    );
    assert_eq!(
        devices[0].first_seen_at.unix_timestamp(),
        now.unix_timestamp()
    );

    // A client without a cookie: only its network, and no audit row.
    store
        .remember_device(
            &device(later, "no cookie"),
            None,
            Some("198.51.100.0/24"),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(seen(b"", "198.51.100.0/24").await.network, Some(true));
    assert_eq!(store.known_devices_of(account).await.unwrap().len(), 1);

    // An audit row that cannot be written takes the browser and network with it.
    let failed = store
        .remember_device(
            &device(later, "third agent"),
            Some(b"browser two"),
            Some("203.0.113.0/24"),
            None,
            Some(&remembered),
        )
        .await;
    assert!(failed.is_err());
    let s = seen(b"browser two", "203.0.113.0/24").await;
    assert!(!s.device && s.network == Some(false));
    assert_eq!(store.known_devices_of(account).await.unwrap().len(), 1);
}
both_backends!(remembered_devices_case, remembered_devices_are_whole);
