//! Paths. A rule's prefix has one canonical form: percent-decoded, repeated slashes merged,
//! dot segments removed. A request's path is read in every way an application behind the
//! proxy might read it, and the strictest rule among those readings applies: Twofold cannot
//! know whether the application decodes `%61`, merges `//`, resolves `..` (before or after
//! merging), cuts Java's `;parameters` or ignores case, and guessing wrong in the lenient
//! direction lets a request past a rule.

use super::{UrlError, has_control};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The characters a browser percent-encodes in a path (WHATWG's path percent-encode set).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// A rule's path prefix, canonical: `/Admin/`, `//admin` and `/x/../%61dmin` are `/admin`
/// (case is kept here; each [`PathView`] says whether it is compared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CanonicalPath {
    segments: Vec<String>,
}

/// One reading of a request's path, with how a rule's prefix is compared with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathView {
    segments: Vec<String>,
    /// As sent (not decoded): compared with the prefix as a browser would encode it.
    literal: bool,
    /// Lower-cased, and so is the prefix.
    folded: bool,
}

/// Every reading of one request's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathReadings {
    views: Vec<PathView>,
}

impl CanonicalPath {
    /// A rule's `path_prefix`: starts with `/`, no query or fragment.
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        if !raw.starts_with('/') {
            return Err(UrlError::new(format!("path {raw:?} must start with /")));
        }
        if raw.contains(['?', '#']) || has_control(raw) {
            return Err(UrlError::new(format!(
                "path {raw:?}: no query, fragment or control characters"
            )));
        }
        Ok(Self {
            segments: resolve_dots(non_empty(decoded_segments(raw)?)),
        })
    }

    /// Sorts rules: more segments, then more characters, is more specific.
    pub fn specificity(&self) -> (usize, usize) {
        let chars = self.segments.iter().map(|s| s.len() + 1).sum();
        (self.segments.len(), chars)
    }

    /// Whether `view` starts with this prefix: by whole segments (`/admin` covers `/admin/x`,
    /// not `/administrator`), or, with `whole_segments` false, as text (it covers both).
    pub fn matches(&self, view: &PathView, whole_segments: bool) -> bool {
        let mine = self.form(view);
        if whole_segments {
            view.segments.starts_with(&mine)
        } else {
            joined(&view.segments).starts_with(&joined(&mine))
        }
    }

    fn form(&self, view: &PathView) -> Vec<String> {
        self.segments
            .iter()
            .map(|s| {
                let s = if view.literal {
                    utf8_percent_encode(s, PATH).to_string()
                } else {
                    s.clone()
                };
                if view.folded { s.to_lowercase() } else { s }
            })
            .collect()
    }
}

impl PathReadings {
    /// The path of a request (`/a/b`, without query). Refused: an encoded `/` or `\` (`%2F`,
    /// `%5C`), an encoded or raw control character (`%00`), a `%` that decodes to another
    /// escape (`%2561`: decoded twice it is something else), and anything not starting with `/`.
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        if !raw.starts_with('/') {
            return Err(UrlError::new(format!("path {raw:?} must start with /")));
        }
        if has_control(raw) {
            return Err(UrlError::new("the path has control characters"));
        }
        let decoded = decoded_segments(raw)?;
        let java: Vec<String> = decoded
            .iter()
            .map(|s| s.split(';').next().unwrap_or_default().to_owned())
            .collect();
        let readings = [
            (resolve_dots(non_empty(decoded.clone())), false),
            (non_empty(resolve_dots(decoded)), false),
            (resolve_dots(non_empty(java)), false),
            (raw[1..].split('/').map(str::to_owned).collect(), true),
        ];
        let views = readings
            .into_iter()
            .flat_map(|(segments, literal)| {
                let folded = segments.iter().map(|s| s.to_lowercase()).collect();
                [
                    PathView {
                        segments,
                        literal,
                        folded: false,
                    },
                    PathView {
                        segments: folded,
                        literal,
                        folded: true,
                    },
                ]
            })
            .collect();
        Ok(Self { views })
    }

    pub fn views(&self) -> &[PathView] {
        &self.views
    }

    /// The canonical reading (decoded, merged, dots removed), as a path.
    pub fn canonical(&self) -> String {
        joined(&self.views[0].segments)
    }
}

/// Splits after the leading `/` at `/` and `\` (which browsers and some servers take for
/// `/`), and decodes each segment.
fn decoded_segments(raw: &str) -> Result<Vec<String>, UrlError> {
    raw[1..].split(['/', '\\']).map(decode_segment).collect()
}

fn decode_segment(seg: &str) -> Result<String, UrlError> {
    let bytes: Vec<u8> = percent_decode_str(seg).collect();
    if bytes.iter().any(|b| matches!(b, b'/' | b'\\')) {
        return Err(UrlError::new("the path has an encoded / or \\"));
    }
    if bytes.iter().any(u8::is_ascii_control) {
        return Err(UrlError::new("the path has an encoded control character"));
    }
    let s = String::from_utf8_lossy(&bytes).into_owned();
    if has_escape(&s) {
        return Err(UrlError::new("the path is percent-encoded twice"));
    }
    Ok(s)
}

fn has_escape(s: &str) -> bool {
    s.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

fn non_empty(segments: Vec<String>) -> Vec<String> {
    segments.into_iter().filter(|s| !s.is_empty()).collect()
}

/// RFC 3986 dot-segment removal: `.` goes, `..` takes the segment before it (none above `/`).
fn resolve_dots(segments: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(segments.len());
    for s in segments {
        match s.as_str() {
            "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(s),
        }
    }
    out
}

fn joined(segments: &[String]) -> String {
    format!("/{}", segments.join("/"))
}

impl fmt::Display for CanonicalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoded: Vec<String> = self
            .segments
            .iter()
            .map(|s| utf8_percent_encode(s, PATH).to_string())
            .collect();
        f.write_str(&joined(&encoded))
    }
}

impl TryFrom<String> for CanonicalPath {
    type Error = UrlError;
    fn try_from(s: String) -> Result<Self, UrlError> {
        Self::parse(&s)
    }
}

impl From<CanonicalPath> for String {
    fn from(p: CanonicalPath) -> String {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(prefix: &str, path: &str, whole: bool) -> bool {
        let p = CanonicalPath::parse(prefix).unwrap();
        let r = PathReadings::parse(path).unwrap();
        r.views().iter().any(|v| p.matches(v, whole))
    }

    #[test]
    fn rule_prefixes_are_canonical() {
        for s in ["/admin", "/admin/", "//admin", "/x/../admin", "/./%61dmin"] {
            assert_eq!(CanonicalPath::parse(s).unwrap().to_string(), "/admin");
        }
        assert_eq!(
            CanonicalPath::parse("/Admin").unwrap().to_string(),
            "/Admin"
        );
        assert_eq!(CanonicalPath::parse("/..").unwrap().to_string(), "/");
        assert_eq!(
            CanonicalPath::parse("/my%20docs").unwrap().to_string(),
            "/my%20docs"
        );
        for bad in ["admin", "", "/a%2Fb", "/a%00", "/a?b", "/a\tb", "/%2561"] {
            assert!(CanonicalPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_spelling_of_admin_is_read_as_admin() {
        for path in [
            "/admin",
            "/admin/x",
            "/%61dmin",
            "//admin",
            "/Admin",
            "/ADMIN/x",
            "/./admin",
            "/x/../admin",
            "/x/%2e%2e/admin",
            "/x/..;/admin",
            "/x\\..\\admin",
            "/a//../admin",
        ] {
            assert!(covers("/admin", path, true), "{path}");
        }
        assert!(!covers("/admin", "/administrator", true));
        assert!(covers("/admin", "/administrator", false));
        assert!(!covers("/admin", "/public", false));
        assert!(covers("/", "/anything", true));
    }

    #[test]
    fn literal_readings_keep_what_an_application_might_see() {
        // An application that does not resolve dots routes this under /admin.
        assert!(covers("/admin", "/admin/../public", true));
        // One that does not decode sees `%73tatic`, not the rule's `static`.
        let r = PathReadings::parse("/admin/%73tatic").unwrap();
        let p = CanonicalPath::parse("/admin/static").unwrap();
        assert!(!r.views().iter().all(|v| p.matches(v, true)));
        // Characters a browser encodes are compared encoded.
        assert!(
            PathReadings::parse("/my%20docs/x")
                .unwrap()
                .views()
                .iter()
                .all(|v| CanonicalPath::parse("/my docs").unwrap().matches(v, true))
        );
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for bad in [
            "/admin%2Fx",
            "/admin%2fx",
            "/admin%5Cx",
            "/a%00",
            "/a%0a",
            "/a%7F",
            "/a\u{1}",
            "/%2561dmin",
            "admin",
            "",
        ] {
            assert!(PathReadings::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            PathReadings::parse("/x/../%61dmin//y/")
                .unwrap()
                .canonical(),
            "/admin/y"
        );
    }
}
