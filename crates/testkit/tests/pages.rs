//! Server-rendered pages: forms, CSRF and headers.

use twofold_testkit::{TestDb, both_backends, spawn_app};

const PW: &str = "correct horse battery staple 42";

fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    html[start..].split('"').next().unwrap().to_owned()
}

async fn forms_require_their_csrf_token(db: TestDb) {
    let app = spawn_app(db).await;
    app.verified_account("page@example.com", PW).await;
    let c = app.client();
    let page = c.get(app.at("/login")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let csp = headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'")
            && csp.contains("script-src 'self'")
            && !csp.contains("unsafe-inline")
    );
    assert_eq!(headers.get("referrer-policy").unwrap(), "same-origin");
    let html = page.text().await.unwrap();
    let csrf = csrf_of(&html);
    let form = |token: &str| {
        vec![
            ("csrf", token.to_owned()),
            ("email", "page@example.com".to_owned()),
            ("password", PW.to_owned()),
        ]
    };

    // No token, a wrong token, or the right token without its cookie: refused, nothing happens.
    let r = c
        .post(app.at("/login"))
        .form(&form(""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(app.at("/login"))
        .form(&form("forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let stranger = app.client();
    let r = stranger
        .post(app.at("/login"))
        .form(&form(&csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        c.get(app.at("/account")).send().await.unwrap().status(),
        303
    );

    // With it: signed in and redirected to the account page.
    let r = c
        .post(app.at("/login"))
        .form(&form(&csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers().get("location").unwrap(), "/account");
    let account = c.get(app.at("/account")).send().await.unwrap();
    assert_eq!(account.status(), 200);
    let html = account.text().await.unwrap();
    assert!(
        html.contains("Your account")
            && html.contains("page@example.com")
            && html.contains("/account/security")
    );

    let security = c
        .get(app.at("/account/security"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(security.contains("This browser"));

    // Sign out needs the token too.
    let r = c
        .post(app.at("/logout"))
        .form(&[("csrf", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        c.get(app.at("/account")).send().await.unwrap().status(),
        200
    );
    let r = c
        .post(app.at("/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        c.get(app.at("/account")).send().await.unwrap().status(),
        303
    );
}
both_backends!(csrf_case, forms_require_their_csrf_token);

async fn wrong_password_page_says_so_without_detail(db: TestDb) {
    let app = spawn_app(db).await;
    let c = app.client();
    let csrf = csrf_of(
        &c.get(app.at("/login"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let r = c
        .post(app.at("/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "<b>x</b>@example.com"),
            ("password", "whatever it is"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let html = r.text().await.unwrap();
    assert!(html.contains("Incorrect email or password."));
    assert!(!html.contains("<b>x</b>"), "user input must be escaped");
}
both_backends!(
    wrong_password_page_case,
    wrong_password_page_says_so_without_detail
);

async fn verification_link_get_does_not_consume(db: TestDb) {
    let app = spawn_app(db).await;
    let c = app.client();
    c.post(app.at("/api/v1/signup"))
        .json(&serde_json::json!({"email": "scan@example.com", "password": PW}))
        .send()
        .await
        .unwrap();
    let link = app
        .smtp
        .wait_for("scan@example.com", 0)
        .await
        .link("/verify-email")
        .unwrap();
    // A mail scanner prefetching the link twice changes nothing.
    for _ in 0..2 {
        let html = c.get(&link).send().await.unwrap().text().await.unwrap();
        assert!(html.contains("Verify email address"));
    }
    let token = link.split("token=").nth(1).unwrap();
    let r = c
        .post(app.at("/api/v1/email-verification"))
        .json(&serde_json::json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
both_backends!(verify_get_case, verification_link_get_does_not_consume);
