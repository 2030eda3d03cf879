//! One-time codes sent by SMS or email (`sms` and `email` factors): generation, the input
//! format, and the settings and send quotas that govern them. Pure; the service in
//! `crate::service::code_challenges` stores and consumes them.

use crate::random::Random;
use time::Duration;

#[derive(Debug, Clone)]
pub struct CodeSettings {
    /// Digits per code (4–10).
    pub length: u8,
    pub ttl: Duration,
    /// Wrong tries one code takes before it is dead.
    pub max_attempts: u32,
    /// Minimum time between two codes to one factor.
    pub resend_cooldown: Duration,
}

impl Default for CodeSettings {
    fn default() -> Self {
        Self {
            length: 6,
            ttl: Duration::minutes(10),
            max_attempts: 5,
            resend_cooldown: Duration::seconds(30),
        }
    }
}

/// Quotas against SMS pumping and toll fraud, and the daily budget behind the circuit breaker.
/// Counters live in the database, so every node shares them.
#[derive(Debug, Clone)]
pub struct SendQuotas {
    pub per_number_per_hour: u32,
    pub per_owner_per_hour: u32,
    pub per_ip_per_hour: u32,
    pub per_country_per_hour: u32,
    /// Text messages per UTC day across the whole installation; when spent, SMS stops.
    pub sms_per_day: u32,
    /// ISO 3166 alpha-2 regions numbers may be in; empty allows all.
    pub allowed_countries: Vec<String>,
    /// Emails with codes per address per hour (a mail-bomb guard).
    pub per_email_per_hour: u32,
}

impl Default for SendQuotas {
    fn default() -> Self {
        Self {
            per_number_per_hour: 5,
            per_owner_per_hour: 10,
            per_ip_per_hour: 20,
            per_country_per_hour: 200,
            sms_per_day: 1000,
            allowed_countries: Vec::new(),
            per_email_per_hour: 10,
        }
    }
}

impl SendQuotas {
    pub fn country_allowed(&self, country: Option<&str>) -> bool {
        self.allowed_countries.is_empty()
            || country.is_some_and(|c| {
                self.allowed_countries
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(c))
            })
    }
}

/// NIST SP 800-63B calls codes by SMS a *restricted* authenticator (SIM swaps, SS7
/// interception): policies may refuse it, so every view of a factor carries this flag.
pub fn is_restricted(kind: &str) -> bool {
    kind == "sms"
}

/// A uniformly random code of `length` decimal digits (rejection sampling: no modulo bias).
pub fn generate(random: &dyn Random, length: u8) -> String {
    let mut code = String::with_capacity(usize::from(length));
    let mut buf = [0u8; 16];
    while code.len() < usize::from(length) {
        random.fill(&mut buf);
        for b in buf {
            // 250 is the largest multiple of 10 that fits a byte.
            if b < 250 && code.len() < usize::from(length) {
                code.push(char::from(b'0' + b % 10));
            }
        }
    }
    code
}

/// The digits of a typed code (spaces and dashes allowed), if it has exactly `length` of them.
pub fn normalize(input: &str, length: u8) -> Option<String> {
    let digits: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (digits.len() == usize::from(length) && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn codes_have_the_length_and_every_digit_turns_up() {
        let mut seen = [0u32; 10];
        for _ in 0..2000 {
            let c = generate(&OsRandom, 6);
            assert_eq!(c.len(), 6);
            for b in c.bytes() {
                seen[usize::from(b - b'0')] += 1;
            }
        }
        // 12,000 digits: each should appear about 1,200 times; 900 is far outside chance.
        assert!(seen.iter().all(|&n| n > 900), "{seen:?}");
        assert_eq!(generate(&OsRandom, 10).len(), 10);
    }

    #[test]
    fn normalize_accepts_spacing_only() {
        assert_eq!(normalize(" 123 456 ", 6).as_deref(), Some("123456"));
        assert_eq!(normalize("123-456", 6).as_deref(), Some("123456"));
        assert_eq!(normalize("12345", 6), None);
        assert_eq!(normalize("12345a", 6), None);
        assert_eq!(normalize("١٢٣٤٥٦", 6), None);
    }

    #[test]
    fn country_allow_list() {
        let mut q = SendQuotas::default();
        assert!(q.country_allowed(Some("NG")));
        assert!(q.country_allowed(None));
        q.allowed_countries = vec!["us".into(), "DE".into()];
        assert!(q.country_allowed(Some("US")));
        assert!(!q.country_allowed(Some("NG")));
        assert!(!q.country_allowed(None));
    }
}
