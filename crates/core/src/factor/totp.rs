//! TOTP (RFC 6238) over HOTP (RFC 4226), with HMAC-SHA-1, SHA-256 or SHA-512.

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

/// Per-factor parameters. The defaults are what every authenticator app supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u32,
}

impl Default for TotpParams {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

impl TotpParams {
    pub fn is_supported(&self) -> bool {
        matches!(self.digits, 6 | 8) && matches!(self.period, 30 | 60)
    }

    /// The time step containing `at`.
    pub fn step_at(&self, at: OffsetDateTime) -> i64 {
        at.unix_timestamp().div_euclid(i64::from(self.period))
    }
}

fn mac<M: Mac + KeyInit>(key: &[u8], counter: u64) -> Vec<u8> {
    let Ok(mut m) = <M as KeyInit>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length")
    };
    m.update(&counter.to_be_bytes());
    m.finalize().into_bytes().to_vec()
}

/// RFC 4226 HOTP: HMAC, dynamic truncation, modulo 10^digits.
pub fn hotp(secret: &[u8], counter: u64, algorithm: Algorithm, digits: u32) -> u32 {
    let digest = match algorithm {
        Algorithm::Sha1 => mac::<Hmac<sha1::Sha1>>(secret, counter),
        Algorithm::Sha256 => mac::<Hmac<sha2::Sha256>>(secret, counter),
        Algorithm::Sha512 => mac::<Hmac<sha2::Sha512>>(secret, counter),
    };
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = (u32::from(digest[offset]) & 0x7f) << 24
        | u32::from(digest[offset + 1]) << 16
        | u32::from(digest[offset + 2]) << 8
        | u32::from(digest[offset + 3]);
    binary % 10u32.pow(digits)
}

pub fn format_code(value: u32, digits: u32) -> String {
    format!("{value:0width$}", width = digits as usize)
}

/// A code that matched, and how far its step was from the server's current step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub step: i64,
    pub drift: i64,
}

/// Checks `code` against every step within `window` of `now`, comparing each candidate in
/// constant time and without stopping early, so timing says nothing about which step matched.
/// Steps at or before `last_used_step` never match (replay). The caller must still consume
/// the step atomically in storage.
pub fn verify(
    secret: &[u8],
    params: &TotpParams,
    code: &str,
    now: OffsetDateTime,
    window: u32,
    last_used_step: Option<i64>,
) -> Option<Match> {
    let code = normalize_code(code)?;
    if code.len() != params.digits as usize {
        return None;
    }
    let current = params.step_at(now);
    let window = i64::from(window);
    let mut found: Option<Match> = None;
    for drift in -window..=window {
        let step = current + drift;
        if step < 0 {
            continue;
        }
        let candidate = format_code(
            hotp(secret, step as u64, params.algorithm, params.digits),
            params.digits,
        );
        let equal: bool = candidate.as_bytes().ct_eq(code.as_bytes()).into();
        let fresh = last_used_step.is_none_or(|last| step > last);
        if equal && fresh && found.is_none() {
            found = Some(Match { step, drift });
        }
    }
    found
}

/// Digits only; spaces and dashes people type between groups are dropped.
pub fn normalize_code(code: &str) -> Option<String> {
    let cleaned: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (!cleaned.is_empty() && cleaned.len() <= 10 && cleaned.chars().all(|c| c.is_ascii_digit()))
        .then_some(cleaned)
}

pub fn encode_secret(secret: &[u8]) -> String {
    BASE32_NOPAD.encode(secret)
}

/// The key as people type it: base32 in groups of four.
pub fn grouped_secret(secret: &[u8]) -> String {
    encode_secret(secret)
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=…&digits=…&period=…`
pub fn otpauth_uri(secret: &[u8], params: &TotpParams, issuer: &str, account: &str) -> String {
    let label = format!("{}:{}", uri_escape(issuer), uri_escape(account));
    format!(
        "otpauth://totp/{label}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
        encode_secret(secret),
        uri_escape(issuer),
        params.algorithm.as_str(),
        params.digits,
        params.period
    )
}

fn uri_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The otpauth URI as an SVG QR code.
pub fn qr_svg(uri: &str) -> Option<String> {
    let qr = fast_qr::QRBuilder::new(uri)
        .ecl(fast_qr::ECL::M)
        .build()
        .ok()?;
    Some(fast_qr::convert::svg::SvgBuilder::default().to_str(&qr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const SEED20: &[u8] = b"12345678901234567890";
    const SEED32: &[u8] = b"12345678901234567890123456789012";
    const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(
                hotp(SEED20, counter as u64, Algorithm::Sha1, 6),
                *want,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn rfc6238_appendix_b() {
        let cases: [(i64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, sha1, sha256, sha512) in cases {
            let step = (t / 30) as u64;
            assert_eq!(
                format_code(hotp(SEED20, step, Algorithm::Sha1, 8), 8),
                sha1,
                "t={t} sha1"
            );
            assert_eq!(
                format_code(hotp(SEED32, step, Algorithm::Sha256, 8), 8),
                sha256,
                "t={t} sha256"
            );
            assert_eq!(
                format_code(hotp(SEED64, step, Algorithm::Sha512, 8), 8),
                sha512,
                "t={t} sha512"
            );
        }
    }

    #[test]
    fn window_replay_and_drift() {
        let p = TotpParams::default();
        let now = datetime!(2026-05-01 12:00:15 UTC);
        let step = p.step_at(now);
        let code = |s: i64| format_code(hotp(SEED20, s as u64, Algorithm::Sha1, 6), 6);
        assert_eq!(
            verify(SEED20, &p, &code(step), now, 1, None),
            Some(Match { step, drift: 0 })
        );
        assert_eq!(
            verify(SEED20, &p, &code(step - 1), now, 1, None),
            Some(Match {
                step: step - 1,
                drift: -1
            })
        );
        assert_eq!(
            verify(SEED20, &p, &code(step + 1), now, 1, None),
            Some(Match {
                step: step + 1,
                drift: 1
            })
        );
        assert_eq!(verify(SEED20, &p, &code(step - 2), now, 1, None), None);
        assert_eq!(
            verify(SEED20, &p, &code(step - 2), now, 2, None).map(|m| m.drift),
            Some(-2)
        );
        // A used step, or an earlier one, never matches again.
        assert_eq!(verify(SEED20, &p, &code(step), now, 1, Some(step)), None);
        assert_eq!(
            verify(SEED20, &p, &code(step - 1), now, 1, Some(step)),
            None
        );
        assert_eq!(
            verify(SEED20, &p, &code(step + 1), now, 1, Some(step)).map(|m| m.step),
            Some(step + 1)
        );
        // Typing aids and junk.
        let spaced = format!("{} {}", &code(step)[..3], &code(step)[3..]);
        assert!(verify(SEED20, &p, &spaced, now, 1, None).is_some());
        assert_eq!(verify(SEED20, &p, "12345", now, 1, None), None);
        assert_eq!(verify(SEED20, &p, "abcdef", now, 1, None), None);
        assert_eq!(verify(SEED20, &p, "", now, 1, None), None);
    }

    #[test]
    fn otpauth_uri_and_key_text() {
        let uri = otpauth_uri(
            SEED20,
            &TotpParams::default(),
            "Acme Corp",
            "alice@example.com",
        );
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20Corp:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Corp&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            grouped_secret(SEED20),
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
        );
        assert!(qr_svg(&uri).unwrap().starts_with("<svg"));
    }
}
