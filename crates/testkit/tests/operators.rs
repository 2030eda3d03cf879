//! "Phishing-resistant required for operator accounts": with the policy on, an operator's
//! codes, backup codes and remembered browser no longer sign it in, nothing is texted or
//! mailed for the second step, and an operator without a security key or passkey is sent to
//! add one (and may add nothing else); customers are untouched. (The key ceremony itself runs
//! in Chromium: e2e/tests/webauthn.test.js.)

use serde_json::{Value, json};
use time::Duration;
use twofold_core::model::RequestMeta;
use twofold_core::policy::Policy;
use twofold_testkit::totp::csrf_of;
use twofold_testkit::{TestDb, both_backends, spawn_app, spawn_app_with};

const PW: &str = "correct horse battery staple";

async fn keys_only(db: TestDb) {
    // Keys need a domain name as the relying party (`localhost`), or none could be added.
    let app = spawn_app_with(db, |s| {
        s.relying_party.id = "localhost".into();
        s.relying_party.origins = vec![s.public_url.replace("127.0.0.1", "localhost")];
    })
    .await;
    let meta = RequestMeta::default();
    let (op, customer) = ("op@example.com", "cus@example.com");
    let mut secrets = Vec::new();
    for email in [op, customer] {
        app.verified_account(email, PW).await;
        let c = app.client();
        assert_eq!(app.log_in_json(&c, email, PW).await["status"], "signed_in");
        secrets.push(app.enroll_totp(&c, "phone").await.0);
    }
    app.core.set_operator(op, true, &meta).await.unwrap();

    // Before the policy: an operator signs in like anyone, and ticks "remember this browser".
    let remembered = app.client();
    assert_eq!(
        app.log_in_json(&remembered, op, PW).await["status"],
        "second_factor_required"
    );
    app.clock.advance(Duration::seconds(30));
    let r = remembered
        .post(app.at("/api/v1/session/second-factor"))
        .json(&json!({ "code": app.code_now(&secrets[0]), "remember": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.log_out(&remembered).await;

    let policy = Policy {
        operators_phishing_resistant: true,
        ..Policy::default()
    };
    app.core.set_policy(&policy, &meta).await.unwrap();

    // The operator has no key: neither the remembered browser nor the authenticator gets it
    // in; the password leads to adding a key, and only a key.
    for c in [&remembered, &app.client()] {
        let v = app.log_in_json(c, op, PW).await;
        assert_eq!(v["status"], "enrollment_required", "{v}");
        assert_eq!(v["methods"], json!(["webauthn"]));
        let r = c
            .post(app.at("/api/v1/session/second-factor"))
            .json(&json!({ "code": app.code_now(&secrets[0]) }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "the enrollment session has no second step");
        let html = c
            .get(app.at("/login/set-up"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!html.contains("Add authenticator app"), "{html}");
        let r = c
            .post(app.at("/account/security/totp"))
            .form(&[("csrf", csrf_of(&html).as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "an operator may add only a key");
    }

    // The customer is untouched: authenticator and remembered browser as before.
    let c = app.client();
    assert_eq!(
        app.log_in_json(&c, customer, PW).await["status"],
        "second_factor_required"
    );
    app.clock.advance(Duration::seconds(30));
    assert_eq!(
        app.second_factor(&c, &app.code_now(&secrets[1]))
            .await
            .status(),
        200
    );

    // Turning the rule off gives the operator its authenticator back.
    app.core
        .set_policy(&Policy::default(), &meta)
        .await
        .unwrap();
    let c = app.client();
    assert_eq!(
        app.log_in_json(&c, op, PW).await["status"],
        "second_factor_required"
    );
    app.clock.advance(Duration::seconds(30));
    assert_eq!(
        app.second_factor(&c, &app.code_now(&secrets[0]))
            .await
            .status(),
        200
    );
}
both_backends!(operators_can_be_held_to_keys, keys_only);

async fn codes_refused_at_the_second_step(db: TestDb) {
    let app = spawn_app(db).await;
    let meta = RequestMeta::default();
    let op = "op2@example.com";
    app.verified_account(op, PW).await;
    let c = app.client();
    app.log_in(&c, op, PW).await;
    let (secret, backup) = app.enroll_totp(&c, "phone").await;
    app.core.set_operator(op, true, &meta).await.unwrap();
    // A partial session from before the policy cannot finish with a code after it.
    let p = app.client();
    assert_eq!(
        app.log_in_json(&p, op, PW).await["status"],
        "second_factor_required"
    );
    let policy = Policy {
        operators_phishing_resistant: true,
        ..Policy::default()
    };
    app.core.set_policy(&policy, &meta).await.unwrap();
    app.clock.advance(Duration::seconds(30));
    for body in [
        json!({ "code": app.code_now(&secret) }),
        json!({ "backup_code": backup.unwrap()[0] }),
    ] {
        let r = p
            .post(app.at("/api/v1/session/second-factor"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "urn:twofold:problem:forbidden-by-policy");
    }
    assert_eq!(
        p.get(app.at("/api/v1/account"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Nor does a code prove a step-up, and it is refused before it is used: the same code
    // works once the policy no longer binds operators.
    let code = app.code_now(&secret);
    let step_up = |code: String| {
        c.post(app.at("/api/v1/session/step-up"))
            .json(&json!({ "code": code }))
            .send()
    };
    let r = step_up(code.clone()).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["type"],
        "urn:twofold:problem:forbidden-by-policy"
    );
    app.core
        .set_policy(&Policy::default(), &meta)
        .await
        .unwrap();
    assert_eq!(step_up(code).await.unwrap().status(), 200);
}
both_backends!(
    an_operator_code_is_refused_at_the_second_step,
    codes_refused_at_the_second_step
);
