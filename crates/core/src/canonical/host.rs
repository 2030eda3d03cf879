//! Host names and ports: what the `url` crate makes of a host (lower case, IDNA, one notation
//! for IP addresses), without the trailing dot of a fully qualified name.

use super::target::Scheme;
use super::{UrlError, has_control};
use serde::{Deserialize, Serialize};
use std::fmt;
use url::{Host, Url};

/// A host as compared: `APP.Example.com.` and `app.example.com` are one host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalHost(String);

impl CanonicalHost {
    /// The host of a parsed http(s) URL, its trailing dot (one) removed.
    pub(super) fn of(url: &Url) -> Result<Self, UrlError> {
        match url.host() {
            Some(Host::Domain(d)) => {
                let name = d.strip_suffix('.').unwrap_or(d);
                if name.is_empty() || name.split('.').any(str::is_empty) {
                    return Err(UrlError::new(format!("{d:?} is not a host name")));
                }
                Ok(Self(name.to_owned()))
            }
            // IPv6 in brackets, as it appears in a URL.
            Some(_) => Ok(Self(url.host_str().unwrap_or_default().to_owned())),
            None => Err(UrlError::new("the address has no host")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CanonicalHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Host and port of a request, the port always explicit (80 for `http://app.example.com`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Authority {
    pub host: CanonicalHost,
    pub port: u16,
}

impl Authority {
    /// `authority` as a proxy or a browser wrote it (`App.Example.com.:443`). Userinfo,
    /// backslashes and anything else a URL parser could read as a different host are refused.
    pub fn parse(scheme: Scheme, authority: &str) -> Result<Self, UrlError> {
        let url = parse_host_port(scheme, authority)?;
        Ok(Self {
            host: CanonicalHost::of(&url)?,
            port: url.port_or_known_default().unwrap_or(scheme.default_port()),
        })
    }

    /// As written in a URL of `scheme`: the port only when it is not the default.
    pub fn to_url_authority(&self, scheme: Scheme) -> String {
        if self.port == scheme.default_port() {
            self.host.to_string()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn parse_host_port(scheme: Scheme, authority: &str) -> Result<Url, UrlError> {
    let bad = |why: &str| UrlError::new(format!("host {authority:?}: {why}"));
    if authority.is_empty() {
        return Err(bad("empty"));
    }
    if has_control(authority) || authority.contains(char::is_whitespace) {
        return Err(bad("control characters or spaces"));
    }
    // Userinfo (`app.example.com@evil`) and characters that end an authority for some parsers.
    if authority.contains(['@', '\\', '/', '?', '#', ',']) {
        return Err(bad("not a host and port"));
    }
    Url::parse(&format!("{}://{authority}/", scheme.as_str())).map_err(|e| bad(&e.to_string()))
}

/// The host a forward-auth rule names: `*` (any host, any port), or a host with an optional
/// port. Without a port a rule means the default port of the request's scheme (80 for http,
/// 443 for https); `app.example.com:8443` means port 8443 only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RuleHost {
    Any,
    Named {
        host: CanonicalHost,
        port: Option<u16>,
    },
}

impl RuleHost {
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        if s == "*" {
            return Ok(Self::Any);
        }
        if s.contains('*') {
            return Err(UrlError::new(format!(
                "host {s:?}: only \"*\" on its own stands for any host"
            )));
        }
        // Parsed as http and as https: `url` hides a port that is the scheme's default, so a
        // port only one of them reports was written out (`:80` or `:443`).
        let http = parse_host_port(Scheme::Http, s)?;
        let https = parse_host_port(Scheme::Https, s)?;
        Ok(Self::Named {
            host: CanonicalHost::of(&http)?,
            port: http.port().or(https.port()),
        })
    }

    /// Whether a request to `authority` over `scheme` is to this host.
    pub fn covers(&self, scheme: Scheme, authority: &Authority) -> bool {
        match self {
            Self::Any => true,
            Self::Named { host, port } => {
                *host == authority.host && authority.port == port.unwrap_or(scheme.default_port())
            }
        }
    }

    pub fn is_any(&self) -> bool {
        matches!(self, Self::Any)
    }
}

impl fmt::Display for RuleHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Named { host, port: None } => write!(f, "{host}"),
            Self::Named {
                host,
                port: Some(p),
            } => write!(f, "{host}:{p}"),
        }
    }
}

impl TryFrom<String> for RuleHost {
    type Error = UrlError;
    fn try_from(s: String) -> Result<Self, UrlError> {
        Self::parse(&s)
    }
}

impl From<RuleHost> for String {
    fn from(h: RuleHost) -> String {
        h.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(scheme: Scheme, s: &str) -> Result<Authority, UrlError> {
        Authority::parse(scheme, s)
    }

    #[test]
    fn spellings_of_one_host_are_one_host() {
        let want = auth(Scheme::Http, "app.example.com").unwrap();
        for s in [
            "app.example.com.",
            "APP.Example.COM",
            "app.example.com:80",
            "APP.EXAMPLE.COM.:80",
            "app.%65xample.com",
        ] {
            assert_eq!(auth(Scheme::Http, s).unwrap(), want, "{s}");
        }
        assert_eq!(want.port, 80);
        assert_eq!(auth(Scheme::Https, "app.example.com").unwrap().port, 443);
        assert_eq!(auth(Scheme::Https, "app.example.com:80").unwrap().port, 80);
        assert_eq!(
            auth(Scheme::Http, "[::1]:8080").unwrap().host.as_str(),
            "[::1]"
        );
        assert_eq!(
            auth(Scheme::Http, "127.0.0.1.").unwrap().host.as_str(),
            "127.0.0.1"
        );
    }

    #[test]
    fn what_is_not_a_host_is_refused() {
        for s in [
            "",
            "app.example.com..",
            ".",
            "a..example.com",
            "app.example.com@evil.example",
            "evil.example\\app.example.com",
            "app.example.com/x",
            "app.exa\tmple.com",
            "app.example.com\0",
            "app example.com",
            "a.example,b.example",
            "app.example.com:99999",
        ] {
            assert!(auth(Scheme::Http, s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn rule_hosts_name_ports() {
        let at = |s: &str, a: &str| {
            RuleHost::parse(s)
                .unwrap()
                .covers(Scheme::Https, &auth(Scheme::Https, a).unwrap())
        };
        assert!(at("app.example.com", "App.Example.com."));
        assert!(at("app.example.com", "app.example.com:443"));
        assert!(!at("app.example.com", "app.example.com:8443"));
        assert!(at("app.example.com:8443", "app.example.com:8443"));
        assert!(!at("app.example.com:8443", "app.example.com"));
        assert!(at("app.example.com:443", "app.example.com"));
        assert!(at("*", "anything.example:1"));
        let http = |s: &str, a: &str| {
            RuleHost::parse(s)
                .unwrap()
                .covers(Scheme::Http, &auth(Scheme::Http, a).unwrap())
        };
        assert!(http("app.example.com", "app.example.com"));
        assert!(!http("app.example.com", "app.example.com:443"));
        assert!(http("app.example.com:80", "app.example.com"));
        assert_eq!(
            RuleHost::parse("APP.example.com.:80").unwrap().to_string(),
            "app.example.com:80"
        );
        assert!(RuleHost::parse("*.example.com").is_err());
        assert!(RuleHost::parse("user@app.example.com").is_err());
    }
}
