//! The `[sms]` section: its TOML shape, the checks made before anything is sent, and that
//! secrets never show in `Debug`.

use serde::Deserialize;
use twofold_delivery::{
    SmsAdapter, SmsConfig, SmsConfigError, TwilioConfig, TwilioSms, WebhookConfig, WebhookSms,
    build_sms,
};

const TOKEN: &str = "twilio-auth-token-value";
const SECRET: &str = "webhook-secret-0123456789";
const API_KEY: &str = "receiver-api-key-value";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    sms: SmsConfig,
}

const TWILIO_TOML: &str = r#"
[sms]
adapter = "twilio"
[sms.twilio]
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "twilio-auth-token-value"
from = "+15005550006"
"#;

const WEBHOOK_TOML: &str = r#"
[sms]
adapter = "webhook"
[sms.webhook]
url = "https://sms.example.com/send?token=query-token-value"
secret = "webhook-secret-0123456789"
headers = { "X-Api-Key" = "receiver-api-key-value" }
"#;

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn twilio() -> TwilioConfig {
    toml::from_str::<File>(TWILIO_TOML)
        .unwrap()
        .sms
        .twilio
        .unwrap()
}

fn invalid_key(e: SmsConfigError) -> &'static str {
    match e {
        SmsConfigError::Invalid { key, .. } => key,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn toml_shapes_parse_with_defaults() {
    init();
    let config = toml::from_str::<File>(TWILIO_TOML).unwrap().sms;
    assert_eq!(config.adapter, SmsAdapter::Twilio);
    let t = config.twilio.as_ref().unwrap();
    assert_eq!(t.base_url, "https://api.twilio.com");
    assert_eq!(t.timeout_secs, 10);
    assert_eq!(t.messaging_service_sid, None);
    build_sms(&config).unwrap();

    let config = toml::from_str::<File>(WEBHOOK_TOML).unwrap().sms;
    assert_eq!(config.adapter, SmsAdapter::Webhook);
    let w = config.webhook.as_ref().unwrap();
    assert_eq!(
        w.headers.get("X-Api-Key").map(String::as_str),
        Some(API_KEY)
    );
    assert_eq!(w.timeout_secs, 10);
    build_sms(&config).unwrap();

    // The default, and an empty section, are the development log.
    assert_eq!(SmsConfig::default().adapter, SmsAdapter::Log);
    let config = toml::from_str::<File>("[sms]\n").unwrap().sms;
    assert_eq!(config.adapter, SmsAdapter::Log);
    build_sms(&config).unwrap();

    // Typos are errors, not silent defaults.
    for bad in [
        "[sms]\nadapter = \"carrier-pigeon\"",
        "[sms]\nadapter = \"log\"\ntypo = 1",
        &format!("{TWILIO_TOML}auth_tokn = \"x\"\n"),
    ] {
        assert!(toml::from_str::<File>(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_config_crate_reads_the_same_shape() {
    init();
    let file: File = config::Config::builder()
        .add_source(config::File::from_str(
            WEBHOOK_TOML,
            config::FileFormat::Toml,
        ))
        .build()
        .unwrap()
        .try_deserialize()
        .unwrap();
    let w = file.sms.webhook.as_ref().unwrap();
    // Header names are case-insensitive on the wire, whatever the loader does to keys.
    assert!(
        w.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("x-api-key") && v == API_KEY)
    );
    build_sms(&file.sms).unwrap();
}

#[test]
fn the_chosen_adapter_needs_its_section() {
    for (adapter, name) in [
        (SmsAdapter::Twilio, "twilio"),
        (SmsAdapter::Webhook, "webhook"),
    ] {
        let config = SmsConfig {
            adapter,
            ..SmsConfig::default()
        };
        let e = build_sms(&config).err().unwrap();
        assert_eq!(e, SmsConfigError::MissingSection(name));
        assert!(e.to_string().contains(&format!("[sms.{name}]")), "{e}");
    }
}

#[test]
fn twilio_settings_are_checked() {
    init();
    let neither = TwilioConfig {
        from: None,
        ..twilio()
    };
    let e = TwilioSms::new(neither).err().unwrap();
    assert_eq!(invalid_key(e.clone()), "twilio");
    assert!(e.to_string().contains("messaging_service_sid"), "{e}");
    let blank = TwilioConfig {
        from: Some("  ".into()),
        ..twilio()
    };
    assert_eq!(invalid_key(TwilioSms::new(blank).err().unwrap()), "twilio");
    let both = TwilioConfig {
        messaging_service_sid: Some("MG0123".into()),
        ..twilio()
    };
    let e = TwilioSms::new(both).err().unwrap();
    assert!(e.to_string().contains("not both"), "{e}");

    let cases = [
        (
            "twilio.account_sid",
            TwilioConfig {
                account_sid: "AC1/../x".into(),
                ..twilio()
            },
        ),
        (
            "twilio.auth_token",
            TwilioConfig {
                auth_token: String::new().into(),
                ..twilio()
            },
        ),
        (
            "twilio.base_url",
            TwilioConfig {
                base_url: "ftp://api.twilio.com".into(),
                ..twilio()
            },
        ),
        (
            "twilio.base_url",
            TwilioConfig {
                base_url: "not a url".into(),
                ..twilio()
            },
        ),
        (
            "twilio.timeout_secs",
            TwilioConfig {
                timeout_secs: 0,
                ..twilio()
            },
        ),
    ];
    for (key, config) in cases {
        assert_eq!(invalid_key(TwilioSms::new(config).err().unwrap()), key);
    }
    TwilioSms::new(twilio()).unwrap();
}

#[test]
fn webhook_settings_are_checked() {
    init();
    let good = || {
        toml::from_str::<File>(WEBHOOK_TOML)
            .unwrap()
            .sms
            .webhook
            .unwrap()
    };
    let header = |name: &str| WebhookConfig {
        headers: [(name.to_owned(), "v".to_owned())].into(),
        ..good()
    };
    let cases = [
        (
            "webhook.url",
            WebhookConfig {
                url: "ftp://example.com".into(),
                ..good()
            },
        ),
        (
            "webhook.secret",
            WebhookConfig {
                secret: "short".to_owned().into(),
                ..good()
            },
        ),
        ("webhook.headers", header("X-Twofold-Signature")),
        ("webhook.headers", header("content-type")),
        ("webhook.headers", header("bad header")),
        (
            "webhook.timeout_secs",
            WebhookConfig {
                timeout_secs: 1000,
                ..good()
            },
        ),
    ];
    for (key, config) in cases {
        assert_eq!(invalid_key(WebhookSms::new(config).err().unwrap()), key);
    }
    WebhookSms::new(good()).unwrap();
}

#[test]
fn debug_never_shows_secrets() {
    init();
    let twilio = toml::from_str::<File>(TWILIO_TOML).unwrap().sms;
    let webhook = toml::from_str::<File>(WEBHOOK_TOML).unwrap().sms;
    let printed = [
        format!("{twilio:?}"),
        format!("{webhook:?}"),
        format!(
            "{:?}",
            TwilioSms::new(twilio.twilio.clone().unwrap()).unwrap()
        ),
        format!(
            "{:?}",
            WebhookSms::new(webhook.webhook.clone().unwrap()).unwrap()
        ),
    ];
    for p in &printed {
        for secret in [TOKEN, SECRET, API_KEY, "query-token-value"] {
            assert!(!p.contains(secret), "{secret} in {p}");
        }
    }
    assert!(printed[0].contains("AC0123456789abcdef0123456789abcdef"));
    assert!(
        printed[1].contains("X-Api-Key"),
        "header names stay visible"
    );
}
