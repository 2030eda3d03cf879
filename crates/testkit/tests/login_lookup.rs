//! The password step's one read: the account and whether the browser and network are known,
//! on both backends, with or without an account behind the address. (Its budgets are paid
//! for, not read: see `attempt_limits`.)

use time::OffsetDateTime;
use twofold_core::model::*;
use twofold_core::ports::{AccountStore, DeviceRecord, DeviceStore, LoginLookup};
use twofold_testkit::{TestDb, both_backends, spawn_app};
use uuid::Uuid;

fn lookup<'a>(
    email: Option<&'a str>,
    device_hash: &'a [u8],
    network: Option<&'a str>,
) -> LoginLookup<'a> {
    LoginLookup {
        email,
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
    // The account's own address, from its browser and network.
    let home = lookup(Some("lookup@example.com"), b"browser", Some("192.0.2.0/24"));
    let from_home = || store.login_lookup(&home);

    // Nothing on record yet: the account, no budgets, nothing seen.
    let r = from_home().await.unwrap();
    assert_eq!(r.account.as_ref().map(|a| a.id), Some(account.id));
    assert_eq!(
        r.account.as_ref().map(|a| a.email.as_str()),
        Some("lookup@example.com")
    );
    assert!(!r.seen.device);
    assert_eq!(r.seen.network, Some(false));

    // A remembered browser and network.
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

    // The remembered browser and network are known.
    let r = from_home().await.unwrap();
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
            b"another browser",
            None,
        ))
        .await
        .unwrap();
    assert!(!r.seen.device);
    assert_eq!(r.seen.network, None);

    // No cookie: an empty hash matches no browser.
    let r = store
        .login_lookup(&lookup(
            Some("lookup@example.com"),
            b"",
            Some("192.0.2.0/24"),
        ))
        .await
        .unwrap();
    assert!(!r.seen.device);
    assert_eq!(r.seen.network, Some(true));

    // An address without an account: nothing seen — the history of the
    // account's browser does not leak to a stranger's address.
    for email in [Some("nobody@example.com"), None] {
        let r = store
            .login_lookup(&lookup(email, b"browser", Some("192.0.2.0/24")))
            .await
            .unwrap();
        assert!(r.account.is_none());
        assert!(!r.seen.device);
        assert_eq!(r.seen.network, Some(false));
    }
    let r = store
        .login_lookup(&lookup(Some("nobody@example.com"), b"", None))
        .await
        .unwrap();
    assert!(r.account.is_none());
}
both_backends!(login_lookup_case, one_read_answers_each_key);
