//! The records the core reads and writes through the store ports.

use std::net::IpAddr;
use time::OffsetDateTime;
use uuid::Uuid;

pub type AccountId = Uuid;
pub type SessionId = Uuid;

#[derive(Clone)]
pub struct Account {
    pub id: AccountId,
    pub email: String,
    /// A PHC string (`$argon2id$v=19$m=…`): never shown, never logged.
    pub password_hash: String,
    pub email_verified_at: Option<OffsetDateTime>,
    pub security_stamp: String,
    pub created_at: OffsetDateTime,
    /// Created while the policy covered new accounts: 2FA is required from the first sign-in.
    pub two_factor_required: bool,
    /// A sign-in from an IP network this account has not used needs an emailed code (an
    /// operator can turn this off for one account).
    pub ip_verification: bool,
    /// Runs the installation; the policy may hold operators to phishing-resistant sign-in.
    pub operator: bool,
    /// Locked by an operator: no sign-in (answered like a wrong password) until unlocked.
    pub locked_at: Option<OffsetDateTime>,
}

/// Password hashes stay out of debug output (and so out of any log line).
macro_rules! debug_without_password_hash {
    ($t:ty) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("id", &self.id)
                    .field("email", &self.email)
                    .field("email_verified_at", &self.email_verified_at)
                    .field("created_at", &self.created_at)
                    .finish_non_exhaustive()
            }
        }
    };
}

debug_without_password_hash!(Account);
debug_without_password_hash!(NewAccount);

impl Account {
    pub fn is_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }

    pub fn is_locked(&self) -> bool {
        self.locked_at.is_some()
    }
}

/// What the audit-log viewer looks for.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub account: Option<AccountId>,
    pub event: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// Older than this event (the next page).
    pub before: Option<(OffsetDateTime, Uuid)>,
}

#[derive(Clone)]
pub struct NewAccount {
    pub id: AccountId,
    pub email: String,
    pub password_hash: String,
    pub email_verified_at: Option<OffsetDateTime>,
    pub security_stamp: String,
    pub created_at: OffsetDateTime,
    pub two_factor_required: bool,
}

/// Whether a session is signed in, or has only passed the password and waits for a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Full,
    /// Password done, a second factor pending: reaches only the second step.
    Partial,
    /// Password done, but the policy requires 2FA the account lacks: reaches only the pages
    /// that add a factor.
    Enrollment,
    /// Password done from an unknown browser or network: reaches only the page that takes
    /// the code sent by email.
    Device,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Partial => "partial",
            Self::Enrollment => "enrollment",
            Self::Device => "device",
        }
    }

    pub fn parse(s: &str) -> Self {
        // Anything unknown is the most restricted kind.
        match s {
            "full" => Self::Full,
            "enrollment" => Self::Enrollment,
            "device" => Self::Device,
            _ => Self::Partial,
        }
    }
}

/// A signed-in browser. Only the keyed hash of its token is stored.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: SessionId,
    pub account_id: AccountId,
    pub kind: SessionKind,
    /// Wrong second-factor codes entered in this (partial) session.
    pub factor_failures: u32,
    /// When a second factor was last proven in this session (for step-up).
    pub step_up_at: Option<OffsetDateTime>,
    /// Authentication methods used, as RFC 8176 `amr` values.
    pub amr: Vec<String>,
    pub auth_time: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub security_stamp: String,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub session: Session,
    pub token_hash: Vec<u8>,
}

/// A single-use, expiring link token (email verification, password reset).
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: Uuid,
    pub account_id: AccountId,
    pub purpose: &'static str,
    pub token_hash: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub account_id: AccountId,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

/// A requested change of an account's address, waiting for the link sent to `new_email`.
#[derive(Debug, Clone)]
pub struct EmailChange {
    pub id: Uuid,
    pub account_id: AccountId,
    pub new_email: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// How confirming an address change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailChangeOutcome {
    Changed,
    /// Used, expired or unknown link.
    Invalid,
    /// Another account has the address by now; nothing changed and the link still works.
    Taken,
}

/// An outgoing message, sealed at rest because its links are bearer secrets.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: Uuid,
    pub kind: String,
    pub key_id: String,
    pub payload: Vec<u8>,
    pub attempts: u32,
    pub created_at: OffsetDateTime,
    pub give_up_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct NewOutboxItem {
    pub id: Uuid,
    pub kind: &'static str,
    pub key_id: String,
    pub payload: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub give_up_at: Option<OffsetDateTime>,
}

/// One security event. `detail` never holds a secret.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub id: Uuid,
    pub at: OffsetDateTime,
    pub account_id: Option<AccountId>,
    pub event: &'static str,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: Uuid,
    pub at: OffsetDateTime,
    pub account_id: Option<AccountId>,
    pub event: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: serde_json::Value,
}

/// Where a request came from, as far as the web layer could tell.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl RequestMeta {
    pub fn ip_string(&self) -> Option<String> {
        self.ip.map(|ip| ip.to_string())
    }

    /// User agents are attacker-controlled: keep a bounded prefix only.
    pub fn user_agent_trimmed(&self) -> Option<String> {
        self.user_agent
            .as_deref()
            .map(|ua| ua.chars().take(400).collect())
    }
}

/// Who a factor belongs to: a hosted account, or a subject of the verification API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    Account(AccountId),
    Subject(Uuid),
}

impl Owner {
    /// What a subject's key is its id prefixed with.
    pub const SUBJECT_PREFIX: &'static str = "subject:";

    pub fn key(&self) -> String {
        match self {
            Self::Account(id) => format!("account:{id}"),
            Self::Subject(id) => format!("{}{id}", Self::SUBJECT_PREFIX),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorStatus {
    Pending,
    Active,
}

impl FactorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
        }
    }
}

/// A registered second factor (today: `totp`). The secret is sealed; `key_id` names the key.
#[derive(Debug, Clone)]
pub struct Factor {
    pub id: Uuid,
    pub owner: String,
    pub kind: String,
    pub label: String,
    pub status: FactorStatus,
    pub key_id: String,
    pub secret: Vec<u8>,
    pub params: crate::factor::totp::TotpParams,
    pub last_step: i64,
    pub last_drift: i64,
    pub drift_matches: i64,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub confirmed_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    /// Masked destination of an `sms` or `email` factor (`+1 ••• ••• 8318`).
    pub hint: Option<String>,
}

/// A one-time code sent by SMS or email, waiting to be typed (or, by email, its link clicked).
#[derive(Debug, Clone)]
pub struct NewCodeChallenge {
    pub id: Uuid,
    pub owner: String,
    pub factor_id: Uuid,
    /// `confirm` (activating a pending factor), `login`, `step_up` or `verify` (API).
    pub purpose: &'static str,
    /// The hosted session that asked for it; only that session may use it.
    pub session_id: Option<SessionId>,
    pub channel: crate::ports::Channel,
    pub code_hash: Vec<u8>,
    pub link_hash: Option<Vec<u8>>,
    pub message_id: Uuid,
    pub idempotency_key: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct CodeChallenge {
    pub id: Uuid,
    pub owner: String,
    pub factor_id: Uuid,
    pub purpose: String,
    pub session_id: Option<SessionId>,
    pub channel: String,
    pub message_id: Uuid,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub attempts: u32,
    pub approved_at: Option<OffsetDateTime>,
    pub used_at: Option<OffsetDateTime>,
    pub voided_at: Option<OffsetDateTime>,
}

impl CodeChallenge {
    /// `used`, `replaced` (a newer code voided it), `expired`, `locked` (too many wrong tries)
    /// or `pending`.
    pub fn status(&self, now: OffsetDateTime, max_attempts: u32) -> &'static str {
        if self.used_at.is_some() {
            "used"
        } else if self.voided_at.is_some() {
            "replaced"
        } else if self.expires_at <= now {
            "expired"
        } else if self.attempts >= max_attempts {
            "locked"
        } else {
            "pending"
        }
    }
}

/// One fixed-window send counter to take a unit from.
#[derive(Debug, Clone)]
pub struct QuotaCheck {
    pub key: String,
    pub window_start: OffsetDateTime,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub enum ChallengeStart {
    Started,
    /// The idempotency key was seen before: that challenge, nothing sent.
    Existing(Box<CodeChallenge>),
    /// The factor had a code less than the cooldown ago (or is not there).
    Cooldown,
    /// `QuotaCheck` number `index` is spent; nothing was counted or sent.
    QuotaExceeded {
        index: usize,
    },
}

/// A WebAuthn credential (security key or passkey) behind a `webauthn` factor.
#[derive(Debug, Clone)]
pub struct WebauthnCredential {
    pub factor_id: Uuid,
    pub owner: String,
    pub credential_id: Vec<u8>,
    /// webauthn-rs `Passkey`, JSON.
    pub passkey: String,
    pub counter: u32,
    pub discoverable: bool,
    pub aaguid: Option<Uuid>,
    pub suspicious_at: Option<OffsetDateTime>,
}

/// The server's half of a WebAuthn ceremony: single use, short-lived, bound to its owner or
/// session.
#[derive(Debug, Clone)]
pub struct WebauthnCeremony {
    pub id: Uuid,
    pub owner: Option<String>,
    pub session_id: Option<SessionId>,
    /// `register`, `authenticate` (second factor) or `passkey` (sign-in without a password).
    pub kind: &'static str,
    /// webauthn-rs registration or authentication state, JSON.
    pub state: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// A browser remembered at the second step ("remember this browser"): it skips the second
/// factor for its account until `expires_at`, while the account's security stamp is unchanged.
#[derive(Debug, Clone)]
pub struct TrustedBrowser {
    pub id: Uuid,
    pub account_id: AccountId,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub security_stamp: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

/// A browser an account has signed in from (its device cookie's keyed hash is stored, never
/// the cookie).
#[derive(Debug, Clone)]
pub struct KnownDevice {
    pub id: Uuid,
    pub account_id: AccountId,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub first_seen_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
}

/// The emailed code that confirms a sign-in from an unknown browser or network. It belongs to
/// one device-verification session and remembers which browser and network it will admit.
#[derive(Debug, Clone)]
pub struct DeviceChallenge {
    pub session_id: SessionId,
    pub account_id: AccountId,
    pub device_hash: Vec<u8>,
    pub network: Option<String>,
    pub reason: crate::device::Unfamiliar,
    pub sent_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// Where an outbox message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Queued,
    Retrying,
    Sent,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Retrying => "retrying",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }
}

/// What else a factor change does in the same transaction: audit it, tell the owner, and for
/// hosted accounts bump the security stamp (keeping the session that made the change).
#[derive(Debug, Clone)]
pub struct Effects {
    pub audit: AuditEvent,
    pub mail: Option<NewOutboxItem>,
    pub new_stamp: Option<StampChange>,
}

#[derive(Debug, Clone)]
pub struct StampChange {
    pub account: AccountId,
    pub stamp: String,
    pub keep_session: Option<SessionId>,
}

#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
}

/// An API key as the operator sees it in a list (never its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub tenant: String,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_reason: Option<String>,
}

/// What a revocation did to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Now,
    Already,
    UnknownKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_has_no_password_hash() {
        let account = Account {
            id: Uuid::nil(),
            email: "a@example.com".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            email_verified_at: None,
            security_stamp: "stamp".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            two_factor_required: false,
            ip_verification: true,
            operator: false,
            locked_at: None,
        };
        let printed = format!("{account:?}");
        assert!(printed.contains("a@example.com"));
        assert!(
            !printed.contains("argon2") && !printed.contains("stamp"),
            "{printed}"
        );
    }
}
