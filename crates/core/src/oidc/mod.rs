//! OpenID Connect, the pure parts: clients, the checked authorization request, PKCE, the
//! `acr` values and what a grant carries from the sign-in to the tokens. The use cases are in
//! `service::oidc`; signing is in [`jwt`].

pub mod jwt;
mod request;

pub use request::{
    AuthRequest, AuthorizeParams, Prompt, ReplacedSession, RequestError, check_request,
};

use crate::assurance::Assurance;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

/// An application that signs its users in through Twofold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcClient {
    pub id: String,
    pub name: String,
    /// Matched exactly, character for character.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Has a secret (a server-side app); a public client (SPA, mobile) has none and must use
    /// PKCE.
    pub confidential: bool,
    /// The business's own app: no consent screen.
    pub first_party: bool,
    /// How its ID tokens are signed (ES256 unless it only knows RS256).
    pub id_token_alg: jwt::SigningAlg,
    pub created_at: OffsetDateTime,
}

/// Lifetimes of what the provider hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OidcSettings {
    /// An authorization request waiting for the user to sign in.
    pub request_ttl: time::Duration,
    pub code_ttl: time::Duration,
    pub id_token_ttl: time::Duration,
    pub access_token_ttl: time::Duration,
    /// Fixed from the sign-in; each use rotates it but does not extend it.
    pub refresh_token_ttl: time::Duration,
    /// How long a replaced signing key stays in the JWK Set, for tokens it signed.
    pub retired_key_ttl: time::Duration,
}

impl Default for OidcSettings {
    fn default() -> Self {
        Self {
            request_ttl: time::Duration::minutes(30),
            code_ttl: time::Duration::minutes(1),
            id_token_ttl: time::Duration::hours(1),
            access_token_ttl: time::Duration::hours(1),
            refresh_token_ttl: time::Duration::days(30),
            retired_key_ttl: time::Duration::days(7),
        }
    }
}

/// The scopes Twofold knows; others are dropped from the grant.
pub const SCOPES: [&str; 3] = ["openid", "email", "offline_access"];

/// `acr` values: what the sign-in proved, from weakest to strongest. `phr` is the OpenID EAP
/// ACR value for phishing-resistant authentication.
pub const ACR_VALUES: [&str; 3] = ["aal1", "aal2", "phr"];

pub fn acr_of(level: Assurance) -> &'static str {
    match level {
        Assurance::Public | Assurance::OneFactor => "aal1",
        Assurance::TwoFactors => "aal2",
        Assurance::PhishingResistant => "phr",
    }
}

pub fn level_of_acr(acr: &str) -> Option<Assurance> {
    match acr {
        "aal1" => Some(Assurance::OneFactor),
        "aal2" => Some(Assurance::TwoFactors),
        "phr" => Some(Assurance::PhishingResistant),
        _ => None,
    }
}

/// PKCE S256: `BASE64URL(SHA-256(verifier))`.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`. A challenge (an S256 digest)
/// has the same alphabet.
pub fn is_pkce_value(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// What a sign-in gave an application, carried from the authorization code to every token
/// issued from it (refreshed tokens keep the original sign-in's `auth_time` and `amr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub session_id: Uuid,
    pub scope: Vec<String>,
    pub nonce: Option<String>,
    #[serde(with = "time::serde::timestamp")]
    pub auth_time: OffsetDateTime,
    pub amr: Vec<String>,
    pub acr: String,
}

impl Grant {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }
}

/// The claims of an ID token (OpenID Connect Core §2, RFC 8176 `amr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub azp: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub amr: Vec<String>,
    pub acr: String,
    pub sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(is_pkce_value("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!is_pkce_value("short"));
        assert!(!is_pkce_value(&"a/".repeat(30)));
    }

    #[test]
    fn acr_values_round_trip_in_order() {
        for acr in ACR_VALUES {
            assert_eq!(acr_of(level_of_acr(acr).unwrap()), acr);
        }
        assert!(level_of_acr("aal1").unwrap() < level_of_acr("aal2").unwrap());
        assert!(level_of_acr("aal2").unwrap() < level_of_acr("phr").unwrap());
        assert_eq!(level_of_acr("urn:other"), None);
    }
}
