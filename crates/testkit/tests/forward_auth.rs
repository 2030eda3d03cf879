//! Forward-auth through a real nginx running docs/forward-auth/nginx.conf: anonymous → sign-in
//! and back; a partial session is not enough; one factor where two are required → step-up;
//! two factors → 200 with the Remote-* headers; public paths pass; a phishing-resistant rule
//! sends an account without a key to add one; the sign-in returns only to the origins the rules
//! name (and Twofold's own). Every spelling of a host or path (through nginx and in Traefik's
//! X-Forwarded-* headers) gets the requirement of its canonical form.

use reqwest::cookie::{CookieStore, Jar};
use serde_json::json;
use std::sync::Arc;
use time::Duration;
use twofold_core::assurance::ForwardAuthRules;
use twofold_testkit::nginx::{Nginx, echo_upstream, free_port};
use twofold_testkit::totp::handed_back;
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app_with};

const PW: &str = "correct horse battery staple";

/// Rules as a configuration file has them (and as the configuration loader reads them).
fn config(default: &str, rules: &[(&str, &str, &str)]) -> ForwardAuthRules {
    let rules: Vec<_> = rules
        .iter()
        .map(|(host, path_prefix, require)| {
            json!({ "host": host, "path_prefix": path_prefix, "require": require })
        })
        .collect();
    serde_json::from_value(json!({ "default": default, "rules": rules })).expect("rules")
}

fn rules(host: &str) -> ForwardAuthRules {
    config(
        "two_factors",
        &[
            (host, "/public", "public"),
            (host, "/basic", "one_factor"),
            (host, "/keys", "phishing_resistant"),
        ],
    )
}

/// docs/forward-auth/README.md's example.
fn readme_rules(more: &[(&str, &str, &str)]) -> ForwardAuthRules {
    let mut rules = vec![
        ("app.example.com", "/", "two_factors"),
        ("app.example.com", "/admin", "phishing_resistant"),
    ];
    rules.extend_from_slice(more);
    config("one_factor", &rules)
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
    let port = free_port();
    let app = spawn_app_with(db, |s| s.forward_auth = rules(&format!("127.0.0.1:{port}"))).await;
    let nginx = Nginx::start_on(port, &app.url, echo_upstream().await).await;
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
    let app: TestApp = spawn_app_with(db, |s| s.forward_auth = rules("127.0.0.1")).await;
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

/// A browser whose cookies the test can also hand to a raw request.
fn browser() -> (reqwest::Client, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    let c = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    (c, jar)
}

fn cookie(app: &TestApp, jar: &Jar) -> String {
    let url = app.url.parse().expect("app url");
    jar.cookies(&url)
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default()
}

/// A session with the password only (the account has no second factor).
async fn password_session(app: &TestApp, email: &str) -> (reqwest::Client, String) {
    let (c, jar) = browser();
    app.verified_account(email, PW).await;
    assert_eq!(app.log_in_json(&c, email, PW).await["status"], "signed_in");
    (c, cookie(app, &jar))
}

/// A session with the password and a TOTP code (`amr` pwd, otp, mfa: two factors, no key).
async fn totp_session(app: &TestApp, email: &str) -> (reqwest::Client, String) {
    let (c, jar) = browser();
    app.verified_account(email, PW).await;
    assert_eq!(app.log_in(&c, email, PW).await.status(), 200);
    let (secret, _) = app.enroll_totp(&c, "phone").await;
    app.log_out(&c).await;
    let v = app.log_in_json(&c, email, PW).await;
    assert_eq!(v["status"], "second_factor_required");
    app.clock.advance(Duration::seconds(30));
    let r = c
        .post(app.at("/api/v1/session/second-factor"))
        .json(&json!({ "code": app.code_now(&secret) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    (c, cookie(app, &jar))
}

/// nginx's answer (status, `Location`) to `GET target` with `Host: host`, sent byte for byte
/// as written: reqwest would resolve `/./` and `/../` itself.
async fn raw_get(nginx: &Nginx, host: &str, target: &str, cookie: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = nginx.url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("nginx");
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok());
    let location = text
        .lines()
        .map(str::trim_end)
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_owned())
        });
    (status.expect("status line"), location.unwrap_or_default())
}

async fn spellings_through_nginx(db: TestDb) {
    let app = spawn_app_with(db, |s| s.forward_auth = readme_rules(&[])).await;
    let nginx = Nginx::start(&app.url, echo_upstream().await).await;

    // Password only: enough where the default applies, not for app.example.com in any spelling.
    let (pw, cookie) = password_session(&app, "pw@example.com").await;
    assert_eq!(
        raw_get(&nginx, "other.example.com", "/", &cookie).await.0,
        200
    );
    for host in [
        "app.example.com",
        "app.example.com.",
        "APP.EXAMPLE.COM",
        "app.example.com:80",
        "App.Example.Com.:80",
    ] {
        let (status, to) = raw_get(&nginx, host, "/", &cookie).await;
        assert_eq!(status, 302, "{host}");
        assert!(
            to.ends_with("?rd=http%3A%2F%2Fapp.example.com%2F"),
            "{host}: {to}"
        );
        // No second factor to prove again: off to set one up.
        assert_eq!(start(&pw, &to).await, "/account/security", "{host}");
    }

    // Two factors: app.example.com, but not its /admin (a key) in any spelling.
    let (totp, cookie) = totp_session(&app, "totp@example.com").await;
    assert_eq!(
        raw_get(&nginx, "app.example.com.", "/", &cookie).await.0,
        200
    );
    assert_eq!(
        raw_get(&nginx, "app.example.com", "/administrator", &cookie)
            .await
            .0,
        302
    );
    for (host, path) in [
        ("app.example.com", "/admin"),
        ("app.example.com", "/%61dmin"),
        ("app.example.com", "//admin"),
        ("app.example.com", "/Admin"),
        ("app.example.com", "/./admin"),
        ("app.example.com", "/x/../admin"),
        ("app.example.com", "/x/%2e%2e/admin/users"),
        ("app.example.com", "/x/..;/admin"),
        ("app.example.com.", "/admin"),
        ("APP.EXAMPLE.COM:80", "/ADMIN/"),
    ] {
        let (status, to) = raw_get(&nginx, host, path, &cookie).await;
        assert_eq!(status, 302, "{host}{path}");
        assert_eq!(start(&totp, &to).await, "/account/security", "{host}{path}");
    }
    // No canonical form: 400 from Twofold (nginx says so again), or from nginx itself (NUL).
    for path in [
        "/admin%2Fx",
        "/admin%2fx",
        "/%00",
        "/admin%00",
        "/ad%09min",
        "/%2561dmin",
    ] {
        assert_eq!(
            raw_get(&nginx, "app.example.com", path, &cookie).await.0,
            400,
            "{path}"
        );
    }
}
both_backends!(
    forward_auth_spellings_through_nginx,
    spellings_through_nginx
);

/// What Traefik or Caddy would ask: (status, problem type if any).
async fn ask(
    app: &TestApp,
    c: &reqwest::Client,
    proto: &str,
    host: &str,
    uri: &str,
) -> (u16, String) {
    let r = c
        .get(app.at("/api/v1/forward-auth"))
        .header("x-forwarded-proto", proto)
        .header("x-forwarded-host", host)
        .header("x-forwarded-uri", uri)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    if status != 400 {
        return (status, String::new());
    }
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: serde_json::Value = r.json().await.unwrap();
    (status, body["type"].as_str().unwrap_or_default().to_owned())
}

async fn spellings_in_forwarded_headers(db: TestDb) {
    let more = [("app.example.com:8443", "/", "phishing_resistant")];
    let app = spawn_app_with(db, |s| s.forward_auth = readme_rules(&more)).await;

    let (totp, _) = totp_session(&app, "totp@example.com").await;
    assert_eq!(
        ask(&app, &totp, "https", "app.example.com.", "/x").await.0,
        200
    );
    for path in [
        "/admin",
        "/%61dmin",
        "//admin",
        "/Admin",
        "/./admin",
        "/x/../admin",
        "/x/%2E%2E/admin",
        "/x\\..\\admin",
        "/adminx",
        "/admin?x=1",
    ] {
        assert_eq!(
            ask(&app, &totp, "https", "app.example.com", path).await.0,
            302,
            "{path}"
        );
        assert_eq!(
            ask(&app, &totp, "http", "App.Example.com.:80", path)
                .await
                .0,
            302,
            "{path}"
        );
    }
    let (pw, _) = password_session(&app, "pw@example.com").await;
    for (proto, host) in [
        ("https", "other.example.com"),
        // A rule without a port is for the default ports only.
        ("https", "app.example.com:8080"),
        ("http", "app.example.com:443"),
    ] {
        assert_eq!(
            ask(&app, &pw, proto, host, "/").await.0,
            200,
            "{proto} {host}"
        );
    }
    for (proto, host) in [
        ("https", "app.example.com"),
        ("https", "app.example.com."),
        ("HTTPS", "APP.EXAMPLE.COM"),
        ("https", "app.example.com:443"),
        ("http", "app.example.com:80"),
        ("http", "app.example.com.:80"),
        ("https", "app.example.com:8443"),
    ] {
        assert_eq!(
            ask(&app, &pw, proto, host, "/").await.0,
            302,
            "{proto} {host}"
        );
    }

    let invalid = "urn:twofold:problem:invalid-input";
    for (proto, host, uri) in [
        ("https", "app.example.com", "/admin%2Fx"),
        ("https", "app.example.com", "/admin%5Cx"),
        ("https", "app.example.com", "/%00"),
        ("https", "app.example.com", "/ad%0Amin"),
        ("https", "app.example.com", "/ad\tmin"),
        ("https", "app.example.com", "admin"),
        ("https", "app.example.com@evil.example", "/"),
        ("https", "app.example.com..", "/"),
        ("ftp", "app.example.com", "/"),
    ] {
        let got = ask(&app, &totp, proto, host, uri).await;
        assert_eq!(got, (400, invalid.to_owned()), "{proto} {host} {uri:?}");
    }
}
both_backends!(
    forward_auth_spellings_in_forwarded_headers,
    spellings_in_forwarded_headers
);

/// `/forward-auth/start?rd=…`: (status, Location).
async fn start_with(app: &TestApp, c: &reqwest::Client, rd: &str) -> (u16, String) {
    let enc: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
    let r = c
        .get(app.at(&format!("/forward-auth/start?rd={enc}")))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), location(&r))
}

async fn returns_only_to_named_origins(db: TestDb) {
    let rules = [
        ("app.example.com", "/", "two_factors"),
        ("app.example.com:8443", "/", "public"),
    ];
    let app = spawn_app_with(db, |s| s.forward_auth = config("two_factors", &rules)).await;
    let c = app.client();
    let own = app.url.trim_start_matches("http://");
    let (_, port) = own.rsplit_once(':').unwrap();
    for rd in [
        format!("https://{own}/account"),
        "http://127.0.0.1:1/evil".into(),
        format!("http://localhost:{port}/evil"),
        "http://localhost:1/evil".into(),
        "http://app.example.com:1/x".into(),
        "https://app.example.com:80/x".into(),
        "http://app.example.com@evil.example/".into(),
        "http://app.example.com:@evil.example/".into(),
        "http://evil.example\\@app.example.com/".into(),
        "http://app.example.com\\@evil.example/".into(),
        "http:\\\\evil.example/".into(),
        "//evil.example/".into(),
        "/\\evil.example".into(),
        "http://app.example.com%2eevil.example/".into(),
        "http://app.exa\tmple.com/".into(),
        "http://app.example.com/\r\nSet-Cookie: x=1".into(),
        "http://app.example.com../".into(),
        "http://app.example.com/a%2Fb".into(),
        "javascript:alert(1)".into(),
    ] {
        assert_eq!(start_with(&app, &c, &rd).await.0, 400, "{rd:?}");
    }

    for rd in [
        format!("http://{own}/account"),
        format!("HTTP://{own}/account"),
        "http://app.example.com/x".into(),
        "https://app.example.com:443/x".into(),
        "HTTP://APP.Example.COM./x".into(),
    ] {
        assert_eq!(
            start_with(&app, &c, &rd).await,
            (303, "/login".into()),
            "{rd}"
        );
    }
    // Public there: straight back, to the canonical address.
    assert_eq!(
        start_with(&app, &c, "HTTPS://App.Example.COM.:8443/x/../y?q=1").await,
        (303, "https://app.example.com:8443/y?q=1".into())
    );
    // The address remembered for after the sign-in is the canonical one.
    app.verified_account("back@example.com", PW).await;
    assert_eq!(
        start_with(&app, &c, "http://APP.example.com./private")
            .await
            .0,
        303
    );
    assert_eq!(app.log_in(&c, "back@example.com", PW).await.status(), 200);
    let page = c.get(app.at("/account")).send().await.unwrap();
    assert_eq!(
        handed_back(&page.text().await.unwrap()).as_deref(),
        Some("http://app.example.com/private")
    );
}
both_backends!(
    forward_auth_returns_only_to_named_origins,
    returns_only_to_named_origins
);
