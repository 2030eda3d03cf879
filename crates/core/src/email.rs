use crate::error::CoreError;
use std::fmt;

/// A normalized email address: trimmed, lower-cased, syntactically valid, at most 254 bytes.
///
/// Lower-casing the local part is technically lossy, but no real provider distinguishes
/// `Alice@` from `alice@`, and treating them as two accounts invites takeover confusion.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        let normalized = raw.trim().to_lowercase();
        if normalized.is_empty() {
            return Err(CoreError::invalid("email", "Enter your email address."));
        }
        if normalized.len() > 254 || !email_address::EmailAddress::is_valid(&normalized) {
            return Err(CoreError::invalid(
                "email",
                "Enter a valid email address, like name@example.com.",
            ));
        }
        // Require a dot in the domain: `user@localhost` is valid syntax but never a customer's address.
        let domain = normalized.rsplit('@').next().unwrap_or_default();
        if !domain.contains('.') || domain.starts_with('[') {
            return Err(CoreError::invalid(
                "email",
                "Enter a valid email address, like name@example.com.",
            ));
        }
        Ok(Self(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_whitespace() {
        let e = Email::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "alice@example.com");
        assert_eq!(e.local_part(), "alice");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a b@example.com",
            "alice@localhost",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }
}
