//! Opaque bearer tokens: 256 random bits, base64url in links and cookies, keyed hash in storage.

use crate::random::{Random, random_bytes};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

/// What a token is for; part of its keyed hash, so a token of one kind never works as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    Session,
    VerifyEmail,
    PasswordReset,
    Csrf,
    SignInLink,
    TrustedBrowser,
    /// The long-lived cookie that makes a browser a known device.
    Device,
    /// The "this wasn't me" link in a new-device sign-in mail.
    SignInReport,
    /// The link that confirms a new address for an account.
    EmailChange,
    /// OpenID Connect: an authorization code, an access token, a refresh token, a client
    /// secret.
    OidcCode,
    OidcAccess,
    OidcRefresh,
    OidcClientSecret,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::VerifyEmail => "verify_email",
            Self::PasswordReset => "password_reset",
            Self::Csrf => "csrf",
            Self::SignInLink => "sign_in_link",
            Self::TrustedBrowser => "trusted_browser",
            Self::Device => "device",
            Self::SignInReport => "sign_in_report",
            Self::EmailChange => "email_change",
            Self::OidcCode => "oidc_code",
            Self::OidcAccess => "oidc_access",
            Self::OidcRefresh => "oidc_refresh",
            Self::OidcClientSecret => "oidc_client_secret",
        }
    }
}

pub fn new_token(random: &dyn Random) -> SecretString {
    let bytes: [u8; 32] = random_bytes(random);
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
}

/// Decodes a presented token; anything that is not 32 bytes of base64url is simply invalid.
pub fn decode_token(presented: &str) -> Option<Vec<u8>> {
    let presented = presented.trim();
    if presented.len() != 43 {
        return None;
    }
    URL_SAFE_NO_PAD
        .decode(presented)
        .ok()
        .filter(|b| b.len() == 32)
}

pub fn token_bytes(token: &SecretString) -> Vec<u8> {
    decode_token(token.expose_secret()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn tokens_round_trip_and_are_distinct() {
        let a = new_token(&OsRandom);
        let b = new_token(&OsRandom);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(token_bytes(&a).len(), 32);
        assert!(decode_token("short").is_none());
        assert!(decode_token(&"!".repeat(43)).is_none());
    }
}
