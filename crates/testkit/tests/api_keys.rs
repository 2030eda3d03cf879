//! API keys: revocation (on every node), the operator's list and the last-use stamp.

use time::Duration;
use twofold_core::CoreError;
use twofold_core::model::{ApiKeyInfo, RequestMeta};
use twofold_testkit::totp::csrf_of;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app};
use uuid::Uuid;

/// The status of an authenticated read at `base` (an unknown subject: 404 when the key works).
async fn status_with(base: &str, key: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/subjects/u1/factors"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let kind = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), kind)
}

async fn listed(app: &TestApp, id: Uuid) -> ApiKeyInfo {
    let keys = app.core.list_api_keys().await.unwrap();
    keys.into_iter().find(|k| k.id == id).expect("listed")
}

async fn revoked_keys_are_refused_on_every_node(db: TestDb) {
    let app = spawn_app(db).await;
    let (record, key) = app.core.create_api_key("acme", "shop").await.unwrap();
    let (_, other) = app.core.create_api_key("acme", "other").await.unwrap();
    let node = app.second_node(|_| {}).await;
    // Both nodes have authenticated (and cached) the key.
    assert_eq!(status_with(&app.url, &key).await.0, 404);
    assert_eq!(status_with(&node.url, &key).await.0, 404);

    app.core
        .revoke_api_key(record.id, "  leaked in a log  ", &RequestMeta::default())
        .await
        .unwrap();
    // The revoking node refuses at once, like an unknown key.
    let (status, kind) = status_with(&app.url, &key).await;
    assert_eq!(status, 401);
    assert!(kind.starts_with("application/problem+json"), "{kind}");
    // The other node checks the database's key revision at most once a second.
    app.clock.advance(Duration::milliseconds(1100));
    let (status, kind) = status_with(&node.url, &key).await;
    assert_eq!(status, 401);
    assert!(kind.starts_with("application/problem+json"), "{kind}");
    // Other keys keep working on both nodes.
    assert_eq!(status_with(&app.url, &other).await.0, 404);
    assert_eq!(status_with(&node.url, &other).await.0, 404);

    let info = listed(&app, record.id).await;
    assert_eq!(info.tenant, "acme");
    assert_eq!(info.name, "shop");
    assert_eq!(info.revoked_reason.as_deref(), Some("leaked in a log"));
    assert!(info.revoked_at.is_some());
    let audited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE event = 'api_key_revoked' AND detail LIKE $1",
    )
    .bind(format!("%{}%", record.id))
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(audited, 1);
}
both_backends!(
    revoked_on_every_node,
    revoked_keys_are_refused_on_every_node
);

async fn bad_revocations_are_refused(db: TestDb) {
    let app = spawn_app(db).await;
    let (record, _) = app.core.create_api_key("acme", "shop").await.unwrap();
    let meta = RequestMeta::default();
    for reason in ["", "   ", "a\nb", &"x".repeat(201)] {
        let e = app.core.revoke_api_key(record.id, reason, &meta).await;
        assert!(
            matches!(
                e,
                Err(CoreError::InvalidInput {
                    field: "reason",
                    ..
                })
            ),
            "{reason:?}: {e:?}"
        );
    }
    let e = app.core.revoke_api_key(Uuid::new_v4(), "gone", &meta).await;
    assert!(matches!(e, Err(CoreError::NotFound)), "{e:?}");
    app.core
        .revoke_api_key(record.id, "first", &meta)
        .await
        .unwrap();
    let e = app.core.revoke_api_key(record.id, "second", &meta).await;
    assert!(
        matches!(e, Err(CoreError::InvalidInput { field: "id", .. })),
        "{e:?}"
    );
    let info = listed(&app, record.id).await;
    assert_eq!(info.revoked_reason.as_deref(), Some("first"));
}
both_backends!(bad_revocations, bad_revocations_are_refused);

async fn last_use_is_stamped_at_most_once_a_minute(db: TestDb) {
    let app = spawn_app(db).await;
    let (record, key) = app.core.create_api_key("acme", "shop").await.unwrap();
    assert_eq!(listed(&app, record.id).await.last_used_at, None);
    assert_eq!(status_with(&app.url, &key).await.0, 404);
    let first = listed(&app, record.id).await.last_used_at.expect("stamped");
    // Within the minute, cached or looked up again, the stamp stays.
    app.clock.advance(Duration::seconds(20));
    assert_eq!(status_with(&app.url, &key).await.0, 404);
    app.clock.advance(Duration::seconds(20));
    assert_eq!(status_with(&app.url, &key).await.0, 404);
    assert_eq!(listed(&app, record.id).await.last_used_at, Some(first));
    app.clock.advance(Duration::seconds(30));
    assert_eq!(status_with(&app.url, &key).await.0, 404);
    let later = listed(&app, record.id).await.last_used_at.expect("stamped");
    assert!(later - first >= Duration::minutes(1), "{first} {later}");
}
both_backends!(last_use, last_use_is_stamped_at_most_once_a_minute);

async fn operators_manage_keys_at_the_console(db: TestDb) {
    let app = spawn_app(db).await;
    let (op_email, pw) = ("ops@example.com", "correct horse battery staple 42");
    app.verified_account(op_email, pw).await;
    app.core
        .set_operator(op_email, true, &RequestMeta::default())
        .await
        .unwrap();
    let op = app.client();
    app.log_in_json(&op, op_email, pw).await;
    app.enroll_totp(&op, "phone").await;
    assert!(
        app.get_text(&op, "/admin")
            .await
            .contains("/admin/api-keys")
    );
    let page = app.get_text(&op, "/admin/api-keys").await;
    let csrf = csrf_of(&page);

    // Created: the key is on the answer page, and only there.
    let r = op
        .post(app.at("/admin/api-keys"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("tenant", "acme"),
            ("name", "shop"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let key = html
        .split(">tfk_")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .map(|k| format!("tfk_{k}"))
        .expect("the new key, once");
    assert_eq!(status_with(&app.url, &key).await.0, 404);
    let page = app.get_text(&op, "/admin/api-keys").await;
    assert!(!page.contains(&key) && page.contains("shop") && page.contains("Active"));
    let id = app.core.list_api_keys().await.unwrap()[0].id;

    // Bad input is a 400 on the page; a bad form token is refused; nothing is revoked.
    let revoke = |reason: &'static str, csrf: String| {
        op.post(app.at(&format!("/admin/api-keys/{id}/revoke")))
            .form(&[("csrf", csrf), ("reason", reason.to_owned())])
            .send()
    };
    let r = revoke("  ", csrf.clone()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Give a reason"));
    let r = revoke("leaked", "forged".into()).await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = op
        .post(app.at("/admin/api-keys/not-a-uuid/revoke"))
        .form(&[("csrf", csrf.as_str()), ("reason", "x")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_eq!(status_with(&app.url, &key).await.0, 404);

    let r = revoke("leaked", csrf.clone()).await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(status_with(&app.url, &key).await.0, 401);
    let page = app.get_text(&op, "/admin/api-keys?done=revoked").await;
    assert!(page.contains(": leaked"), "{page}");
}
both_backends!(console, operators_manage_keys_at_the_console);
