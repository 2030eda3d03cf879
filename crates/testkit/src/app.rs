use crate::db::TestDb;
use crate::sms_gateway::SmsGateway;
use crate::smtp::SmtpSink;
use std::net::SocketAddr;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use twofold_core::keys::Keyring;
use twofold_core::password::{HashParams, PasswordHasher};
use twofold_core::random::OsRandom;
use twofold_core::{Clock, Core, CoreSettings, FakeClock};
use twofold_delivery::{
    Deliveries, SmtpConfig, SmtpMailer, SmtpSecurity, TwilioConfig, TwilioSms, run_outbox_worker,
};

/// The Twilio credentials the test app uses against its stand-in gateway.
pub const TEST_TWILIO_SID: &str = "ACtest00000000000000000000000000000";
pub const TEST_TWILIO_TOKEN: &str = "test-auth-token";
use twofold_store::SqlStore;
use twofold_web::{AppState, Branding, WebSettings};

/// The app running on a random port with its own database, SMTP sink and fake clock.
pub struct TestApp {
    pub url: String,
    pub core: Arc<Core>,
    pub clock: Arc<FakeClock>,
    pub smtp: SmtpSink,
    /// Stands in for Twilio: every text message the app sends arrives here.
    pub sms: SmsGateway,
    pub store: SqlStore,
    pub db: TestDb,
    /// The data-keys file this node opened: every node of one database needs the same.
    keys: String,
    shutdown: CancellationToken,
}

/// Another node of a [`TestApp`]: its own store connections, core and listener on the same
/// database, with the same keys and clock.
pub struct Node {
    pub url: String,
    pub core: Arc<Core>,
    shutdown: CancellationToken,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app(db: TestDb) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

/// As [`spawn_app`], with settings changed by `configure` first.
pub async fn spawn_app_with(db: TestDb, configure: impl FnOnce(&mut CoreSettings)) -> TestApp {
    spawn_app_configured(db, configure, |_| {}).await
}

/// As [`spawn_app_with`], with the web settings changed by `configure_web` too.
pub async fn spawn_app_configured(
    db: TestDb,
    configure: impl FnOnce(&mut CoreSettings),
    configure_web: impl FnOnce(&mut WebSettings),
) -> TestApp {
    twofold_web::install_metrics();
    // reqwest is built without a default TLS provider (the binary picks ring at start-up).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = db.store().await;
    let smtp = SmtpSink::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
    let addr = listener.local_addr().expect("addr");
    let url = format!("http://{addr}");
    let clock = Arc::new(FakeClock::new(OffsetDateTime::now_utc()));
    let keys_file = Keyring::generate_file(&OsRandom);
    let core = test_core(&store, &clock, &keys_file, &url, configure);
    let mailer = SmtpMailer::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port: smtp.port(),
        security: SmtpSecurity::None,
        username: None,
        password: None,
        from: "Twofold <no-reply@twofold.test>".into(),
        timeout_secs: 5,
    })
    .expect("mailer");
    let shutdown = CancellationToken::new();
    let sms = SmsGateway::start().await;
    let twilio = TwilioSms::new(TwilioConfig {
        account_sid: TEST_TWILIO_SID.into(),
        auth_token: TEST_TWILIO_TOKEN.to_owned().into(),
        from: Some("+15005550006".into()),
        messaging_service_sid: None,
        base_url: sms.url(),
        timeout_secs: 5,
    })
    .expect("twilio adapter");
    let delivery = Deliveries {
        email: Arc::new(mailer),
        sms: Arc::new(twilio),
    };
    tokio::spawn(run_outbox_worker(
        core.clone(),
        Arc::new(delivery),
        shutdown.clone(),
    ));
    serve(listener, &core, &url, configure_web, &shutdown);
    TestApp {
        url,
        core,
        clock,
        smtp,
        sms,
        store,
        db,
        keys: keys_file.to_string(),
        shutdown,
    }
}

/// A core on `store` as the tests run it, with `configure`'s settings.
fn test_core(
    store: &SqlStore,
    clock: &Arc<FakeClock>,
    keys_file: &str,
    url: &str,
    configure: impl FnOnce(&mut CoreSettings),
) -> Arc<Core> {
    let keys = Keyring::parse(keys_file).expect("keys");
    // Light Argon2 parameters keep the suite fast; production defaults are tested in the core.
    let hasher = PasswordHasher::new(
        HashParams {
            m_cost_kib: 256,
            t_cost: 1,
            p_cost: 1,
        },
        2,
        64,
    )
    .expect("hasher");
    let mut settings = CoreSettings {
        public_url: url.to_owned(),
        // Every test client is a new browser; the tests of known devices turn this back on.
        devices: twofold_core::device::DeviceSettings {
            verify: false,
            notify: false,
            ..Default::default()
        },
        ..CoreSettings::default()
    };
    configure(&mut settings);
    let geoip = settings.devices.geoip_database.as_ref().map(|path| {
        twofold_core::geo::GeoIp::from_bytes(std::fs::read(path).expect("geoip file"))
            .expect("geoip database")
    });
    let core = Core::new(
        Arc::new(store.clone()),
        clock.clone(),
        Arc::new(OsRandom),
        Arc::new(keys),
        Arc::new(hasher),
        settings,
    );
    Arc::new(match geoip {
        Some(g) => core.with_geoip(g),
        None => core,
    })
}

/// Serves `core` on `listener` until `shutdown`.
fn serve(
    listener: TcpListener,
    core: &Arc<Core>,
    url: &str,
    configure_web: impl FnOnce(&mut WebSettings),
    shutdown: &CancellationToken,
) {
    let mut web = WebSettings {
        public_url: url.to_owned(),
        // Tests play clients on other networks with X-Forwarded-For from loopback.
        trusted_proxies: vec!["127.0.0.0/8".parse().expect("loopback net")],
        templates_dir: None,
        cookie_domain: None,
        metrics_token: None,
        request_timeout: std::time::Duration::from_secs(30),
        branding: Branding::default(),
    };
    configure_web(&mut web);
    let state = AppState::new(core.clone(), web).expect("state");
    let app = twofold_web::router(state);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    });
}

impl TestApp {
    /// A second node on this app's database (its own connections, core and port), with the
    /// same keys, clock and `configure`d settings. Its public URL is this app's, as behind one
    /// load balancer.
    pub async fn second_node(&self, configure: impl FnOnce(&mut CoreSettings)) -> Node {
        let store = self.db.store().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind node");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let core = test_core(&store, &self.clock, &self.keys, &self.url, configure);
        let shutdown = CancellationToken::new();
        serve(listener, &core, &self.url, |_| {}, &shutdown);
        Node {
            url,
            core,
            shutdown,
        }
    }

    /// A fresh browser-like client with its own cookie jar.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// The body of `GET path` with `client`, whatever the status.
    pub async fn get_text(&self, client: &reqwest::Client, path: &str) -> String {
        client
            .get(self.at(path))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body")
    }

    /// The JSON body of `GET /api/v1/subjects{path}` with the API key `key`.
    pub async fn api_get(&self, key: &str, path: &str) -> serde_json::Value {
        reqwest::Client::new()
            .get(self.at(&format!("/api/v1/subjects{path}")))
            .bearer_auth(key)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON body")
    }

    /// Polls `api_get(key, path)` until `check` holds (15 s at most): deliveries finish after
    /// the SMTP server or SMS gateway has the message, so their status trails what the sinks see.
    pub async fn api_get_until(
        &self,
        key: &str,
        path: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        for _ in 0..300 {
            let v = self.api_get(key, path).await;
            if check(&v) {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{path} never matched: {}", self.api_get(key, path).await);
    }

    /// Signs up and verifies an account through the API; returns nothing, panics on failure.
    pub async fn verified_account(&self, email: &str, password: &str) {
        let c = self.client();
        let before = self.smtp.count_to(email);
        let r = c
            .post(self.at("/api/v1/signup"))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("signup");
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
        let mail = self.smtp.wait_for(email, before).await;
        let token = mail.token("/verify-email").expect("verification link");
        let r = c
            .post(self.at("/api/v1/email-verification"))
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await
            .expect("verify");
        assert_eq!(r.status(), 200);
    }

    /// The password step through the API, which must answer 200: its JSON (`status` …).
    pub async fn log_in_json(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> serde_json::Value {
        let r = self.log_in(client, email, password).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        r.json().await.expect("login json")
    }

    /// Signs `client` out through the API.
    pub async fn log_out(&self, client: &reqwest::Client) {
        client
            .delete(self.at("/api/v1/session"))
            .send()
            .await
            .expect("logout request");
    }

    /// Signs `client` in through the API.
    pub async fn log_in(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        client
            .post(self.at("/api/v1/session"))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("login request")
    }
}

impl TestApp {
    /// Adds an authenticator through Security settings, as a person does, with codes from
    /// `oathtool`. Returns the secret (base32) and the backup codes shown.
    pub async fn enroll_totp(
        &self,
        client: &reqwest::Client,
        label: &str,
    ) -> (String, Option<Vec<String>>) {
        let page = client
            .get(self.at("/account/security"))
            .send()
            .await
            .expect("security page");
        assert_eq!(page.status(), 200, "security settings need a full session");
        let csrf = crate::totp::csrf_of(&page.text().await.expect("html"));
        let r = client
            .post(self.at("/account/security/totp"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .expect("begin");
        assert_eq!(r.status(), 303);
        let location = r
            .headers()
            .get("location")
            .expect("location")
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            location.starts_with("/account/security/totp/"),
            "expected the enrolment page, got {location}"
        );
        let html = client
            .get(self.at(&location))
            .send()
            .await
            .expect("enrol page")
            .text()
            .await
            .expect("html");
        let secret = crate::totp::text_of_id(&html, "secret")
            .expect("secret on the page")
            .replace(' ', "");
        let code = crate::totp::oathtool_code(&secret, self.clock.now());
        let r = client
            .post(self.at(&format!("{location}/confirm")))
            .form(&[
                ("csrf", csrf.as_str()),
                ("code", code.as_str()),
                ("label", label),
            ])
            .send()
            .await
            .expect("confirm");
        match r.status().as_u16() {
            200 => {
                let html = r.text().await.expect("html");
                assert!(html.contains("Your backup codes"), "{html}");
                (secret, Some(crate::totp::backup_codes_of(&html)))
            }
            303 => (secret, None),
            other => panic!(
                "confirm failed with {other}: {}",
                r.text().await.unwrap_or_default()
            ),
        }
    }

    /// Posts a second-step code through the API.
    pub async fn second_factor(&self, client: &reqwest::Client, code: &str) -> reqwest::Response {
        client
            .post(self.at("/api/v1/session/second-factor"))
            .json(&serde_json::json!({ "code": code }))
            .send()
            .await
            .expect("second factor request")
    }

    /// The current code of `secret` at the app's (fake) time, from `oathtool`.
    pub fn code_now(&self, secret: &str) -> String {
        crate::totp::oathtool_code(secret, self.clock.now())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
