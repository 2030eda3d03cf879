//! Forward-auth through a real nginx running docs/forward-auth/nginx.conf: anonymous → sign-in
//! and back; a partial session is not enough; one factor where two are required → step-up;
//! two factors → 200 with the Remote-* headers; public paths pass; a phishing-resistant rule
//! sends an account without a key to add one; the sign-in returns only to hosts the rules name.

use serde_json::json;
use time::Duration;
use twofold_core::assurance::{Assurance, ForwardAuthRules, Rule};
use twofold_testkit::nginx::{Nginx, echo_upstream};
use twofold_testkit::totp::handed_back;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app_with};

const PW: &str = "correct horse battery staple";

fn rules() -> ForwardAuthRules {
    let rule = |path: &str, require| Rule {
        host: "127.0.0.1".into(),
        path_prefix: path.into(),
        require,
    };
    ForwardAuthRules {
        default: Assurance::TwoFactors,
        rules: vec![
            rule("/public", Assurance::Public),
            rule("/basic", Assurance::OneFactor),
            rule("/keys", Assurance::PhishingResistant),
        ],
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Follows what a browser would from a forward-auth redirect: returns where `/forward-auth/start`
/// sends it.
async fn start(c: &reqwest::Client, to: &str) -> String {
    let r = c.get(to).send().await.unwrap();
    assert_eq!(r.status(), 303, "{to}");
    location(&r)
}

async fn through_nginx(db: TestDb) {
    let app = spawn_app_with(db, |s| s.forward_auth = rules()).await;
    let nginx = Nginx::start(&app.url, echo_upstream().await).await;
    let at = |path: &str| format!("{}{path}", nginx.url);
    let email = "fwd@example.com";
    app.verified_account(email, PW).await;
    let c = app.client();

    // Public paths pass, without user headers, even when the client sends its own.
    let r = c
        .get(at("/public/page"))
        .header("remote-user", "admin@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        "remote-user: \nremote-email: \nremote-amr: \n"
    );

    // Anonymous: off to the sign-in, with the original URL to come back to.
    let wanted = at("/private/report?year=2026&q=a%20b");
    let r = c.get(&wanted).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let to = location(&r);
    let expected: String = url::form_urlencoded::byte_serialize(wanted.as_bytes()).collect();
    assert_eq!(to, format!("{}/forward-auth/start?rd={expected}", app.url));
    assert_eq!(start(&c, &to).await, "/login");

    // With the password only (2FA pending), still not in.
    let r = app.log_in(&c, email, PW).await;
    assert_eq!(r.status(), 200);
    let (secret, _) = app.enroll_totp(&c, "phone").await;
    app.log_out(&c).await;
    let v = app.log_in_json(&c, email, PW).await;
    assert_eq!(v["status"], "second_factor_required");
    assert_eq!(c.get(&wanted).send().await.unwrap().status(), 302);

    // Two factors: in, with who and how.
    app.clock.advance(Duration::seconds(30));
    let r = c
        .post(app.at("/api/v1/session/second-factor"))
        .json(&json!({ "code": app.code_now(&secret), "remember": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(app.at("/account")).send().await.unwrap();
    // A page, not a redirect: the sign-in form's CSP (form-action 'self') would stop one.
    assert_eq!(r.status(), 200, "the sign-in returns to where it started");
    assert_eq!(
        handed_back(&r.text().await.unwrap()).as_deref(),
        Some(wanted.as_str())
    );
    let r = c.get(&wanted).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        format!("remote-user: {email}\nremote-email: {email}\nremote-amr: pwd,otp,mfa\n")
    );
    // The return is used once.
    assert_eq!(
        c.get(app.at("/account")).send().await.unwrap().status(),
        200
    );

    // A key-only rule and an account without a key: set one up.
    let r = c.get(at("/keys/vault")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(start(&c, &location(&r)).await, "/account/security");

    // One factor where two are required: a remembered browser's session (password only).
    app.log_out(&c).await;
    let v = app.log_in_json(&c, email, PW).await;
    assert_eq!(v["status"], "signed_in");
    assert_eq!(c.get(at("/basic/x")).send().await.unwrap().status(), 200);
    let r = c.get(&wanted).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        start(&c, &location(&r)).await,
        "/account/step-up?next=/account"
    );
    app.clock.advance(Duration::seconds(30));
    let r = c
        .post(app.at("/api/v1/session/step-up"))
        .json(&json!({ "code": app.code_now(&secret) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = c.get(app.at("/account")).send().await.unwrap();
    assert_eq!(
        handed_back(&page.text().await.unwrap()),
        Some(wanted.clone())
    );
    let r = c.get(&wanted).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("remote-amr: pwd,otp,mfa"));
}
both_backends!(forward_auth_through_a_real_nginx, through_nginx);

async fn no_open_redirect(db: TestDb) {
    let app: TestApp = spawn_app_with(db, |s| s.forward_auth = rules()).await;
    let c = app.client();
    for rd in [
        "https://evil.example/phish",
        "javascript:alert(1)",
        "http://user@127.0.0.1.evil.example/",
        "",
    ] {
        let enc: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let r = c
            .get(app.at(&format!("/forward-auth/start?rd={enc}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{rd}");
    }
    // Without the original request's address the check cannot decide.
    let r = c.get(app.at("/api/v1/forward-auth")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // Traefik and Caddy style: X-Forwarded-* and a redirect the proxy passes on.
    let r = c
        .get(app.at("/api/v1/forward-auth"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "127.0.0.1:8443")
        .header("x-forwarded-uri", "/private")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(location(&r).contains("rd=https%3A%2F%2F127.0.0.1%3A8443%2Fprivate"));
    let r = c
        .get(app.at("/api/v1/forward-auth"))
        .header("x-forwarded-host", "127.0.0.1")
        .header("x-forwarded-uri", "/public/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
both_backends!(forward_auth_never_redirects_elsewhere, no_open_redirect);
