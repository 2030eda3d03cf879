//! The operator console: customers get 403, an operator without a second factor is sent to
//! set one up, every action needs a reason, is audited with the operator and the reason, and
//! mails the customer; lock answers like a wrong password; the audit viewer filters and
//! exports JSON lines.

use serde_json::Value;
use time::Duration;
use twofold_core::Clock;
use twofold_core::model::RequestMeta;
use twofold_testkit::totp::csrf_of;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app};

const PW: &str = "correct horse battery staple 42";

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn act(
    app: &TestApp,
    c: &reqwest::Client,
    id: &str,
    action: &str,
    reason: &str,
) -> reqwest::Response {
    let page = c
        .get(app.at(&format!("/admin/accounts/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_of(&page.text().await.unwrap());
    c.post(app.at(&format!("/admin/accounts/{id}/actions")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("action", action),
            ("reason", reason),
        ])
        .send()
        .await
        .unwrap()
}

async fn events(app: &TestApp, c: &reqwest::Client, query: &str) -> Vec<Value> {
    let r = c
        .get(app.at(&format!("/admin/audit.jsonl?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    r.text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

async fn console(db: TestDb) {
    let app = spawn_app(db).await;
    let (op_email, cust_email) = ("ops@example.com", "customer@example.com");
    app.verified_account(op_email, PW).await;
    app.verified_account(cust_email, PW).await;
    app.core
        .set_operator(op_email, true, &RequestMeta::default())
        .await
        .unwrap();

    // A customer is not let in, not even to the export.
    let cust = app.client();
    app.log_in_json(&cust, cust_email, PW).await;
    for path in ["/admin", "/admin/audit", "/admin/audit.jsonl"] {
        let r = cust.get(app.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }

    // An operator without a second factor is sent to set one up first, and comes back.
    let op = app.client();
    app.log_in_json(&op, op_email, PW).await;
    let r = op.get(app.at("/admin?q=customer")).send().await.unwrap();
    assert_eq!(location(&r), "/account/security");
    app.enroll_totp(&op, "phone").await;
    let r = op.get(app.at("/account")).send().await.unwrap();
    assert_eq!(location(&r), format!("{}/admin?q=customer", app.url));
    let html = app.get_text(&op, "/admin?q=CUSTOMER").await;
    let id = html
        .split("/admin/accounts/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the customer in the results")
        .to_owned();
    assert!(html.contains(cust_email));
    let page = app.get_text(&op, &format!("/admin/accounts/{id}")).await;
    assert!(page.contains("<h2>Sessions</h2>") && page.contains(cust_email));

    // No reason, no action (and nothing written).
    let r = act(&app, &op, &id, "revoke-sessions", "  ").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Give a reason"));
    assert_eq!(
        cust.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Sign out everywhere: audited with operator and reason, the customer is told.
    let r = act(
        &app,
        &op,
        &id,
        "revoke-sessions",
        "phone stolen, ticket 4711",
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        cust.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    app.smtp
        .wait_for_text(cust_email, "An operator signed out every session")
        .await;
    let logged = events(&app, &op, "event=sessions_revoked_by_operator").await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["account_id"], id.as_str());
    assert_eq!(logged[0]["detail"]["reason"], "phone stolen, ticket 4711");
    assert_eq!(logged[0]["detail"]["operator_email"], op_email);

    // Locked: the right password answers like a wrong one, until unlocked.
    assert_eq!(
        act(&app, &op, &id, "lock", "fraud review").await.status(),
        303
    );
    app.smtp
        .wait_for_text(cust_email, "An operator locked your account")
        .await;
    let locked = app.log_in(&cust, cust_email, PW).await;
    let wrong = app
        .log_in(&cust, cust_email, "not the password at all")
        .await;
    assert_eq!(locked.status(), 401);
    let (a, b): (Value, Value) = (locked.json().await.unwrap(), wrong.json().await.unwrap());
    assert_eq!(a["type"], b["type"]);
    assert_eq!(a["detail"], b["detail"]);
    let r = act(&app, &op, &id, "lock", "again").await;
    assert_eq!(r.status(), 400, "locking a locked account says so");
    assert_eq!(act(&app, &op, &id, "unlock", "cleared").await.status(), 303);
    app.smtp
        .wait_for_text(cust_email, "An operator unlocked your account")
        .await;
    assert_eq!(
        app.log_in_json(&cust, cust_email, PW).await["status"],
        "signed_in"
    );

    // New-network verification off, then a lost phone: factors reset.
    assert_eq!(
        act(&app, &op, &id, "ip-verification-off", "travelling")
            .await
            .status(),
        303
    );
    assert!(
        !app.core
            .account_by_email(cust_email)
            .await
            .unwrap()
            .ip_verification
    );
    app.clock.advance(Duration::seconds(31));
    app.smtp
        .wait_for_text(cust_email, "turned off verification of new networks")
        .await;
    app.enroll_totp(&cust, "phone").await;
    let r = act(&app, &op, &id, "reset-2fa", "lost phone, id checked").await;
    assert_eq!(r.status(), 303);
    let back = location(&r);
    app.smtp
        .wait_for_text(cust_email, "removed all second factors")
        .await;
    let page = app.get_text(&op, &back).await;
    assert!(page.contains("Two-step verification was reset; the customer was told."));
    assert!(
        page.split("<h2>Second factors</h2>")
            .nth(1)
            .unwrap()
            .trim_start()
            .starts_with("<p>None.</p>")
    );
    let r = act(&app, &op, &id, "resend-verification", "asked by phone").await;
    assert_eq!(r.status(), 400, "the address is verified already");

    // The audit viewer: by account, by event, and an unknown address.
    let all = events(&app, &op, &format!("email={cust_email}")).await;
    for event in [
        "sessions_revoked_by_operator",
        "account_locked",
        "account_unlocked",
        "ip_verification_off",
        "two_factor_reset_by_operator",
    ] {
        assert!(all.iter().any(|e| e["event"] == event), "{event} missing");
    }
    assert!(all.iter().all(|e| e["account_id"] == id.as_str()));
    let page = app.get_text(&op, "/admin/audit?event=account_locked").await;
    assert!(page.contains("fraud review"));
    assert!(!page.contains("travelling"));
    let r = op
        .get(app.at("/admin/audit?email=nobody%40example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = op
        .get(app.at("/admin/audit?from=yesterday"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
both_backends!(console_case, console);

/// The statistics against numbers worked out by hand on a small dataset: four active
/// accounts (one more locked, one unverified), three with an authenticator app, one that
/// started but never confirmed one, one sign-in with a code and one wrong code.
async fn statistics(db: TestDb) {
    let app = spawn_app(db).await;
    let op = app.client();
    app.verified_account("ops@example.com", PW).await;
    app.core
        .set_operator("ops@example.com", true, &RequestMeta::default())
        .await
        .unwrap();
    app.log_in_json(&op, "ops@example.com", PW).await;
    app.enroll_totp(&op, "phone").await;
    let mut secrets = Vec::new();
    for who in ["a", "b"] {
        let email = format!("{who}@example.com");
        app.verified_account(&email, PW).await;
        let c = app.client();
        app.log_in_json(&c, &email, PW).await;
        secrets.push((email, app.enroll_totp(&c, "phone").await.0));
    }
    // c starts an authenticator and leaves it pending.
    app.verified_account("c@example.com", PW).await;
    let c = app.client();
    app.log_in_json(&c, "c@example.com", PW).await;
    let page = c.get(app.at("/account/security")).send().await.unwrap();
    let csrf = csrf_of(&page.text().await.unwrap());
    let r = c
        .post(app.at("/account/security/totp"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // d is locked, e never verified its address.
    app.verified_account("d@example.com", PW).await;
    let d = app.core.account_by_email("d@example.com").await.unwrap();
    let r = act(&app, &op, &d.id.to_string(), "lock", "test").await;
    assert_eq!(r.status(), 303);
    let r = app
        .client()
        .post(app.at("/api/v1/signup"))
        .json(&serde_json::json!({ "email": "e@example.com", "password": PW }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // a signs in with a wrong code, then the right one.
    let (a_email, a_secret) = &secrets[0];
    let a = app.client();
    app.clock.advance(Duration::seconds(30));
    assert_eq!(
        app.log_in_json(&a, a_email, PW).await["status"],
        "second_factor_required"
    );
    assert_eq!(app.second_factor(&a, "000000").await.status(), 422);
    assert_eq!(
        app.second_factor(&a, &app.code_now(a_secret))
            .await
            .status(),
        200
    );

    app.core.aggregate_stats().await.unwrap();
    let html = app.get_text(&op, "/admin/stats").await;
    assert!(
        html.contains("<strong>75.0%</strong> of 4 active accounts have two-step verification (3)"),
        "{html}"
    );
    assert!(html.contains("<svg") && (html.contains("<polyline") || html.contains("<circle")));
    let csv = app.get_text(&op, "/admin/stats.csv").await;
    let today = app.clock.now().date();
    for row in [
        "active_accounts,,4",
        "with_two_factor,,3",
        "with_method,totp,3",
        "enroll_started,totp,4",
        "enroll_confirmed,totp,3",
        "second_step,success:otp,1",
        "second_step,wrong_code,1",
    ] {
        assert!(
            csv.contains(&format!("{today},{row}\n")),
            "{row} missing in\n{csv}"
        );
    }
    // A second run replaces the rows rather than adding to them.
    app.core.aggregate_stats().await.unwrap();
    let again = app.get_text(&op, "/admin/stats.csv").await;
    assert_eq!(csv, again);
}
both_backends!(statistics_case, statistics);

/// The audit log pages through more events than fit one page, newest first, none twice.
async fn audit_paging(db: TestDb) {
    let app = spawn_app(db).await;
    app.verified_account("ops@example.com", PW).await;
    app.core
        .set_operator("ops@example.com", true, &RequestMeta::default())
        .await
        .unwrap();
    let op = app.client();
    app.log_in_json(&op, "ops@example.com", PW).await;
    app.enroll_totp(&op, "phone").await;
    // 130 failed sign-ins of an unknown address, some in the same millisecond.
    for i in 0..130 {
        if i % 3 == 0 {
            app.clock.advance(Duration::milliseconds(1));
        }
        // From many addresses, so the per-IP sign-in budget does not step in.
        let r = app
            .client()
            .post(app.at("/api/v1/session"))
            .header(
                "x-forwarded-for",
                format!("10.1.{}.{}", i / 200, i % 200 + 1),
            )
            .json(&serde_json::json!({ "email": format!("nobody{i}@example.com"), "password": PW }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let first = app.get_text(&op, "/admin/audit?event=login_failed").await;
    let rows = |html: &str| html.matches("<td>login_failed</td>").count();
    assert_eq!(rows(&first), 100);
    let older = first
        .split("<a href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|h| h.contains("before="))
        .expect("a link to older events")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&");
    let second = app.get_text(&op, &older).await;
    assert_eq!(rows(&second), 30);
    assert!(!second.contains("before="), "no third page");
    let all = events(&app, &op, "event=login_failed").await;
    assert_eq!(all.len(), 130);
    let mut ids: Vec<_> = all
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 130);
}
both_backends!(audit_paging_case, audit_paging);
