//! Mandatory 2FA: the grace banner and its countdown, forced enrollment from the enforcement
//! day on and at once for accounts created under the policy, "cannot remove the last
//! factor", forbidden methods, and reminders sent exactly once — all with a fake clock.

use serde_json::{Value, json};
use time::Duration;
use twofold_core::Clock;
use twofold_core::model::RequestMeta;
use twofold_core::policy::{Policy, Required};
use twofold_testkit::totp::{csrf_of, oathtool_code, text_of_id};
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app, spawn_app_with};

const PW: &str = "correct horse battery staple";

async fn set_policy(app: &TestApp, policy: Policy) {
    app.core
        .set_policy(&policy, &RequestMeta::default())
        .await
        .expect("policy stored");
}

fn all_from(app: &TestApp, days_ahead: i64) -> Policy {
    Policy {
        required: Required::All,
        enforce_from: Some((app.clock.now() + Duration::days(days_ahead)).date()),
        allowed_methods: vec![],
        operators_phishing_resistant: false,
    }
}

async fn status_of_login(app: &TestApp, c: &reqwest::Client, email: &str) -> Value {
    let r = app.log_in(c, email, PW).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    r.json().await.unwrap()
}

async fn page(c: &reqwest::Client, app: &TestApp, path: &str) -> (u16, String, String) {
    let r = c.get(app.at(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, r.text().await.unwrap())
}

/// Adds an authenticator from the forced set-up page; returns the page answering the code.
async fn enroll_from_setup(app: &TestApp, c: &reqwest::Client) -> (u16, String) {
    let (status, _, html) = page(c, app, "/login/set-up").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("requires two-step verification"), "{html}");
    let csrf = csrf_of(&html);
    let r = c
        .post(app.at("/account/security/totp"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let (_, _, html) = page(c, app, &location).await;
    let secret = text_of_id(&html, "secret").unwrap().replace(' ', "");
    let code = oathtool_code(&secret, app.clock.now());
    let r = c
        .post(app.at(&format!("{location}/confirm")))
        .form(&[("csrf", csrf.as_str()), ("code", &code), ("label", "phone")])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn grace_then_enforcement(db: TestDb) {
    let app = spawn_app(db).await;
    let email = "old@example.com";
    app.verified_account(email, PW).await;
    set_policy(&app, all_from(&app, 20)).await;

    // Before the deadline: signed in, with a banner counting the days.
    let c = app.client();
    assert_eq!(
        status_of_login(&app, &c, email).await["status"],
        "signed_in"
    );
    let (status, _, html) = page(&c, &app, "/account").await;
    assert_eq!(status, 200);
    assert!(html.contains("20 days left"), "{html}");
    assert!(html.contains("Set it up now"), "{html}");
    app.clock.advance(Duration::days(19));
    let c = app.client();
    assert_eq!(
        status_of_login(&app, &c, email).await["status"],
        "signed_in"
    );
    let (_, _, html) = page(&c, &app, "/account").await;
    assert!(html.contains("1 day left"), "{html}");

    // From the enforcement day: the password leads only to the set-up step.
    app.clock.advance(Duration::days(1));
    let c = app.client();
    let answer = status_of_login(&app, &c, email).await;
    assert_eq!(answer["status"], "enrollment_required", "{answer}");
    // No security keys: the public URL is an IP address, where browsers refuse them.
    assert_eq!(answer["methods"], json!(["totp", "sms", "email"]));
    // The enrollment session reaches nothing else: not the account, not the API, not the
    // second step.
    let (status, location, _) = page(&c, &app, "/account").await;
    assert_eq!((status, location.as_str()), (303, "/login/set-up"));
    let (status, location, _) = page(&c, &app, "/account/security").await;
    assert_eq!((status, location.as_str()), (303, "/login/set-up"));
    let r = c.get(app.at("/api/v1/account")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(app.at("/api/v1/account/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app.second_factor(&c, "123456").await;
    assert_eq!(r.status(), 401);

    // Adding an authenticator there signs the browser in, with both steps counted.
    let (status, html) = enroll_from_setup(&app, &c).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Your backup codes"), "{html}");
    let me: Value = c
        .get(app.at("/api/v1/account"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["session"]["amr"], json!(["pwd", "otp", "mfa"]), "{me}");

    // The last factor cannot go: that would turn 2FA off.
    let (_, _, html) = page(&c, &app, "/account/security").await;
    let factor_id = html
        .split("/account/security/factors/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_owned();
    let r = c
        .post(app.at(&format!("/account/security/factors/{factor_id}/remove")))
        .form(&[("csrf", csrf_of(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains("required for your account"), "{html}");
    let (_, _, html) = page(&c, &app, "/account/security").await;
    assert!(
        html.contains(&factor_id),
        "the factor is still there: {html}"
    );

    // The next sign-in asks for the second factor as usual.
    let c = app.client();
    assert_eq!(
        status_of_login(&app, &c, email).await["status"],
        "second_factor_required"
    );
}
both_backends!(grace_then_enforcement_case, grace_then_enforcement);

async fn new_accounts_at_once(db: TestDb) {
    // Security keys need a domain name as the relying party: `localhost` here.
    let app = spawn_app_with(db, |s| {
        s.relying_party.id = "localhost".into();
        s.relying_party.origins = vec![s.public_url.replace("127.0.0.1", "localhost")];
    })
    .await;
    app.verified_account("before@example.com", PW).await;
    set_policy(
        &app,
        Policy {
            required: Required::NewAccounts,
            enforce_from: None,
            allowed_methods: vec!["totp".into(), "webauthn".into()],
            operators_phishing_resistant: false,
        },
    )
    .await;
    app.verified_account("after@example.com", PW).await;

    // An account from before the policy is not bound by it.
    let c = app.client();
    assert_eq!(
        status_of_login(&app, &c, "before@example.com").await["status"],
        "signed_in"
    );
    // A new one is, from its first sign-in, and is offered only the allowed methods.
    let c = app.client();
    let answer = status_of_login(&app, &c, "after@example.com").await;
    assert_eq!(answer["status"], "enrollment_required");
    assert_eq!(answer["methods"], json!(["totp", "webauthn"]));
    let (_, _, html) = page(&c, &app, "/login/set-up").await;
    assert!(html.contains("Add authenticator app"), "{html}");
    assert!(
        !html.contains("/account/security/new/sms"),
        "SMS is forbidden: {html}"
    );
    // A forbidden method is refused even when asked for directly.
    let r = c
        .post(app.at("/account/security/new/sms"))
        .form(&[
            ("csrf", csrf_of(&html).as_str()),
            ("destination", "+1 415 555 0132"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("does not allow"));
    assert!(app.sms.requests().is_empty(), "nothing was texted");

    // Turning the policy off frees the account, without a restart.
    set_policy(&app, Policy::default()).await;
    let c = app.client();
    assert_eq!(
        status_of_login(&app, &c, "after@example.com").await["status"],
        "signed_in"
    );
}
both_backends!(new_accounts_at_once_case, new_accounts_at_once);

async fn reminders_once_each(db: TestDb) {
    let app = spawn_app(db).await;
    let without = "without@example.com";
    let with = "with@example.com";
    app.verified_account(without, PW).await;
    app.verified_account(with, PW).await;
    let c = app.client();
    status_of_login(&app, &c, with).await;
    app.enroll_totp(&c, "phone").await;
    let start = app.clock.now();
    set_policy(&app, all_from(&app, 30)).await;
    let deadline = (start + Duration::days(30)).date().midnight().assume_utc();
    let reminders = |app: &TestApp, to: &str| {
        app.smtp
            .all()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == to) && m.subject().contains("will be required"))
            .count()
    };

    // Nothing yet 20 days before.
    app.clock.set(deadline - Duration::days(20));
    assert_eq!(app.core.send_policy_reminders().await.unwrap(), 0);

    for (days, subject) in [(14, "in 14 days"), (3, "in 3 days"), (1, "tomorrow")] {
        app.clock
            .set(deadline - Duration::days(days) + Duration::hours(2));
        let before = app.smtp.count_to(without);
        // Several nodes at once: each reminder still goes out once.
        let (a, b, c, d) = tokio::join!(
            app.core.send_policy_reminders(),
            app.core.send_policy_reminders(),
            app.core.send_policy_reminders(),
            app.core.send_policy_reminders(),
        );
        let runs = [a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()];
        assert_eq!(runs.iter().sum::<usize>(), 1, "stage {days}: {runs:?}");
        assert_eq!(app.core.send_policy_reminders().await.unwrap(), 0);
        let mail = app.smtp.wait_for(without, before).await;
        assert!(mail.subject().contains(subject), "{}", mail.subject());
        assert!(mail.data.contains("/account/security"));
    }
    app.clock.set(deadline + Duration::minutes(1));
    assert_eq!(app.core.send_policy_reminders().await.unwrap(), 0);
    // Give a stray duplicate the time to arrive before counting.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(reminders(&app, without), 3);
    assert_eq!(
        reminders(&app, with),
        0,
        "accounts with 2FA are not reminded"
    );
}
both_backends!(reminders_once_each_case, reminders_once_each);
