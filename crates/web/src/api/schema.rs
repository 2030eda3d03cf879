//! The JSON API's response bodies. Handlers build these (never ad-hoc JSON), so the OpenAPI
//! document generated from them is what the API sends.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// An RFC 9457 problem: every error of the API has this shape (`application/problem+json`).
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// `urn:twofold:problem:<slug>`, e.g. `urn:twofold:problem:wrong-code`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// A sentence a user may read.
    pub detail: String,
    /// The request field that was wrong (for `invalid-input`), or that the request does not
    /// take (for `invalid-body`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait (for `too-many-attempts`, `send-limited`, `busy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// An action that was done or started, named by `status`.
#[derive(Serialize, ToSchema)]
pub struct Done {
    /// What happened: `verification_sent`, `verified`, `code_sent`, `ok`, `accepted`,
    /// `password_changed`, `confirmation_sent`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
}

impl Done {
    pub fn new(status: &'static str) -> Self {
        Self {
            status,
            detail: None,
        }
    }

    pub fn with_detail(status: &'static str, detail: &'static str) -> Self {
        Self {
            status,
            detail: Some(detail),
        }
    }
}

/// Where a sign-in stands after a step.
#[derive(Serialize, ToSchema)]
pub struct LoginState {
    /// `signed_in`, `second_factor_required`, `enrollment_required` or
    /// `device_verification_required`.
    pub status: &'static str,
    /// The full session (when `signed_in`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Uuid>,
    /// The second-step methods the account can use, or may add.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// The masked address the device-verification code went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_to: Option<String>,
    /// After a backup code: how many are left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_codes_left: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct CodeFactorRef {
    pub id: Uuid,
    /// `sms` or `email`.
    pub channel: String,
    pub hint: String,
}

#[derive(Serialize, ToSchema)]
pub struct SecondStepOptions {
    pub methods: Vec<String>,
    pub code_factors: Vec<CodeFactorRef>,
}

#[derive(Serialize, ToSchema)]
pub struct CodeSent {
    pub channel: String,
    pub hint: String,
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct SessionSummary {
    pub id: Uuid,
    /// RFC 8176 authentication methods of this session.
    pub amr: Vec<String>,
    pub auth_time: String,
}

#[derive(Serialize, ToSchema)]
pub struct AccountView {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub created_at: String,
    pub session: SessionSummary,
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub browser: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: String,
    pub last_seen_at: String,
    pub expires_at: String,
    /// The session making this request.
    pub current: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

#[derive(Serialize, ToSchema)]
pub struct EmailChanged {
    pub status: &'static str,
    pub email: String,
}

#[derive(Serialize, ToSchema)]
pub struct PermissionGrant {
    pub permission: String,
    pub granted: bool,
    pub valid_until: String,
}

/// A factor just added to a subject, pending until confirmed with a code.
#[derive(Serialize, ToSchema)]
pub struct NewFactorView {
    pub id: Uuid,
    /// `totp`, `sms` or `email`.
    #[serde(rename = "type")]
    pub kind: String,
    pub label: String,
    pub status: &'static str,
    /// Masked phone number or address (sms, email).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// NIST SP 800-63B calls SMS and email "restricted" authenticators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restricted: Option<bool>,
    /// The TOTP secret in base32, to show once for manual entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otpauth_uri: Option<String>,
    /// The otpauth URI as a QR code (SVG).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_svg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ActiveFactor {
    pub id: Uuid,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub status: &'static str,
    /// The subject's first factor comes with backup codes, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_codes: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct FactorItem {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub label: String,
    pub status: &'static str,
    pub hint: Option<String>,
    pub restricted: bool,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FactorList {
    pub factors: Vec<FactorItem>,
}

/// The answer to a code check: a wrong code is `valid: false`, not an error.
#[derive(Serialize, ToSchema)]
pub struct Verification {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor_id: Option<Uuid>,
    /// `totp`, `backup_code`, `sms`, `email` or `webauthn`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_codes_left: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct BackupCodes {
    pub codes: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ChallengeSent {
    pub challenge_id: Uuid,
    pub factor_id: Uuid,
    pub channel: String,
    pub hint: String,
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct ChallengeState {
    pub challenge_id: Uuid,
    pub factor_id: Uuid,
    pub channel: String,
    /// `pending`, `used` or `expired`.
    pub status: String,
    /// `queued`, `sent` or `failed`.
    pub delivery: String,
    pub delivery_failed: bool,
    pub expires_at: String,
}

/// Options for `navigator.credentials.create()` (`publicKey` inside).
#[derive(Serialize, ToSchema)]
pub struct RegistrationStarted {
    pub registration_id: Uuid,
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

/// Options for `navigator.credentials.get()`.
#[derive(Serialize, ToSchema)]
pub struct AssertionStarted {
    pub assertion_id: Uuid,
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}
