//! The writes of a sign-in — a session with its audit row, a partial session replaced by a
//! full one, a browser and network remembered — are all or nothing on both backends (on
//! PostgreSQL each is one statement; on SQLite a new session is one statement through the
//! `session_writes` view's trigger, the rest transactions), and a partial session that is gone
//! already is not completed.

use time::{Duration, OffsetDateTime};
use twofold_core::Clock;
use twofold_core::model::*;
use twofold_core::ports::{
    AccountStore, DeviceRecord, DeviceStore, FactorStore, SessionStore, SessionSwap,
};
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

fn swap(partial: SessionId, full: &NewSession, audit: &AuditEvent) -> SessionSwap {
    SessionSwap {
        partial,
        full: full.clone(),
        audit: audit.clone(),
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
    store.create_session(&partial, &first, None).await.unwrap();
    assert_eq!(sessions_with(store, partial.session.id).await, 1);
    assert_eq!(audit_rows(store, first.id).await, 1);

    // An audit row that cannot be written (its id is taken) takes the session with it.
    let orphan = session(account, SessionKind::Partial, now);
    assert!(store.create_session(&orphan, &first, None).await.is_err());
    assert_eq!(sessions_with(store, orphan.session.id).await, 0);

    // Completing: the partial session goes, the full one and its audit row come.
    let full = session(account, SessionKind::Full, now);
    let done = audit(account, "login_ok", now);
    assert!(
        store
            .complete_partial_session(&swap(partial.session.id, &full, &done))
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
                .complete_partial_session(&swap(gone, &again, &again_audit))
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
        .create_session(&partial, &audit(account, "login_password_ok", now), None)
        .await
        .unwrap();
    let full = session(account, SessionKind::Full, now);
    assert!(
        store
            .complete_partial_session(&swap(partial.session.id, &full, &done))
            .await
            .is_err()
    );
    assert_eq!(sessions_with(store, partial.session.id).await, 1);
    assert_eq!(sessions_with(store, full.session.id).await, 0);
}
both_backends!(session_writes_case, session_writes_are_whole);

async fn last_step(store: &SqlStore, factor: Uuid) -> i64 {
    count(
        store,
        "SELECT last_step FROM factors WHERE id = $1",
        factor.to_string(),
    )
    .await
}

/// A second step with a TOTP code is one write: the step is consumed and the partial session
/// replaced in the same commit, or neither happens; a step already used (or a spent budget)
/// swaps nothing, and a partial session gone meanwhile leaves the step used but makes no
/// session.
async fn totp_second_step_is_one_write(db: TestDb) {
    let (app, account) = app_with_account(db, "step@example.com").await;
    let c = app.client();
    assert_eq!(app.log_in(&c, "step@example.com", PW).await.status(), 200);
    app.enroll_totp(&c, "phone").await;
    let store = &app.store;
    let factor: String = sqlx::query_scalar("SELECT id FROM factors WHERE owner = $1")
        .bind(format!("account:{account}"))
        .fetch_one(store.pool())
        .await
        .unwrap();
    let factor: Uuid = factor.parse().unwrap();
    let now = app.clock.now();
    let partial = || async {
        let p = session(account, SessionKind::Partial, now);
        store
            .create_session(&p, &audit(account, "login_password_ok", now), None)
            .await
            .unwrap();
        p.session.id
    };
    let step = last_step(store, factor).await + 10;

    // Signed in: step used, partial gone, full session and its audit row there.
    let first = partial().await;
    let (full, done) = (
        session(account, SessionKind::Full, now),
        audit(account, "login_succeeded", now),
    );
    let signed_in = store
        .sign_in_with_totp_step(factor, step, 1, now, &swap(first, &full, &done))
        .await
        .unwrap();
    assert_eq!(signed_in, Some(true));
    assert_eq!(last_step(store, factor).await, step);
    assert_eq!(sessions_with(store, first).await, 0);
    assert_eq!(sessions_with(store, full.session.id).await, 1);
    assert_eq!(audit_rows(store, done.id).await, 1);

    // The same step again, from another partial session: nothing is written.
    let second = partial().await;
    let (again, again_audit) = (
        session(account, SessionKind::Full, now),
        audit(account, "login_succeeded", now),
    );
    let replayed = store
        .sign_in_with_totp_step(factor, step, 0, now, &swap(second, &again, &again_audit))
        .await
        .unwrap();
    assert_eq!(replayed, None);
    assert_eq!(sessions_with(store, second).await, 1);
    assert_eq!(sessions_with(store, again.session.id).await, 0);
    assert_eq!(audit_rows(store, again_audit.id).await, 0);

    // A swap that cannot be written (its audit id is taken) consumes nothing either.
    let failing = store
        .sign_in_with_totp_step(factor, step + 1, 0, now, &swap(second, &again, &done))
        .await;
    assert!(failing.is_err());
    assert_eq!(last_step(store, factor).await, step);
    assert_eq!(sessions_with(store, second).await, 1);
    assert_eq!(sessions_with(store, again.session.id).await, 0);

    // The partial session is gone (here: the first one, used): the step is used up, and no
    // session or audit row is made.
    let late = store
        .sign_in_with_totp_step(factor, step + 2, 0, now, &swap(first, &again, &again_audit))
        .await
        .unwrap();
    assert_eq!(late, Some(false));
    assert_eq!(last_step(store, factor).await, step + 2);
    assert_eq!(sessions_with(store, again.session.id).await, 0);
    assert_eq!(audit_rows(store, again_audit.id).await, 0);

    // A used step from a partial session that is gone as well: not consumed, which the
    // caller counts as a wrong code, rather than a consumed step without a session.
    let replayed_late = store
        .sign_in_with_totp_step(factor, step + 2, 0, now, &swap(first, &again, &again_audit))
        .await
        .unwrap();
    assert_eq!(replayed_late, None);
    assert_eq!(sessions_with(store, again.session.id).await, 0);
}
both_backends!(totp_second_step_case, totp_second_step_is_one_write);

/// A device record for `account` as of `at`.
fn record(
    account: AccountId,
    at: OffsetDateTime,
    agent: &str,
    hash: Option<&[u8]>,
    network: &str,
    audit: Option<AuditEvent>,
) -> DeviceRecord {
    DeviceRecord {
        device: KnownDevice {
            id: Uuid::new_v4(),
            account_id: account,
            user_agent: Some(agent.into()),
            ip: Some("192.0.2.7".into()),
            first_seen_at: at,
            last_seen_at: at,
        },
        device_hash: hash.map(<[u8]>::to_vec),
        network: Some(network.into()),
        notice: None,
        audit,
    }
}

async fn remembered_devices_are_whole(db: TestDb) {
    let (app, account) = app_with_account(db, "devices@example.com").await;
    let store = &app.store;
    let now = OffsetDateTime::now_utc();
    let hash = b"browser one".as_slice();
    let seen = |hash: &'static [u8], network: &'static str| async move {
        store.seen(account, hash, Some(network)).await.unwrap()
    };
    let s = seen(b"browser one", "192.0.2.0/24").await;
    assert!(!s.device && s.recorded_at.is_none());

    let remembered = audit(account, "device_remembered", now);
    let first = record(
        account,
        now,
        "first agent",
        Some(hash),
        "192.0.2.0/24",
        Some(remembered.clone()),
    );
    store.remember_device(&first).await.unwrap();
    let s = seen(b"browser one", "192.0.2.0/24").await;
    assert!(s.device && s.network == Some(true));
    assert_eq!(s.recorded_at.map(secs), Some(secs(now)));
    assert_eq!(audit_rows(store, remembered.id).await, 1);

    // Seen again later: the same browser is updated, not added.
    let later = now + Duration::minutes(5);
    let again = record(
        account,
        later,
        "second agent",
        Some(hash),
        "192.0.2.0/24",
        None,
    );
    store.remember_device(&again).await.unwrap();
    let devices = store.known_devices_of(account).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].user_agent.as_deref(), Some("second agent"));
    assert_eq!(secs(devices[0].last_seen_at), secs(later));
    assert_eq!(secs(devices[0].first_seen_at), secs(now));
    let s = seen(b"browser one", "192.0.2.0/24").await;
    assert_eq!(s.recorded_at.map(secs), Some(secs(later)));

    // A client without a cookie: only its network, and no audit row.
    let no_cookie = record(account, later, "no cookie", None, "198.51.100.0/24", None);
    store.remember_device(&no_cookie).await.unwrap();
    assert_eq!(seen(b"", "198.51.100.0/24").await.network, Some(true));
    assert_eq!(store.known_devices_of(account).await.unwrap().len(), 1);
    // A known browser on a network recorded earlier: the older of the two times.
    let s = seen(b"browser one", "198.51.100.0/24").await;
    assert!(s.device && s.network == Some(true));
    assert_eq!(s.recorded_at.map(secs), Some(secs(later)));

    // An audit row that cannot be written takes the browser and network with it.
    let failed = record(
        account,
        later,
        "third agent",
        Some(b"browser two"),
        "203.0.113.0/24",
        Some(remembered.clone()),
    );
    assert!(store.remember_device(&failed).await.is_err());
    let s = seen(b"browser two", "203.0.113.0/24").await;
    assert!(!s.device && s.network == Some(false));
    assert_eq!(store.known_devices_of(account).await.unwrap().len(), 1);
}
both_backends!(remembered_devices_case, remembered_devices_are_whole);

fn secs(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// A sign-in's session and what it records about the browser are one write: either fails,
/// neither lands (one statement on both backends: data-modifying CTEs on PostgreSQL, the
/// `session_writes` view's trigger on SQLite).
async fn session_and_device_are_one_write(db: TestDb) {
    let (app, account) = app_with_account(db, "together@example.com").await;
    let store = &app.store;
    let now = OffsetDateTime::now_utc();
    let hash = b"browser together".as_slice();
    let taken = audit(account, "login_password_ok", now);
    store
        .create_session(&session(account, SessionKind::Partial, now), &taken, None)
        .await
        .unwrap();

    let device_audit = audit(account, "device_remembered", now);
    let device = record(
        account,
        now,
        "agent",
        Some(hash),
        "192.0.2.0/24",
        Some(device_audit.clone()),
    );
    // The session's audit row fails: no browser.
    let lost = session(account, SessionKind::Partial, now);
    assert!(
        store
            .create_session(&lost, &taken, Some(&device))
            .await
            .is_err()
    );
    assert_eq!(sessions_with(store, lost.session.id).await, 0);
    assert!(store.known_devices_of(account).await.unwrap().is_empty());
    assert_eq!(audit_rows(store, device_audit.id).await, 0);
    // The browser's audit row fails (its id is taken): no session, no network.
    let clash = record(
        account,
        now,
        "agent",
        Some(hash),
        "192.0.2.0/24",
        Some(taken.clone()),
    );
    let lost = session(account, SessionKind::Partial, now);
    let fresh = audit(account, "login_password_ok", now);
    assert!(
        store
            .create_session(&lost, &fresh, Some(&clash))
            .await
            .is_err()
    );
    assert_eq!(sessions_with(store, lost.session.id).await, 0);
    assert_eq!(audit_rows(store, fresh.id).await, 0);
    assert_eq!(
        store
            .seen(account, hash, Some("192.0.2.0/24"))
            .await
            .unwrap(),
        twofold_core::device::Seen {
            device: false,
            network: Some(false),
            recorded_at: None
        }
    );

    // Both whole: the session, its audit row, the browser, the network, the browser's audit.
    let kept = session(account, SessionKind::Partial, now);
    let ok = audit(account, "login_password_ok", now);
    store
        .create_session(&kept, &ok, Some(&device))
        .await
        .unwrap();
    assert_eq!(sessions_with(store, kept.session.id).await, 1);
    assert_eq!(audit_rows(store, ok.id).await, 1);
    assert_eq!(audit_rows(store, device_audit.id).await, 1);
    let s = store
        .seen(account, hash, Some("192.0.2.0/24"))
        .await
        .unwrap();
    assert!(s.device && s.network == Some(true));
    // A later visit refreshes the browser without an audit row.
    let later = now + Duration::hours(2);
    let visit = record(
        account,
        later,
        "new agent",
        Some(hash),
        "192.0.2.0/24",
        None,
    );
    store
        .create_session(
            &session(account, SessionKind::Partial, later),
            &audit(account, "login_password_ok", later),
            Some(&visit),
        )
        .await
        .unwrap();
    let devices = store.known_devices_of(account).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].user_agent.as_deref(), Some("new agent"));
    assert_eq!(secs(devices[0].last_seen_at), secs(later));
    let s = store
        .seen(account, hash, Some("192.0.2.0/24"))
        .await
        .unwrap();
    assert_eq!(s.recorded_at.map(secs), Some(secs(later)));
}
both_backends!(session_and_device_case, session_and_device_are_one_write);
