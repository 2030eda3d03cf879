//! Use cases. Each file adds the methods of one concern to [`Core`]; handlers call these and
//! nothing else.

mod account;
mod admin;
mod api_keys;
mod attempts;
mod code_factors;
mod code_use_cases;
mod codes;
mod console;
mod devices;
mod email_change;
mod enrollment;
mod forward_auth;
mod health;
mod keys;
mod login;
mod oidc;
mod oidc_clients;
mod oidc_tokens;
mod outbox;
mod passkey_login;
mod permissions;
mod policy;
mod recovery;
mod second_step;
mod sessions;
mod signup;
mod trusted_browsers;
mod verification_api;
mod webauthn;
mod webauthn_api;

pub use code_factors::{CodePurpose, SentCode};
pub use code_use_cases::{CodeFactorView, SecondStepStatus};
pub use codes::CodeUse;
use codes::{Checked, OnSuccess};
pub use console::{AccountDossier, OperatorAction};
pub use enrollment::{FactorView, PendingTotp};
pub use forward_auth::{ForwardAuth, NextStep};
pub use login::LoginOutcome;
pub use oidc::{Authorize, Logout, LogoutParams};
pub use oidc_clients::NewClient;
pub use oidc_tokens::{ClientCredentials, OAuthError, TokenRequest, TokenResponse};
pub use outbox::DeliveryReport;
pub use permissions::{Grant, Permission};
pub use policy::{GraceNotice, PolicySource};
pub use sessions::SessionContext;
pub use verification_api::{ApiCaller, VerifyResult};
pub use webauthn::{CeremonyStart, KeyKind};

use crate::clock::Clock;
use crate::keys::Keyring;
use crate::mail::Branding;
use crate::model::{AccountId, AuditEvent, NewOutboxItem, RequestMeta};
use crate::password::PasswordHasher;
use crate::ports::{Mail, Store};
use crate::random::{Random, random_bytes};
use crate::throttle::Budget;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::sync::Arc;
use time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct CoreSettings {
    /// Where users reach Twofold, without a trailing slash; links in mail start with it.
    pub public_url: String,
    pub product_name: String,
    pub session_idle_timeout: Duration,
    pub session_lifetime: Duration,
    pub verify_email_ttl: Duration,
    pub password_reset_ttl: Duration,
    pub login_budget_account: Budget,
    pub login_budget_ip: Budget,
    /// Wrong second-factor codes per account or subject, across sessions.
    pub second_factor_budget: Budget,
    /// Wrong codes one partial session may take before it is void.
    pub partial_session_attempts: u32,
    /// How long the second step may take after the password.
    pub partial_session_ttl: Duration,
    /// TOTP steps accepted either side of the current one.
    pub totp_window: u32,
    /// How long an unconfirmed authenticator stays pending.
    pub pending_factor_ttl: Duration,
    /// How recent a second factor must be for sensitive changes.
    pub step_up_window: Duration,
    /// Codes sent by SMS and email.
    pub codes: crate::factor::otp_code::CodeSettings,
    /// Quotas against SMS pumping, and the daily SMS budget.
    pub send_quotas: crate::factor::otp_code::SendQuotas,
    /// WebAuthn relying party id and origins (default: from `public_url`).
    pub relying_party: crate::factor::webauthn::RelyingParty,
    /// How long a WebAuthn ceremony may take.
    pub webauthn_ceremony_ttl: Duration,
    /// How long "remember this browser" lasts (fixed); `None` turns the option off.
    pub trusted_browser_ttl: Option<Duration>,
    /// The configured 2FA policy; one stored by an operator (`twofold policy set`) wins.
    pub policy: crate::policy::Policy,
    /// New-device and new-network verification, and new-device mails.
    pub devices: crate::device::DeviceSettings,
    /// What requests checked by a reverse proxy (forward-auth) need, per host and path.
    pub forward_auth: crate::assurance::ForwardAuthRules,
    /// The OpenID Connect provider's lifetimes.
    pub oidc: crate::oidc::OidcSettings,
}

impl Default for CoreSettings {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            product_name: "Twofold".into(),
            session_idle_timeout: Duration::hours(24),
            session_lifetime: Duration::days(14),
            verify_email_ttl: Duration::hours(2),
            password_reset_ttl: Duration::hours(1),
            login_budget_account: Budget::login_per_account(),
            login_budget_ip: Budget::login_per_ip(),
            second_factor_budget: Budget::second_factor(),
            partial_session_attempts: 5,
            partial_session_ttl: Duration::minutes(10),
            totp_window: 1,
            pending_factor_ttl: Duration::minutes(15),
            step_up_window: Duration::minutes(5),
            codes: Default::default(),
            send_quotas: Default::default(),
            relying_party: Default::default(),
            webauthn_ceremony_ttl: Duration::minutes(5),
            trusted_browser_ttl: Some(Duration::days(30)),
            policy: Default::default(),
            devices: Default::default(),
            forward_auth: Default::default(),
            oidc: Default::default(),
        }
    }
}

/// The core services, with everything they depend on injected.
pub struct Core {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    keys: std::sync::RwLock<Arc<Keyring>>,
    /// Re-reads the key file when sealed data names a key this node has not loaded yet.
    key_source: Option<KeySource>,
    hasher: Arc<PasswordHasher>,
    settings: CoreSettings,
    outbox_wakeup: Arc<Notify>,
    /// Recently authenticated API keys, so a busy app's key is not looked up on every call.
    api_keys: api_keys::ApiKeyCache,
    /// The WebAuthn relying party, built on first use from the settings.
    relying_party: std::sync::OnceLock<Result<Arc<webauthn_rs::Webauthn>, String>>,
    /// (tenant, external id) → subject id; subjects never change once created.
    subjects: std::sync::Mutex<std::collections::HashMap<(Uuid, String), Uuid>>,
    /// Reminder stages (deadline, days before) this node has finished sending.
    reminders_done: std::sync::Mutex<std::collections::HashSet<(i64, i64)>>,
    /// Where addresses are, when the operator configured a GeoIP database.
    geoip: Option<crate::geo::GeoIp>,
    /// When this node last proved that the database commits a write.
    heartbeat: health::Heartbeat,
    /// Attempt keys the database refused a moment ago.
    refused_keys: attempts::RefusedKeys,
}

pub type KeySource = Arc<dyn Fn() -> Result<Keyring, String> + Send + Sync>;

impl Core {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
        keys: Arc<Keyring>,
        hasher: Arc<PasswordHasher>,
        settings: CoreSettings,
    ) -> Self {
        Self {
            store,
            clock,
            random,
            keys: std::sync::RwLock::new(keys),
            key_source: None,
            hasher,
            settings,
            outbox_wakeup: Arc::new(Notify::new()),
            api_keys: Default::default(),
            subjects: std::sync::Mutex::new(std::collections::HashMap::new()),
            relying_party: std::sync::OnceLock::new(),
            reminders_done: Default::default(),
            geoip: None,
            heartbeat: Default::default(),
            refused_keys: Default::default(),
        }
    }

    /// Names the approximate place of addresses in new-device mails.
    pub fn with_geoip(mut self, geoip: crate::geo::GeoIp) -> Self {
        self.geoip = Some(geoip);
        self
    }

    /// Lets this node pick up keys added while it runs (`twofold keys rotate`).
    pub fn with_key_source(mut self, source: KeySource) -> Self {
        self.key_source = Some(source);
        self
    }

    fn keyring(&self) -> Arc<Keyring> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Opens sealed data. A key id this node has not loaded yet means another process added
    /// a key: the key file is read again, once, before giving up.
    pub(super) fn open_sealed(
        &self,
        context: &[u8],
        sealed: &crate::keys::Sealed,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::keys::KeyError> {
        match self.keyring().open(context, sealed) {
            Err(crate::keys::KeyError::UnknownKey(id)) => {
                let Some(source) = &self.key_source else {
                    return Err(crate::keys::KeyError::UnknownKey(id));
                };
                let ring = source().map_err(|e| {
                    tracing::error!(error = %e, "cannot reload the key file");
                    crate::keys::KeyError::UnknownKey(id)
                })?;
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
                self.keyring().open(context, sealed)
            }
            other => other,
        }
    }

    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Woken whenever a message is queued, so the delivery worker need not poll tightly.
    pub fn outbox_wakeup(&self) -> Arc<Notify> {
        self.outbox_wakeup.clone()
    }

    /// A tag binding a CSRF cookie to the forms that carry it (signed double submit).
    pub fn csrf_tag(&self, cookie_secret: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.keyring().token_hash("csrf", cookie_secret.as_bytes()))
    }

    /// Constant-time check of a submitted CSRF tag.
    pub fn csrf_tag_matches(&self, cookie_secret: &str, submitted: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.csrf_tag(cookie_secret);
        expected.len() == submitted.len()
            && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
    }

    pub fn new_secret(&self) -> secrecy::SecretString {
        crate::token::new_token(self.random.as_ref())
    }

    fn new_id(&self) -> Uuid {
        let now = self.clock.now();
        let millis = (now.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
        let rand: [u8; 10] = random_bytes(self.random.as_ref());
        uuid::Builder::from_unix_timestamp_millis(millis, &rand).into_uuid()
    }

    fn new_stamp(&self) -> String {
        URL_SAFE_NO_PAD.encode(random_bytes::<16>(self.random.as_ref()))
    }

    fn branding(&self) -> Branding<'_> {
        Branding {
            product: &self.settings.product_name,
            public_url: &self.settings.public_url,
        }
    }

    fn audit(
        &self,
        event: &'static str,
        account_id: Option<AccountId>,
        meta: &RequestMeta,
        detail: serde_json::Value,
    ) -> AuditEvent {
        // Every security event is counted by name (logins, lockouts, enrollments, deliveries
        // …): the audit log's shape, without its personal data.
        metrics::counter!("twofold_events_total", "event" => event).increment(1);
        if event == "factor_added"
            && let Some(method) = detail["type"].as_str()
        {
            metrics::counter!("twofold_enrollments_total", "method" => method.to_owned())
                .increment(1);
        }
        AuditEvent {
            id: self.new_id(),
            at: self.clock.now(),
            account_id,
            event,
            ip: meta.ip_string(),
            user_agent: meta.user_agent_trimmed(),
            detail,
        }
    }

    /// Seals a mail for the outbox; the item id is bound in as associated data.
    fn outbox_item(
        &self,
        kind: &'static str,
        mail: &Mail,
    ) -> Result<NewOutboxItem, crate::CoreError> {
        self.outbox_message(kind, &crate::ports::Message::Email(mail.clone()), None)
    }

    /// Seals any message for the outbox. A message with `give_up_at` (a one-time code) is
    /// dropped rather than sent once that time has passed.
    fn outbox_message(
        &self,
        kind: &'static str,
        message: &crate::ports::Message,
        give_up_at: Option<time::OffsetDateTime>,
    ) -> Result<NewOutboxItem, crate::CoreError> {
        let id = self.new_id();
        let json = serde_json::to_vec(message)
            .map_err(|e| crate::CoreError::Internal(format!("encode message: {e}")))?;
        let sealed = self
            .keyring()
            .seal(self.random.as_ref(), id.as_bytes(), &json);
        Ok(NewOutboxItem {
            id,
            kind,
            key_id: sealed.key_id,
            payload: sealed.blob,
            created_at: self.clock.now(),
            give_up_at,
        })
    }

    fn hash_token(&self, purpose: crate::token::TokenPurpose, token: &[u8]) -> Vec<u8> {
        self.keyring().token_hash(purpose.as_str(), token)
    }
}
