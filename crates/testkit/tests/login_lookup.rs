//! The password step's one read: the account, the account's (or the unknown address's) login
//! budget, the client IP's budget and whether the browser and network are known — each from
//! its own key, on both backends, with or without an account behind the address.

use time::{Duration, OffsetDateTime};
use twofold_core::model::*;
use twofold_core::ports::{AccountStore, AttemptStore, DeviceRecord, DeviceStore, LoginLookup};
use twofold_testkit::{TestDb, both_backends, spawn_app};
use uuid::Uuid;

const PREFIX: &str = "login:account:";

fn lookup<'a>(
    email: Option<&'a str>,
    no_account_key: &'a str,
    ip_key: Option<&'a str>,
    device_hash: &'a [u8],
    network: Option<&'a str>,
) -> LoginLookup<'a> {
    LoginLookup {
        email,
        account_key_prefix: PREFIX,
        no_account_key,
        ip_key,
        device_hash,
        network,
    }
}

async fn one_read_answers_each_key(db: TestDb) {
    let app = spawn_app(db).await;
    app.verified_account("lookup@example.com", "correct horse battery staple 42")
        .await;
    let store = &app.store;
    let account = store
        .account_by_email("lookup@example.com")
        .await
        .unwrap()
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let window = now - Duration::hours(1);
    let account_key = format!("{PREFIX}{}", account.id);
    // The account's own address, from its browser and network.
    let home = lookup(
        Some("lookup@example.com"),
        "login:email:lookup@example.com",
        Some("login:ip:192.0.2.7"),
        b"browser",
        Some("192.0.2.0/24"),
    );
    let from_home = || store.login_lookup(&home);

    // Nothing on record yet: the account, no budgets, nothing seen.
    let r = from_home().await.unwrap();
    assert_eq!(r.account.as_ref().map(|a| a.id), Some(account.id));
    assert_eq!(
        r.account.as_ref().map(|a| a.email.as_str()),
        Some("lookup@example.com")
    );
    assert!(r.account_budget.is_none() && r.ip_budget.is_none());
    assert!(!r.seen.device);
    assert_eq!(r.seen.network, Some(false));

    // Failures on three keys, each counted differently, and a remembered browser and network.
    for _ in 0..3 {
        store
            .record_failure(&account_key, now, window)
            .await
            .unwrap();
    }
    for _ in 0..2 {
        store
            .record_failure("login:ip:192.0.2.7", now, window)
            .await
            .unwrap();
    }
    store
        .record_failure("login:email:lookup@example.com", now, window)
        .await
        .unwrap();
    store
        .remember_device(&DeviceRecord {
            device: KnownDevice {
                id: Uuid::new_v4(),
                account_id: account.id,
                user_agent: None,
                ip: None,
                first_seen_at: now,
                last_seen_at: now,
            },
            device_hash: Some(b"browser".to_vec()),
            network: Some("192.0.2.0/24".into()),
            notice: None,
            audit: None,
        })
        .await
        .unwrap();

    // With an account, its budget is the one keyed on its id, not the address's.
    let r = from_home().await.unwrap();
    assert_eq!(r.account_budget.map(|b| b.failures), Some(3));
    assert_eq!(r.ip_budget.map(|b| b.failures), Some(2));
    assert!(r.seen.device);
    assert_eq!(r.seen.network, Some(true));
    assert_eq!(
        r.seen.recorded_at.map(|t| t.unix_timestamp()),
        Some(now.unix_timestamp())
    );

    // Another browser and network of the same account; no address at all.
    let r = store
        .login_lookup(&lookup(
            Some("lookup@example.com"),
            "login:email:lookup@example.com",
            None,
            b"another browser",
            None,
        ))
        .await
        .unwrap();
    assert!(!r.seen.device);
    assert_eq!(r.seen.network, None);
    assert!(r.ip_budget.is_none());
    assert_eq!(r.account_budget.map(|b| b.failures), Some(3));

    // No cookie: an empty hash matches no browser.
    let r = store
        .login_lookup(&lookup(
            Some("lookup@example.com"),
            "x",
            None,
            b"",
            Some("192.0.2.0/24"),
        ))
        .await
        .unwrap();
    assert!(!r.seen.device);
    assert_eq!(r.seen.network, Some(true));

    // An address without an account: its own budget, nothing seen — the history of the
    // account's browser does not leak to a stranger's address.
    for email in [Some("nobody@example.com"), None] {
        let key = "login:email:lookup@example.com";
        let r = store
            .login_lookup(&lookup(
                email,
                key,
                Some("login:ip:192.0.2.7"),
                b"browser",
                Some("192.0.2.0/24"),
            ))
            .await
            .unwrap();
        assert!(r.account.is_none());
        assert_eq!(r.account_budget.map(|b| b.failures), Some(1));
        assert_eq!(r.ip_budget.map(|b| b.failures), Some(2));
        assert!(!r.seen.device);
        assert_eq!(r.seen.network, Some(false));
    }
    let r = store
        .login_lookup(&lookup(
            Some("nobody@example.com"),
            "login:email:nobody",
            None,
            b"",
            None,
        ))
        .await
        .unwrap();
    assert!(r.account.is_none() && r.account_budget.is_none());
}
both_backends!(login_lookup_case, one_read_answers_each_key);
