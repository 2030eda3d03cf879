//! The SMS adapters against a stand-in gateway: the exact request each one makes, and how
//! the gateway's answers (or its absence) turn into retry decisions.

use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use std::time::Duration;
use twofold_core::ports::{Deliver, DeliveryError, Mail, Message, Sms};
use twofold_delivery::{TwilioConfig, TwilioSms, WebhookConfig, WebhookSms, webhook_signature};
use twofold_testkit::SmsGateway;
use uuid::Uuid;

const PHONE: &str = "+14155558318";
const TEXT: &str = "482913 is your Twofold code";
const SID: &str = "ACtest00000000000000000000000000000";
const TOKEN: &str = "twilio-auth-token-value";
const SECRET: &str = "a shared secret of the receiver";
const WAIT: Duration = Duration::from_secs(5);

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn sms() -> Message {
    Message::Sms(Sms {
        to: PHONE.into(),
        text: TEXT.into(),
    })
}

fn twilio_config(gateway: &SmsGateway) -> TwilioConfig {
    TwilioConfig {
        account_sid: SID.into(),
        auth_token: TOKEN.to_owned().into(),
        from: Some("+15005550006".into()),
        messaging_service_sid: None,
        base_url: gateway.url(),
        timeout_secs: 5,
    }
}

fn webhook_config(gateway: &SmsGateway) -> WebhookConfig {
    WebhookConfig {
        url: format!("{}/hooks/sms?tenant=1", gateway.url()),
        secret: SECRET.to_owned().into(),
        headers: [("X-Api-Key".to_owned(), "receiver-key".to_owned())].into(),
        timeout_secs: 5,
    }
}

/// 500 and 429 are retried, 400 is not, a stopped gateway is retried, and once it is back the
/// same message goes through.
async fn check_status_mapping(gateway: &SmsGateway, adapter: &dyn Deliver) -> Vec<String> {
    let id = Uuid::now_v7();
    let mut errors = Vec::new();
    for (status, temporary) in [(500, true), (503, true), (429, true), (400, false)] {
        gateway.set_status(status);
        match adapter.deliver(id, &sms()).await {
            Err(DeliveryError::Temporary(e)) if temporary => errors.push(e),
            Err(DeliveryError::Permanent(e)) if !temporary => errors.push(e),
            other => panic!("status {status}: {other:?}"),
        }
    }
    gateway.stop().await;
    match adapter.deliver(id, &sms()).await {
        Err(DeliveryError::Temporary(e)) => {
            // `stop().await` closed the socket: refused, not accepted and reset.
            assert!(e.contains("unreachable") && e.contains("refused"), "{e}");
            errors.push(e);
        }
        other => panic!("gateway stopped: {other:?}"),
    }
    gateway.restart().await;
    gateway.set_status(201);
    adapter.deliver(id, &sms()).await.unwrap();
    assert_eq!(
        gateway.requests().len(),
        5,
        "one request per try, none while stopped"
    );
    for e in &errors {
        assert!(
            !e.contains("482913") && !e.contains(TEXT) && !e.contains(PHONE),
            "{e}"
        );
        assert!(!e.contains(TOKEN) && !e.contains(SECRET), "{e}");
    }
    errors
}

#[tokio::test]
async fn twilio_posts_one_form_with_basic_auth_and_idempotency_token() {
    init();
    let gateway = SmsGateway::start().await;
    let adapter = TwilioSms::new(twilio_config(&gateway)).unwrap();
    let id = Uuid::now_v7();
    adapter.deliver(id, &sms()).await.unwrap();

    let requests = gateway
        .wait_for_requests(2, Duration::from_millis(300))
        .await;
    assert_eq!(requests.len(), 1, "exactly one request");
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/2010-04-01/Accounts/{SID}/Messages.json"));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
    assert_eq!(
        r.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        r.header("i-twilio-idempotency-token"),
        Some(id.to_string().as_str())
    );
    assert_eq!(r.form("To").as_deref(), Some(PHONE));
    assert_eq!(r.form("Body").as_deref(), Some(TEXT));
    assert_eq!(r.form("From").as_deref(), Some("+15005550006"));
    assert_eq!(r.form("MessagingServiceSid"), None);
    assert_eq!(gateway.last_sms_code().as_deref(), Some("482913"));

    // With a messaging service instead of a number, and a base URL with a trailing slash.
    let adapter = TwilioSms::new(TwilioConfig {
        from: None,
        messaging_service_sid: Some("MG0123".into()),
        base_url: format!("{}/", gateway.url()),
        ..twilio_config(&gateway)
    })
    .unwrap();
    adapter.deliver(id, &sms()).await.unwrap();
    let r = &gateway.wait_for_requests(2, WAIT).await[1];
    assert_eq!(r.path, format!("/2010-04-01/Accounts/{SID}/Messages.json"));
    assert_eq!(r.form("MessagingServiceSid").as_deref(), Some("MG0123"));
    assert_eq!(r.form("From"), None);
}

#[tokio::test]
async fn twilio_answers_map_to_retry_decisions() {
    init();
    let gateway = SmsGateway::start().await;
    let adapter = TwilioSms::new(twilio_config(&gateway)).unwrap();
    let errors = check_status_mapping(&gateway, &adapter).await;
    // Twilio's own code and message are kept for the operator.
    assert!(errors[2].contains("20429"), "{}", errors[2]);
    assert!(
        errors[3].contains("21211") && errors[3].contains("not a valid phone number"),
        "{}",
        errors[3]
    );

    let mail = Message::Email(Mail {
        to: "a@example.com".into(),
        subject: "s".into(),
        text: "t".into(),
    });
    let before = gateway.requests().len();
    assert!(matches!(
        adapter.deliver(Uuid::now_v7(), &mail).await,
        Err(DeliveryError::Permanent(_))
    ));
    assert_eq!(
        gateway.requests().len(),
        before,
        "mail never reaches the gateway"
    );
}

#[tokio::test]
async fn webhook_request_is_signed_json_with_extra_headers() {
    init();
    let gateway = SmsGateway::start().await;
    let adapter = WebhookSms::new(webhook_config(&gateway)).unwrap();
    let id = Uuid::now_v7();
    adapter.deliver(id, &sms()).await.unwrap();

    let requests = gateway
        .wait_for_requests(2, Duration::from_millis(300))
        .await;
    assert_eq!(requests.len(), 1, "exactly one request");
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hooks/sms?tenant=1");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-api-key"), Some("receiver-key"));
    assert_eq!(r.header("idempotency-key"), Some(id.to_string().as_str()));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        json!({ "message_id": id.to_string(), "to": PHONE, "text": TEXT })
    );
    assert_eq!(gateway.last_sms_code().as_deref(), Some("482913"));

    let timestamp: i64 = r.header("x-twofold-timestamp").unwrap().parse().unwrap();
    assert!((time::OffsetDateTime::now_utc().unix_timestamp() - timestamp).abs() < 60);
    let signature = r.header("x-twofold-signature").unwrap();
    // The receiver's check, done independently: HMAC-SHA-256 over "{timestamp}.{body}".
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&r.body);
    let expected = format!(
        "v1={}",
        data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes())
    );
    assert_eq!(signature, expected);
    assert_eq!(
        webhook_signature(SECRET.as_bytes(), timestamp, &r.body),
        expected
    );
    assert_ne!(
        webhook_signature(b"another secret of sixteen", timestamp, &r.body),
        expected
    );
    assert_ne!(
        webhook_signature(SECRET.as_bytes(), timestamp + 1, &r.body),
        expected
    );
}

#[tokio::test]
async fn webhook_answers_map_to_retry_decisions() {
    init();
    let gateway = SmsGateway::start().await;
    let adapter = WebhookSms::new(webhook_config(&gateway)).unwrap();
    let errors = check_status_mapping(&gateway, &adapter).await;
    // The receiver's body is never quoted: it could echo the code.
    assert!(!errors[3].contains("21211"), "{}", errors[3]);
    let mail = Message::Email(Mail {
        to: "a@example.com".into(),
        subject: "s".into(),
        text: "t".into(),
    });
    assert!(matches!(
        adapter.deliver(Uuid::now_v7(), &mail).await,
        Err(DeliveryError::Permanent(_))
    ));
}

#[tokio::test]
async fn a_gateway_that_never_answers_times_out_as_temporary() {
    init();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let adapter = WebhookSms::new(WebhookConfig {
        url,
        secret: SECRET.to_owned().into(),
        headers: Default::default(),
        timeout_secs: 1,
    })
    .unwrap();
    match adapter.deliver(Uuid::now_v7(), &sms()).await {
        Err(DeliveryError::Temporary(e)) => assert!(e.contains("no answer in time"), "{e}"),
        other => panic!("{other:?}"),
    }
    hold.abort();
}
