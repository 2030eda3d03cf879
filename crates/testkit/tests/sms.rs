//! Text messages: the exact request each gateway adapter makes, retries through a gateway
//! outage without sending twice, codes that expire before delivery, and SMS in the pages.

use base64::Engine;
use serde_json::{Value, json};
use time::Duration;
use twofold_core::ports::{Deliver, DeliveryError, Message, Sms};
use twofold_delivery::{WebhookConfig, WebhookSms, webhook_signature};
use twofold_testkit::app::{TEST_TWILIO_SID, TEST_TWILIO_TOKEN};
use twofold_testkit::totp::csrf_of;
use twofold_testkit::{SmsGateway, TestApp, TestDb, both_backends, spawn_app};

const PHONE: &str = "+14155558318";

async fn key(app: &TestApp) -> String {
    app.core.create_api_key("acme", "test").await.unwrap().1
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.at(&format!("/api/v1/subjects{path}")))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn new_sms_factor(app: &TestApp, key: &str, subject: &str) -> String {
    let r = post(
        app,
        key,
        &format!("/{subject}/factors"),
        json!({ "type": "sms", "phone": "+1 415 555 8318" }),
    )
    .await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn send(app: &TestApp, key: &str, subject: &str, factor: &str) -> Value {
    let r = post(
        app,
        key,
        &format!("/{subject}/challenges"),
        json!({ "factor_id": factor }),
    )
    .await;
    assert_eq!(r.status(), 202);
    r.json().await.unwrap()
}

async fn twilio_request_and_sms_verification(db: TestDb) {
    let app = spawn_app(db).await;
    let k = key(&app).await;
    let factor = new_sms_factor(&app, &k, "u1").await;
    let sent = send(&app, &k, "u1", &factor).await;
    assert_eq!(sent["channel"], "sms");
    assert_eq!(sent["hint"], "+1 ••• ••• 8318");

    let r = app.sms.wait_for(PHONE, 0).await;
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.path,
        format!("/2010-04-01/Accounts/{TEST_TWILIO_SID}/Messages.json")
    );
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{TEST_TWILIO_SID}:{TEST_TWILIO_TOKEN}"));
    assert_eq!(
        r.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.form("To").as_deref(), Some(PHONE));
    assert_eq!(r.form("From").as_deref(), Some("+15005550006"));
    let code = r.sms_code().unwrap();
    assert_eq!(code.len(), 6);
    let text = r.sms_text().unwrap();
    assert!(
        text.ends_with(&format!("@127.0.0.1 #{code}")),
        "WebOTP line: {text}"
    );
    assert!(r.header("i-twilio-idempotency-token").is_some());

    let r = post(
        &app,
        &k,
        &format!("/u1/factors/{factor}/confirm"),
        json!({ "code": code }),
    )
    .await;
    assert_eq!(r.status(), 200);
    app.clock.advance(Duration::seconds(31));
    send(&app, &k, "u1", &factor).await;
    let code = app.sms.wait_for(PHONE, 1).await.sms_code().unwrap();
    let r = post(&app, &k, "/u1/verify", json!({ "code": code })).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["type"], "sms");
    assert_eq!(app.sms.requests().len(), 2);
}
both_backends!(
    twilio_request_and_sms_verification,
    twilio_request_and_sms_verification
);

async fn gateway_outage_retries_without_duplicates(db: TestDb) {
    let app = spawn_app(db).await;
    let k = key(&app).await;
    let factor = new_sms_factor(&app, &k, "u2").await;

    app.sms.stop();
    let sent = send(&app, &k, "u2", &factor).await;
    let path = format!("/u2/challenges/{}", sent["challenge_id"].as_str().unwrap());
    app.api_get_until(&k, &path, |v| v["delivery"] == "retrying")
        .await;
    assert!(app.sms.requests().is_empty());

    // Back up: the retry (due 5 s later on the app's clock) delivers it, once.
    app.sms.restart().await;
    app.clock.advance(Duration::seconds(6));
    let code = app.sms.wait_for(PHONE, 0).await.sms_code().unwrap();
    app.api_get_until(&k, &path, |v| v["delivery"] == "sent")
        .await;
    app.clock.advance(Duration::minutes(3));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(app.sms.requests().len(), 1, "the text was sent twice");
    let r = post(
        &app,
        &k,
        &format!("/u2/factors/{factor}/confirm"),
        json!({ "code": code }),
    )
    .await;
    assert_eq!(r.status(), 200);

    // Down for longer than the code lives: dropped, never sent late, and reported as failed.
    app.clock.advance(Duration::seconds(31));
    app.sms.stop();
    let sent = send(&app, &k, "u2", &factor).await;
    let path = format!("/u2/challenges/{}", sent["challenge_id"].as_str().unwrap());
    app.api_get_until(&k, &path, |v| v["delivery"] == "retrying")
        .await;
    app.sms.restart().await;
    app.clock.advance(Duration::minutes(11));
    let v = app
        .api_get_until(&k, &path, |v| v["delivery"] == "failed")
        .await;
    assert_eq!(v["delivery_failed"], true);
    assert_eq!(v["status"], "expired");
    assert_eq!(app.sms.requests().len(), 1, "an expired code was texted");

    // A gateway that refuses the number: failed at once, no retries.
    app.sms.set_status(400);
    let sent = send(&app, &k, "u2", &factor).await;
    let path = format!("/u2/challenges/{}", sent["challenge_id"].as_str().unwrap());
    app.api_get_until(&k, &path, |v| v["delivery"] == "failed")
        .await;
    assert_eq!(app.sms.requests().len(), 2);
}
both_backends!(
    gateway_outage_retries_without_duplicates,
    gateway_outage_retries_without_duplicates
);

#[tokio::test]
async fn webhook_request_is_signed() {
    let gateway = SmsGateway::start().await;
    let secret = "a shared secret of the receiver";
    let adapter = WebhookSms::new(WebhookConfig {
        url: format!("{}/hooks/sms?tenant=1", gateway.url()),
        secret: secret.to_owned().into(),
        headers: [("X-Api-Key".to_owned(), "receiver-key".to_owned())].into(),
        timeout_secs: 5,
    })
    .unwrap();
    let id = uuid::Uuid::now_v7();
    let message = Message::Sms(Sms {
        to: PHONE.into(),
        text: "123456 is your code".into(),
    });
    adapter.deliver(id, &message).await.unwrap();
    let r = &gateway.requests()[0];
    assert_eq!(r.path, "/hooks/sms?tenant=1");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-api-key"), Some("receiver-key"));
    assert_eq!(r.header("idempotency-key"), Some(id.to_string().as_str()));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        json!({ "message_id": id, "to": PHONE, "text": "123456 is your code" })
    );
    // The receiver's check, done independently: HMAC-SHA-256 over "{timestamp}.{body}".
    let timestamp: i64 = r.header("x-twofold-timestamp").unwrap().parse().unwrap();
    assert!((time::OffsetDateTime::now_utc().unix_timestamp() - timestamp).abs() < 60);
    use hmac::Mac;
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&r.body);
    let expected = format!(
        "v1={}",
        data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes())
    );
    assert_eq!(r.header("x-twofold-signature"), Some(expected.as_str()));
    assert_eq!(
        webhook_signature(secret.as_bytes(), timestamp, &r.body),
        expected
    );

    // 5xx and 429 are retried, 4xx is not, and a stopped receiver is a temporary failure.
    gateway.set_status(503);
    assert!(matches!(
        adapter.deliver(id, &message).await,
        Err(DeliveryError::Temporary(_))
    ));
    gateway.set_status(429);
    assert!(matches!(
        adapter.deliver(id, &message).await,
        Err(DeliveryError::Temporary(_))
    ));
    gateway.set_status(400);
    assert!(matches!(
        adapter.deliver(id, &message).await,
        Err(DeliveryError::Permanent(_))
    ));
    gateway.stop();
    assert!(matches!(
        adapter.deliver(id, &message).await,
        Err(DeliveryError::Temporary(_))
    ));
    gateway.restart().await;
    gateway.set_status(200);
    adapter.deliver(id, &message).await.unwrap();

    // Configuration mistakes are refused up front, and secrets never show in Debug.
    let bad = WebhookConfig {
        url: "ftp://example.com".into(),
        secret: secret.to_owned().into(),
        headers: Default::default(),
        timeout_secs: 5,
    };
    assert!(WebhookSms::new(bad.clone()).is_err());
    assert!(!format!("{bad:?}").contains(secret));
    let short = WebhookConfig {
        url: "https://example.com".into(),
        secret: "short".to_owned().into(),
        ..bad
    };
    assert!(WebhookSms::new(short).is_err());
}

#[test]
fn twilio_configuration_is_checked() {
    use twofold_delivery::{SmsConfig, TwilioConfig, TwilioSms, build_sms};
    let base = TwilioConfig {
        account_sid: "AC1".into(),
        auth_token: "tok-secret-value".to_owned().into(),
        from: None,
        messaging_service_sid: None,
        base_url: "https://api.twilio.com".into(),
        timeout_secs: 5,
    };
    assert!(
        TwilioSms::new(base.clone()).is_err(),
        "neither from nor messaging service"
    );
    let both = TwilioConfig {
        from: Some("+15005550006".into()),
        messaging_service_sid: Some("MG1".into()),
        ..base.clone()
    };
    assert!(
        TwilioSms::new(both).is_err(),
        "both from and messaging service"
    );
    let ok = TwilioConfig {
        messaging_service_sid: Some("MG1".into()),
        ..base.clone()
    };
    assert!(TwilioSms::new(ok.clone()).is_ok());
    assert!(!format!("{ok:?}").contains("tok-secret-value"));
    let config: SmsConfig = toml::from_str("adapter = \"twilio\"").unwrap();
    assert!(build_sms(&config).is_err(), "twilio without its section");
    let config: SmsConfig = toml::from_str(
        "adapter = \"twilio\"\n[twilio]\naccount_sid = \"AC1\"\nauth_token = \"t\"\nfrom = \"+15005550006\"\n",
    )
    .unwrap();
    assert!(build_sms(&config).is_ok());
    assert!(toml::from_str::<SmsConfig>("adapter = \"carrier-pigeon\"").is_err());
    assert!(toml::from_str::<SmsConfig>("adapter = \"log\"\ntypo = 1").is_err());
}

async fn sms_in_the_pages(db: TestDb) {
    let app = spawn_app(db).await;
    let email = "eve@example.com";
    let password = "correct horse battery staple";
    app.verified_account(email, password).await;
    let c = app.client();
    assert_eq!(app.log_in(&c, email, password).await.status(), 200);

    let html = c
        .get(app.at("/account/security/new/sms"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&html);
    let r = c
        .post(app.at("/account/security/new/sms"))
        .form(&[("csrf", csrf.as_str()), ("destination", "12345")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("international format"));
    let r = c
        .post(app.at("/account/security/new/sms"))
        .form(&[("csrf", csrf.as_str()), ("destination", "+1 415-555-8318")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let at = r.headers()["location"].to_str().unwrap().to_owned();
    let html = c
        .get(app.at(&at))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("+1 ••• ••• 8318"));
    // The number's middle digits in any spelling; a bare "555" can occur in a random token.
    let digits: String = html
        .chars()
        .filter(|c| !c.is_whitespace() && !"()-".contains(*c))
        .collect();
    assert!(
        !digits.contains("5558318"),
        "the full number is never shown: {html}"
    );
    let code = app.sms.wait_for(PHONE, 0).await.sms_code().unwrap();
    let r = c
        .post(app.at(&at))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Sign in: password, then "Text a code", then the code.
    app.clock.advance(Duration::seconds(31));
    let b = app.client();
    let body: Value = app.log_in(&b, email, password).await.json().await.unwrap();
    assert_eq!(body["methods"][0], "sms");
    let html = b
        .get(app.at("/login/second-factor"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Text a code to +1 ••• ••• 8318"), "{html}");
    let factor_id = html
        .split("name=\"factor_id\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let csrf = csrf_of(&html);
    let r = b
        .post(app.at("/login/second-factor/send"))
        .form(&[("csrf", csrf.as_str()), ("factor_id", factor_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let code = app.sms.wait_for(PHONE, 1).await.sms_code().unwrap();
    let html = b
        .get(app.at("/login/second-factor"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("We sent a text message with a code to <strong>+1 ••• ••• 8318"),
        "{html}"
    );
    let r = b
        .post(app.at("/login/second-factor"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/account");

    // Six minutes later, removing the phone needs a fresh second factor: a texted code.
    app.clock.advance(Duration::minutes(6));
    let html = b
        .get(app.at("/account/security"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&html);
    let remove = format!("/account/security/factors/{factor_id}/remove");
    let r = b
        .post(app.at(&remove))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/account/step-up")
    );
    let html = b
        .get(app.at("/account/step-up"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Text a code to +1 ••• ••• 8318"), "{html}");
    let r = b
        .post(app.at("/account/step-up/send"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("factor_id", factor_id.as_str()),
            ("next", "/account/security"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("We sent a code to +1 ••• ••• 8318")
    );
    let code = app.sms.wait_for(PHONE, 2).await.sms_code().unwrap();
    let r = b
        .post(app.at("/account/step-up"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("code", code.as_str()),
            ("next", "/account/security"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/account/security");
    let r = b
        .post(app.at(&remove))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/account/security?removed=1");
    let told = app.smtp.wait_for(email, 2).await;
    assert!(
        told.data
            .contains("The phone number +1 ••• ••• 8318 (codes by text message) was removed"),
        "{}",
        told.data
    );

    // Add it again for the rest of the test.
    app.clock.advance(Duration::seconds(31));
    let html = b
        .get(app.at("/account/security/new/sms"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = b
        .post(app.at("/account/security/new/sms"))
        .form(&[
            ("csrf", csrf_of(&html).as_str()),
            ("destination", "+1 415 555 8318"),
        ])
        .send()
        .await
        .unwrap();
    let at = r.headers()["location"].to_str().unwrap().to_owned();
    let factor_id = at.rsplit('/').next().unwrap().to_owned();
    let code = app.sms.wait_for(PHONE, 3).await.sms_code().unwrap();
    let r = b
        .post(app.at(&at))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "turned on again, with new backup codes");

    // When the text cannot be sent, the page says so.
    app.clock.advance(Duration::seconds(31));
    app.sms.set_status(400);
    let b = app.client();
    app.log_in(&b, email, password).await;
    let html = b
        .get(app.at("/login/second-factor"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&html);
    b.post(app.at("/login/second-factor/send"))
        .form(&[("csrf", csrf.as_str()), ("factor_id", factor_id.as_str())])
        .send()
        .await
        .unwrap();
    let mut shown = false;
    for _ in 0..100 {
        let html = b
            .get(app.at("/login/second-factor"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if html.contains("We could not send the text; try another method.")
            && !html.contains("id=\"delivery-failed\" class=\"error\" role=\"alert\" hidden")
        {
            shown = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(shown, "the failed delivery was not reported");
    let status: Value = b
        .get(app.at("/login/second-factor/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["delivery"], "failed");
}
both_backends!(sms_in_the_pages, sms_in_the_pages);
