//! The verification API, as an app that keeps its own logins uses it.

use serde_json::{Value, json};
use std::process::Command;
use time::Duration;
use twofold_testkit::totp::oathtool_code;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app};

async fn key(app: &TestApp, tenant: &str) -> String {
    app.core.create_api_key(tenant, "test").await.unwrap().1
}

fn api(app: &TestApp, key: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, app.at(&format!("/api/v1/subjects{path}")))
        .bearer_auth(key)
}

/// Enrolls and confirms a TOTP factor for `subject`; returns (factor id, secret, backup codes).
async fn active_factor(app: &TestApp, key: &str, subject: &str) -> (String, String, Vec<String>) {
    let r = api(
        app,
        key,
        reqwest::Method::POST,
        &format!("/{subject}/factors"),
    )
    .json(&json!({"type": "totp", "label": "phone"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let code = oathtool_code(&secret, app.clock_now());
    let r = api(
        app,
        key,
        reqwest::Method::POST,
        &format!("/{subject}/factors/{id}/confirm"),
    )
    .json(&json!({"code": code}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "active");
    let codes = body["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (id, secret, codes)
}

trait Now {
    fn clock_now(&self) -> time::OffsetDateTime;
}

impl Now for TestApp {
    fn clock_now(&self) -> time::OffsetDateTime {
        use twofold_core::Clock;
        self.clock.now()
    }
}

async fn enroll_confirm_verify(db: TestDb) {
    let app = spawn_app(db).await;
    let k = key(&app, "acme").await;

    // No key, a wrong key: 401 problem+json.
    let r = reqwest::Client::new()
        .get(app.at("/api/v1/subjects/u1/factors"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = api(
        &app,
        "tfk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        reqwest::Method::GET,
        "/u1/factors",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 401);

    let r = api(&app, &k, reqwest::Method::POST, "/user-42/factors")
        .json(&json!({"type": "totp", "label": "phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["status"], "pending");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let uri = created["otpauth_uri"].as_str().unwrap().to_owned();
    assert_eq!(
        uri,
        format!(
            "otpauth://totp/Twofold:user-42?secret={secret}&issuer=Twofold&algorithm=SHA1&digits=6&period=30"
        )
    );
    assert_eq!(secret.len(), 32, "160-bit secret");
    assert_eq!(
        decode_qr(created["qr_svg"].as_str().unwrap()),
        uri,
        "the QR code decodes to the otpauth URI"
    );
    let id = created["id"].as_str().unwrap();

    // Pending factors do not verify; a wrong confirmation code is 422.
    let r = api(&app, &k, reqwest::Method::POST, "/user-42/verify")
        .json(&json!({"code": oathtool_code(&secret, app.clock_now())}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"valid": false}));
    let r = api(
        &app,
        &k,
        reqwest::Method::POST,
        &format!("/user-42/factors/{id}/confirm"),
    )
    .json(&json!({"code": "000000"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    let r = api(
        &app,
        &k,
        reqwest::Method::POST,
        &format!("/user-42/factors/{id}/confirm"),
    )
    .json(&json!({"code": oathtool_code(&secret, app.clock_now())}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let confirmed: Value = r.json().await.unwrap();
    assert_eq!(confirmed["backup_codes"].as_array().unwrap().len(), 10);

    // The confirming step is used up; the next step verifies once.
    let code = oathtool_code(&secret, app.clock_now());
    let r: Value = api(&app, &k, reqwest::Method::POST, "/user-42/verify")
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["valid"], false);
    app.clock.advance(Duration::seconds(30));
    let code = oathtool_code(&secret, app.clock_now());
    let r: Value = api(&app, &k, reqwest::Method::POST, "/user-42/verify")
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({"valid": true, "factor_id": id, "type": "totp"}));

    let list: Value = api(&app, &k, reqwest::Method::GET, "/user-42/factors")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["factors"].as_array().unwrap().len(), 1);

    // Another tenant cannot see or use this subject.
    let other = key(&app, "globex").await;
    assert_eq!(
        api(&app, &other, reqwest::Method::GET, "/user-42/factors")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        api(
            &app,
            &other,
            reqwest::Method::DELETE,
            &format!("/user-42/factors/{id}")
        )
        .send()
        .await
        .unwrap()
        .status(),
        404
    );
    let r: Value = api(&app, &other, reqwest::Method::POST, "/user-42/verify")
        .json(&json!({"code": "123456"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["valid"], false);

    // New backup codes replace the old set.
    let old = confirmed["backup_codes"][0].as_str().unwrap().to_owned();
    let r = api(&app, &k, reqwest::Method::POST, "/user-42/backup-codes")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let fresh: Value = r.json().await.unwrap();
    let r: Value = api(&app, &k, reqwest::Method::POST, "/user-42/verify")
        .json(&json!({"code": old}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["valid"], false, "old backup codes stop working");
    let r: Value = api(&app, &k, reqwest::Method::POST, "/user-42/verify")
        .json(&json!({"code": fresh["codes"][0]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["valid"], true);
    assert_eq!(r["type"], "backup_code");
    assert_eq!(r["backup_codes_left"], 9);

    assert_eq!(
        api(
            &app,
            &k,
            reqwest::Method::DELETE,
            &format!("/user-42/factors/{id}")
        )
        .send()
        .await
        .unwrap()
        .status(),
        204
    );
    let list: Value = api(&app, &k, reqwest::Method::GET, "/user-42/factors")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["factors"].as_array().unwrap().is_empty());

    let r = api(&app, &k, reqwest::Method::POST, "/user-42/factors")
        .json(&json!({"type": "sms"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
both_backends!(enroll_confirm_verify_case, enroll_confirm_verify);

async fn one_code_verifies_once_under_concurrency(db: TestDb) {
    let app = spawn_app(db).await;
    let k = key(&app, "acme").await;
    // Each race on its own subject: the 49 losers count against that subject's budget.
    let (_, secret, _) = active_factor(&app, &k, "racer-totp").await;
    let (_, _, codes) = active_factor(&app, &k, "racer-backup").await;
    app.clock.advance(Duration::seconds(30));
    let verified_events = || async {
        let rows =
            sqlx::query("SELECT detail FROM audit_log WHERE event = 'second_factor_verified'")
                .fetch_all(app.store.pool())
                .await
                .unwrap();
        rows.iter()
            .map(|r| {
                let detail: String = sqlx::Row::get(r, "detail");
                serde_json::from_str::<Value>(&detail).unwrap()
            })
            .collect::<Vec<_>>()
    };
    let before = verified_events().await.len();
    for (subject, code) in [
        ("racer-totp", oathtool_code(&secret, app.clock_now())),
        ("racer-backup", codes[3].clone()),
    ] {
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let req = api(
                &app,
                &k,
                reqwest::Method::POST,
                &format!("/{subject}/verify"),
            )
            .json(&json!({"code": code}));
            tasks.push(tokio::spawn(async move {
                req.send().await.unwrap().json::<Value>().await.unwrap()["valid"] == true
            }));
        }
        let mut valid = 0;
        for t in tasks {
            if t.await.unwrap() {
                valid += 1;
            }
        }
        assert_eq!(
            valid, 1,
            "exactly one of 50 concurrent requests with {code} may succeed"
        );
    }
    // One audit row per success, written with the consumption (a trigger on SQLite, a CTE on
    // PostgreSQL), with its detail intact.
    let events = verified_events().await;
    assert_eq!(events.len(), before + 2, "{events:?}");
    assert!(
        events[before..].iter().all(|d| d["owner"]
            .as_str()
            .is_some_and(|o| o.starts_with("subject:"))),
        "{events:?}"
    );
}
both_backends!(
    concurrent_replay_case,
    one_code_verifies_once_under_concurrency
);

async fn verify_budget_answers_429(db: TestDb) {
    let app = spawn_app(db).await;
    let k = key(&app, "acme").await;
    let (_, secret, _) = active_factor(&app, &k, "guessed").await;
    for _ in 0..10 {
        let r = api(&app, &k, reqwest::Method::POST, "/guessed/verify")
            .json(&json!({"code": "000000"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    app.clock.advance(Duration::seconds(29));
    let r = api(&app, &k, reqwest::Method::POST, "/guessed/verify")
        .json(&json!({"code": oathtool_code(&secret, app.clock_now())}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    app.clock.advance(Duration::seconds(31));
    let r: Value = api(&app, &k, reqwest::Method::POST, "/guessed/verify")
        .json(&json!({"code": oathtool_code(&secret, app.clock_now())}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["valid"], true);
}
both_backends!(verify_budget_case, verify_budget_answers_429);

async fn verified_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE event = 'second_factor_verified'")
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

/// Many subjects checking at once are consumed together (one statement per group): each
/// valid code is accepted once, with its own audit row.
async fn concurrent_subjects_each_verify_once(db: TestDb) {
    let app = spawn_app(db).await;
    let k = key(&app, "acme").await;
    let mut subjects = Vec::new();
    for n in 0..24 {
        let subject = format!("crowd-{n}");
        let (_, secret, _) = active_factor(&app, &k, &subject).await;
        subjects.push((subject, secret));
    }
    app.clock.advance(Duration::seconds(30));
    let before = verified_count(&app).await;
    let mut tasks = Vec::new();
    for (subject, secret) in &subjects {
        let code = oathtool_code(secret, app.clock_now());
        // Each code twice, so groups also hold a replay.
        for _ in 0..2 {
            let req = api(
                &app,
                &k,
                reqwest::Method::POST,
                &format!("/{subject}/verify"),
            )
            .json(&json!({"code": code}));
            let subject = subject.clone();
            tasks.push(tokio::spawn(async move {
                let valid =
                    req.send().await.unwrap().json::<Value>().await.unwrap()["valid"] == true;
                (subject, valid)
            }));
        }
    }
    let mut valid = std::collections::HashMap::<String, u32>::new();
    for t in tasks {
        let (subject, ok) = t.await.unwrap();
        *valid.entry(subject).or_default() += u32::from(ok);
    }
    assert!(valid.values().all(|&n| n == 1), "{valid:?}");
    let after = verified_count(&app).await;
    assert_eq!(after - before, 24);
}
both_backends!(
    concurrent_subjects_case,
    concurrent_subjects_each_verify_once
);

async fn verify(app: &TestApp, key: &str, subject: &str, code: &str) -> Value {
    let r = api(
        app,
        key,
        reqwest::Method::POST,
        &format!("/{subject}/verify"),
    )
    .json(&json!({ "code": code }))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    r.json().await.unwrap()
}

async fn code_check_connections(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(twofold_store::backend::CODE_CHECK_APPLICATION)
    .fetch_one(app.store.pool())
    .await
    .unwrap()
}

/// Has PostgreSQL end every connection of this test's database named `application` (but the
/// one asking), as a restart or an administrator would.
async fn terminate_connections(app: &TestApp, application: &str) {
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = $1
           AND pid <> pg_backend_pid()",
    )
    .bind(application)
    .fetch_all(app.store.pool())
    .await
    .unwrap();
    assert!(
        !killed.is_empty() && killed.iter().all(|k| *k),
        "{killed:?}"
    );
}

/// The code checks keep their connections between groups. When the database drops one,
/// the checks in that group are answered anyway (retried one at a time on the main pool),
/// replay protection holds, and the next group opens a fresh connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_checks_survive_a_lost_connection() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = spawn_app(db).await;
    let k = key(&app, "acme").await;
    let (_, secret, _) = active_factor(&app, &k, "survivor").await;
    app.clock.advance(Duration::seconds(30));
    let code = oathtool_code(&secret, app.clock_now());
    assert_eq!(verify(&app, &k, "survivor", &code).await["valid"], true);
    assert!(code_check_connections(&app).await >= 1);

    terminate_connections(&app, twofold_store::backend::CODE_CHECK_APPLICATION).await;

    app.clock.advance(Duration::seconds(30));
    let code = oathtool_code(&secret, app.clock_now());
    assert_eq!(verify(&app, &k, "survivor", &code).await["valid"], true);
    assert_eq!(verify(&app, &k, "survivor", &code).await["valid"], false);
    app.clock.advance(Duration::seconds(30));
    let code = oathtool_code(&secret, app.clock_now());
    assert_eq!(verify(&app, &k, "survivor", &code).await["valid"], true);
    assert!(code_check_connections(&app).await >= 1);
}

/// A connection the database dropped while it sat idle in the main pool is tested before
/// it is handed out again and replaced, so no request fails on it. (Connections back within
/// the last second are not tested again: they were tested on their way back.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_pool_replaces_connections_dropped_while_idle() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = spawn_app(db).await;
    let k = key(&app, "acme").await;
    let (_, secret, _) = active_factor(&app, &k, "idler").await;

    terminate_connections(&app, "twofold").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    for _ in 0..3 {
        app.clock.advance(Duration::seconds(30));
        let code = oathtool_code(&secret, app.clock_now());
        assert_eq!(verify(&app, &k, "idler", &code).await["valid"], true);
        assert_eq!(verify(&app, &k, "idler", "000000").await["valid"], false);
    }
}

/// Closing the store returns although the code checks hold connections (a pool's close
/// waits for every connection to come back).
async fn closing_returns_held_connections(db: TestDb) {
    let app = spawn_app(db).await;
    let k = key(&app, "acme").await;
    let (_, secret, _) = active_factor(&app, &k, "closer").await;
    app.clock.advance(Duration::seconds(30));
    let code = oathtool_code(&secret, app.clock_now());
    assert_eq!(verify(&app, &k, "closer", &code).await["valid"], true);
    tokio::time::timeout(std::time::Duration::from_secs(10), app.store.close())
        .await
        .expect("the store closes");
}
both_backends!(closing_case, closing_returns_held_connections);

/// A code check looks its factor up by index whatever the planner's statistics say: with its
/// default guess for a JSON array (100 rows) and the statistics a bulk import leaves behind
/// (no ANALYZE yet), PostgreSQL consumed a step through a hash join over all 20,000 factors.
/// Counted with `pg_stat_user_tables.seq_tup_read`, which a backend reports when it goes
/// idle at least a second after its last report (hence the pause before the second round).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_checks_take_the_indexes() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = spawn_app(db).await;
    let k = key(&app, "acme").await;
    let (id, secret, _) = active_factor(&app, &k, "indexed").await;
    let pool = app.store.pool();
    sqlx::query(
        "INSERT INTO factors (id, owner, kind, label, status, key_id, secret, algorithm, digits,
                              period, created_at)
         SELECT 'bulk-' || g, 'subject:bulk-' || g, kind, label, status, key_id, secret,
                algorithm, digits, period, created_at
         FROM factors, generate_series(1, 20000) g WHERE id = $1",
    )
    .bind(&id)
    .execute(pool)
    .await
    .unwrap();
    let rows_scanned = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT seq_tup_read FROM pg_stat_user_tables WHERE relname = 'factors'",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let before = rows_scanned().await;
    for round in 0..2 {
        if round > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        app.clock.advance(Duration::seconds(30));
        let code = oathtool_code(&secret, app.clock_now());
        assert_eq!(verify(&app, &k, "indexed", &code).await["valid"], true);
        assert_eq!(verify(&app, &k, "indexed", "000000").await["valid"], false);
    }
    let scanned = rows_scanned().await - before;
    assert!(
        scanned < 20_000,
        "code checks read {scanned} factor rows by sequential scan"
    );
}

/// Decodes the QR code with a real decoder: the SVG rendered by librsvg, read by zbar.
fn decode_qr(svg: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let svg_path = dir.path().join("qr.svg");
    let png_path = dir.path().join("qr.png");
    std::fs::write(&svg_path, svg).unwrap();
    let ok = Command::new("rsvg-convert")
        .args(["-w", "400", "-b", "white", "-o"])
        .arg(&png_path)
        .arg(&svg_path)
        .status()
        .expect("rsvg-convert is needed: apt-get install librsvg2-bin");
    assert!(ok.success());
    let out = Command::new("zbarimg")
        .args(["--quiet", "--raw"])
        .arg(&png_path)
        .output()
        .expect("zbarimg is needed: apt-get install zbar-tools");
    assert!(out.status.success(), "zbarimg found no QR code");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
