//! Known browsers and networks are forgotten when not seen for the device cookie's lifetime,
//! and beyond the most recent ones of each account; every sign-in renews the cookie, so a
//! browser in use stays known.

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use twofold_core::device::KNOWN_DEVICE_LIFETIME;
use twofold_core::model::*;
use twofold_core::ports::{AccountStore, DeviceRecord, DeviceStore};
use twofold_store::SqlStore;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app_with};
use uuid::Uuid;

const PW: &str = "correct horse battery staple";

async fn spawn(db: TestDb) -> TestApp {
    spawn_app_with(db, |s| s.devices = Default::default()).await
}

async fn account(app: &TestApp, email: &str) -> AccountId {
    app.verified_account(email, PW).await;
    app.store.account_by_email(email).await.unwrap().unwrap().id
}

async fn remember(store: &SqlStore, account: AccountId, n: u8, at: OffsetDateTime) {
    store
        .remember_device(&DeviceRecord {
            device: KnownDevice {
                id: Uuid::new_v4(),
                account_id: account,
                user_agent: Some(format!("browser {n}")),
                ip: None,
                first_seen_at: at,
                last_seen_at: at,
            },
            device_hash: Some(vec![n]),
            network: Some(format!("192.0.{n}.0/24")),
            notice: None,
            audit: None,
        })
        .await
        .unwrap();
}

async fn agents(store: &SqlStore, account: AccountId) -> Vec<String> {
    let mut a: Vec<String> = store
        .known_devices_of(account)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|d| d.user_agent)
        .collect();
    a.sort();
    a
}

async fn networks(store: &SqlStore, account: AccountId) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM known_networks WHERE account_id = $1")
        .bind(account.to_string())
        .fetch_one(store.pool())
        .await
        .unwrap()
}

async fn stale_and_surplus_records_go(db: TestDb) {
    let app = spawn(db).await;
    let store = &app.store;
    let many = account(&app, "many@example.com").await;
    let few = account(&app, "few@example.com").await;
    let now = OffsetDateTime::now_utc();
    // Five browsers (and networks) a minute apart; two for the other account, one stale.
    for n in 1..=5 {
        remember(store, many, n, now + Duration::minutes(i64::from(n))).await;
    }
    remember(store, few, 1, now - Duration::days(500)).await;
    remember(store, few, 2, now).await;

    let removed = store
        .purge_known_devices(now - Duration::days(400), 3)
        .await
        .unwrap();
    // The stale browser and network, and the two oldest of each over the cap of three.
    assert_eq!(removed, 2 + 4);
    assert_eq!(
        agents(store, many).await,
        ["browser 3", "browser 4", "browser 5"]
    );
    assert_eq!(networks(store, many).await, 3);
    assert_eq!(agents(store, few).await, ["browser 2"]);
    assert_eq!(networks(store, few).await, 1);
    // Nothing more to do.
    assert_eq!(
        store
            .purge_known_devices(now - Duration::days(400), 3)
            .await
            .unwrap(),
        0
    );
}
both_backends!(
    stale_and_surplus_known_browsers_go,
    stale_and_surplus_records_go
);

async fn sign_in(app: &TestApp, c: &reqwest::Client, email: &str) -> (Value, String) {
    let r = c
        .post(app.at("/api/v1/session"))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({ "email": email, "password": PW }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let device = cookies
        .into_iter()
        .find(|c| c.contains("device="))
        .unwrap_or_default();
    (r.json().await.unwrap(), device)
}

async fn in_use_stays_known(db: TestDb) {
    let app = spawn(db).await;
    let email = "kept@example.com";
    account(&app, email).await;
    let c = app.client();
    let (v, cookie) = sign_in(&app, &c, email).await;
    assert_eq!(v["status"], "device_verification_required");
    let max_age = format!("Max-Age={}", KNOWN_DEVICE_LIFETIME.whole_seconds());
    assert!(cookie.contains(&max_age), "{cookie}");
    let mail = app.smtp.wait_for_text(email, "Confirm your sign-in").await;
    let code = mail.subject().rsplit(' ').next().unwrap().to_owned();
    let r = c
        .post(app.at("/api/v1/session/device"))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.log_out(&c).await;

    // Used now and then: each sign-in renews the cookie and the record.
    for days in [200, 300] {
        app.clock.advance(Duration::days(days));
        assert_eq!(app.core.purge_known_devices().await.unwrap(), 0);
        let (v, cookie) = sign_in(&app, &c, email).await;
        assert_eq!(v["status"], "signed_in", "after {days} more days: {v}");
        assert!(cookie.contains(&max_age), "renewed: {cookie}");
        app.log_out(&c).await;
    }

    // Unused for longer than the cookie lives: forgotten, and a new browser again.
    app.clock.advance(KNOWN_DEVICE_LIFETIME + Duration::days(2));
    assert_eq!(app.core.purge_known_devices().await.unwrap(), 2);
    let (v, _) = sign_in(&app, &c, email).await;
    assert_eq!(v["status"], "device_verification_required", "{v}");
}
both_backends!(a_browser_in_use_stays_known, in_use_stays_known);
