//! Return paths (`next`): where a page sends the browser after it is done. Every place that
//! accepts one takes it through [`ReturnPath::parse`], before anything is spent, so a value
//! that would be an open redirect, a header injection or an unsendable `Location` never
//! gets past the door.

/// A path on this server, safe to put in a `Location` header as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnPath(String);

impl ReturnPath {
    /// Accepts `raw` when it is a path on this origin inside `area` (whole segments:
    /// `/account` covers `/account`, `/account/security` and `/account?x`, not `/accounts`).
    ///
    /// A path starts with exactly one `/` (`//host` and `/\host` lead elsewhere in browsers),
    /// holds only visible ASCII (a `Location` header takes nothing else; control characters
    /// would split headers), no backslash anywhere, percent-decodes to no control character
    /// and no backslash either, and has no `//` or dot segment inside.
    pub fn parse(raw: &str, area: &str) -> Option<Self> {
        let rest = raw.strip_prefix('/')?;
        if rest.starts_with(['/', '\\'])
            || !raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
            || percent_decoded(raw).any(|b| b.is_ascii_control() || b == b'\\')
            || !plain_path(raw)
        {
            return None;
        }
        let after = raw.strip_prefix(area)?;
        if !(after.is_empty() || after.starts_with(['/', '?', '#'])) {
            return None;
        }
        Some(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether the path part has no empty segment (`//`) but a trailing one, and no dot segment,
/// escaped or not: a browser resolves `/account/../admin` to `/admin`, outside the area.
fn plain_path(raw: &str) -> bool {
    let path = raw.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    segments.iter().enumerate().all(|(i, segment)| {
        let decoded: Vec<u8> = percent_decoded(segment).collect();
        (!decoded.is_empty() || i + 1 == segments.len()) && decoded != b"." && decoded != b".."
    })
}

/// The bytes `s` stands for once its `%XX` escapes are decoded (a malformed escape stays).
fn percent_decoded(s: &str) -> impl Iterator<Item = u8> + '_ {
    let b = s.as_bytes();
    let hex = |i: usize| b.get(i).and_then(|&c| (c as char).to_digit(16));
    let mut i = 0;
    std::iter::from_fn(move || {
        let c = *b.get(i)?;
        if c == b'%'
            && let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2))
        {
            i += 3;
            return Some((h * 16 + l) as u8);
        }
        i += 1;
        Some(c)
    })
}

#[cfg(test)]
mod tests {
    use super::ReturnPath;

    fn ok(raw: &str) -> bool {
        ReturnPath::parse(raw, "/account").is_some()
    }

    #[test]
    fn paths_inside_the_area_pass() {
        for raw in [
            "/account",
            "/account/security",
            "/account/remote-session",
            "/account?tab=1",
            "/account/a%20b",
            "/account/security/",
        ] {
            assert_eq!(ReturnPath::parse(raw, "/account").unwrap().as_str(), raw);
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for raw in [
            "",
            "account",
            "https://evil.example/account",
            "//evil.example/account",
            "/\\evil.example",
            "/account\\..",
            "/accounts",
            "/admin",
            "/account\r\nX:1",
            "/account%0d%0aX:1",
            "/account%0D%0A",
            "/account%7f",
            "/account%5c",
            "/account/\t",
            "/account/é",
            "/account x",
            "/account//evil.example",
            "/account/../admin",
            "/account/%2e%2e/admin",
            "/account/./security",
        ] {
            assert!(!ok(raw), "{raw:?} passed");
        }
    }
}
