//! Canonical forms of the addresses forward-auth compares: the request a proxy asks about, the
//! hosts and path prefixes of its rules, and the address a sign-in returns to. Two spellings of
//! one address must compare equal, so every comparison goes through these types and none
//! through the strings a client wrote.

mod host;
mod path;
mod target;

pub use host::{Authority, CanonicalHost, RuleHost};
pub use path::{CanonicalPath, PathReadings, PathView};
pub use target::{Origin, RequestTarget, Scheme};

/// An address that has no canonical form: the caller answers 400 (or refuses the
/// configuration) with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(pub(crate) String);

impl UrlError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// ASCII control characters (NUL, tab, newline, DEL...) are refused anywhere in an address:
/// the `url` crate would silently drop tabs and newlines, so two parsers could disagree.
fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_control())
}
