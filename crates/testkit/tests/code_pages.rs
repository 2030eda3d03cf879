//! Codes by email in the hosted pages: adding an address in Security settings, signing in with
//! a mailed code, and the emailed sign-in link, which signs in only the browser that waits.

use serde_json::Value;
use time::Duration;
use twofold_testkit::totp::csrf_of;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app};

const PASSWORD: &str = "correct horse battery staple";

async fn page(app: &TestApp, c: &reqwest::Client, path: &str) -> (u16, String) {
    let r = c.get(app.at(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn form(
    app: &TestApp,
    c: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    c.post(app.at(path)).form(fields).send().await.unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn code_of(mail: &twofold_testkit::smtp::ReceivedMail) -> String {
    mail.subject().rsplit(' ').next().unwrap().to_owned()
}

/// Logs a fresh client in with the password; the second step is then pending.
async fn partial(app: &TestApp, email: &str) -> reqwest::Client {
    let c = app.client();
    let r = app.log_in(&c, email, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "second_factor_required");
    assert!(
        body["methods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "email"),
        "{body}"
    );
    c
}

/// Presses "Email a code to …" on the second-step page.
async fn send_login_code(app: &TestApp, c: &reqwest::Client) {
    let (status, html) = page(app, c, "/login/second-factor").await;
    assert_eq!(status, 200);
    assert!(html.contains("Email a code to c•••@example.net"), "{html}");
    let r = form(
        app,
        c,
        "/login/second-factor/send",
        &[
            ("csrf", &csrf_of(&html)),
            ("factor_id", &hidden(&html, "factor_id")),
        ],
    )
    .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let (_, html) = page(app, c, "/login/second-factor").await;
    assert!(
        html.contains("We sent an email with a code to <strong>c•••@example.net"),
        "{html}"
    );
}

async fn email_codes_in_the_pages(db: TestDb) {
    let app = spawn_app(db).await;
    let email = "dana@example.com";
    let codes_to = "codes@example.net";
    app.verified_account(email, PASSWORD).await;
    let c = app.client();
    assert_eq!(app.log_in(&c, email, PASSWORD).await.status(), 200);

    // Security settings → Add email codes → another address → the code mailed there.
    let (_, html) = page(&app, &c, "/account/security/new/email").await;
    assert!(
        html.contains(&format!("value=\"{email}\"")),
        "the account address is offered: {html}"
    );
    let r = form(
        &app,
        &c,
        "/account/security/new/email",
        &[("csrf", &csrf_of(&html)), ("destination", "not an address")],
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = form(
        &app,
        &c,
        "/account/security/new/email",
        &[("csrf", &csrf_of(&html)), ("destination", codes_to)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let confirm_at = location(&r);
    let (_, html) = page(&app, &c, &confirm_at).await;
    assert!(html.contains("c•••@example.net"), "{html}");
    let code = code_of(&app.smtp.wait_for(codes_to, 0).await);
    let r = form(
        &app,
        &c,
        &confirm_at,
        &[("csrf", &csrf_of(&html)), ("code", "000000")],
    )
    .await;
    assert_eq!(r.status(), 422);
    let r = form(
        &app,
        &c,
        &confirm_at,
        &[("csrf", &csrf_of(&html)), ("code", &code)],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Your backup codes"));
    // The owner is told at the account address.
    let told = app.smtp.wait_for(email, 1).await;
    assert!(
        told.data
            .contains("Email codes to c•••@example.net were turned on"),
        "{}",
        told.data
    );
    let (_, html) = page(&app, &c, "/account/security").await;
    assert!(html.contains("Email codes to c•••@example.net"), "{html}");

    // Sign in with a typed code (after the 30 s resend cooldown of the confirmation code).
    app.clock.advance(Duration::seconds(31));
    let b1 = partial(&app, email).await;
    send_login_code(&app, &b1).await;
    let mail = app.smtp.wait_for(codes_to, 1).await;
    assert!(
        mail.link("/login/email-link").is_some(),
        "login codes come with a link"
    );
    let (_, html) = page(&app, &b1, "/login/second-factor").await;
    let r = form(
        &app,
        &b1,
        "/login/second-factor",
        &[("csrf", &csrf_of(&html)), ("code", &code_of(&mail))],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/account");
    assert_eq!(page(&app, &b1, "/account").await.0, 200);

    // A code sent for one waiting browser does not work in another.
    app.clock.advance(Duration::seconds(31));
    let b2 = partial(&app, email).await;
    let b3 = partial(&app, email).await;
    send_login_code(&app, &b2).await;
    let code = code_of(&app.smtp.wait_for(codes_to, 2).await);
    let (_, html) = page(&app, &b3, "/login/second-factor").await;
    let r = form(
        &app,
        &b3,
        "/login/second-factor",
        &[("csrf", &csrf_of(&html)), ("code", &code)],
    )
    .await;
    assert_eq!(r.status(), 422, "another browser's code was accepted");

    // The link, opened in a different browser: approved, but that browser stays signed out,
    // and the waiting browser (b2) proceeds.
    let link = app
        .smtp
        .wait_for(codes_to, 2)
        .await
        .link("/login/email-link")
        .unwrap();
    let other = app.client();
    let r = other.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Approve sign-in"));
    // It shows where the waiting sign-in comes from, so a stranger's is not approved blindly.
    assert!(
        html.contains("IP address: <strong>127.0.0.1</strong>"),
        "{html}"
    );
    let status: Value = b2
        .get(app.at("/login/second-factor/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["approved"], false,
        "a GET of the link must not approve"
    );
    let token = hidden(&html, "token");
    let r = form(
        &app,
        &other,
        "/login/email-link",
        &[("csrf", &csrf_of(&html)), ("token", &token)],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Approved — return to the window where you signed in")
    );
    let r = other.get(app.at("/account")).send().await.unwrap();
    assert_eq!(r.status(), 303, "the approving browser was signed in");
    // Used once.
    let r = form(
        &app,
        &other,
        "/login/email-link",
        &[("csrf", &csrf_of(&html)), ("token", &token)],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        other.get(&link).send().await.unwrap().status(),
        400,
        "a used link shows as invalid"
    );
    let status: Value = b2
        .get(app.at("/login/second-factor/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["approved"], true);
    // b3 cannot ride on b2's approval.
    let (_, html) = page(&app, &b3, "/login/second-factor").await;
    let r = form(
        &app,
        &b3,
        "/login/second-factor/link",
        &[("csrf", &csrf_of(&html))],
    )
    .await;
    assert_eq!(r.status(), 409);
    let (_, html) = page(&app, &b2, "/login/second-factor").await;
    let r = form(
        &app,
        &b2,
        "/login/second-factor/link",
        &[("csrf", &csrf_of(&html))],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(page(&app, &b2, "/account").await.0, 200);

    // Opened in the waiting browser itself, the link signs it in at once.
    app.clock.advance(Duration::seconds(31));
    let b4 = partial(&app, email).await;
    send_login_code(&app, &b4).await;
    let link = app
        .smtp
        .wait_for(codes_to, 3)
        .await
        .link("/login/email-link")
        .unwrap();
    let html = b4.get(&link).send().await.unwrap().text().await.unwrap();
    let r = form(
        &app,
        &b4,
        "/login/email-link",
        &[
            ("csrf", &csrf_of(&html)),
            ("token", &hidden(&html, "token")),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(page(&app, &b4, "/account").await.0, 200);

    // The same through the JSON API.
    app.clock.advance(Duration::seconds(31));
    let b5 = partial(&app, email).await;
    let options: Value = b5
        .get(app.at("/api/v1/session/second-factor"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sender = &options["code_factors"][0];
    assert_eq!(sender["channel"], "email");
    assert_eq!(sender["hint"], "c•••@example.net");
    let r = b5
        .post(app.at("/api/v1/session/second-factor/code"))
        .json(&serde_json::json!({ "factor_id": sender["id"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let code = code_of(&app.smtp.wait_for(codes_to, 4).await);
    let r = app.second_factor(&b5, &code).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "signed_in");
}
both_backends!(email_codes_in_the_pages, email_codes_in_the_pages);
