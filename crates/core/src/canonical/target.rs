//! Whole addresses: the request a proxy asks about, and where a sign-in returns to. Both are
//! absolute http(s) URLs read by one function, so what is checked is what is redirected to.

use super::host::Authority;
use super::path::PathReadings;
use super::{UrlError, has_control};
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// `http` or `https`, in any case; nothing else.
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Ok(Self::Http),
            "https" => Ok(Self::Https),
            _ => Err(UrlError::new(format!("scheme {s:?}: only http and https"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// Scheme, host and port: what must equal Twofold's own for a return address to be its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub scheme: Scheme,
    pub authority: Authority,
}

/// A request (or return address) in canonical form.
#[derive(Debug, Clone)]
pub struct RequestTarget {
    pub origin: Origin,
    pub path: PathReadings,
    /// The address itself with the canonical host, to send a browser to.
    url: Url,
}

impl RequestTarget {
    /// An absolute URL: nginx's `X-Original-URL`, or a sign-in's `rd`. Only `http://` and
    /// `https://` with a host: `//evil`, `http:evil`, `http:\\evil` and `javascript:` are not.
    pub fn from_url(raw: &str) -> Result<Self, UrlError> {
        let (scheme, rest) = raw
            .split_once("://")
            .ok_or_else(|| UrlError::new("not an absolute http(s) URL"))?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(end);
        Self::from_parts(scheme, authority, path_and_query)
    }

    /// The parts Traefik and Caddy send (`X-Forwarded-Proto`, `-Host`, `-Uri`). An empty
    /// `path_and_query` is `/`.
    pub fn from_parts(
        scheme: &str,
        authority: &str,
        path_and_query: &str,
    ) -> Result<Self, UrlError> {
        let scheme = Scheme::parse(scheme)?;
        let authority = Authority::parse(scheme, authority)?;
        if has_control(path_and_query) {
            return Err(UrlError::new("the address has control characters"));
        }
        let rooted = if path_and_query.is_empty() || path_and_query.starts_with(['?', '#']) {
            format!("/{path_and_query}")
        } else {
            path_and_query.to_owned()
        };
        let path = rooted.split(['?', '#']).next().unwrap_or_default();
        let readings = PathReadings::parse(path)?;
        let url = Url::parse(&format!(
            "{}://{}{rooted}",
            scheme.as_str(),
            authority.to_url_authority(scheme)
        ))
        .map_err(|e| UrlError::new(format!("not a URL: {e}")))?;
        Ok(Self {
            origin: Origin { scheme, authority },
            path: readings,
            url,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Result<String, UrlError> {
        RequestTarget::from_url(s).map(|t| t.url().to_string())
    }

    #[test]
    fn return_addresses_are_canonical() {
        assert_eq!(
            url("HTTP://App.Example.COM.:80/x?a=1#f").unwrap(),
            "http://app.example.com/x?a=1#f"
        );
        assert_eq!(
            url("https://app.example.com:8443").unwrap(),
            "https://app.example.com:8443/"
        );
        assert_eq!(
            url("http://app.example.com/x/../admin").unwrap(),
            "http://app.example.com/admin"
        );
        let t = RequestTarget::from_url("https://app.example.com:443/%61dmin").unwrap();
        assert_eq!(t.origin.authority.port, 443);
        assert_eq!(t.origin.scheme, Scheme::Https);
        assert_eq!(t.path.canonical(), "/admin");
    }

    #[test]
    fn what_could_lead_elsewhere_is_refused() {
        for bad in [
            "//evil.example/",
            "javascript:alert(1)",
            "http:evil.example",
            "http:\\\\evil.example",
            "http:/\\evil.example",
            "http://app.example.com@evil.example/",
            "http://evil.example\\@app.example.com/",
            "http://app.exa\tmple.com/",
            "http://app.example.com/\n",
            "ftp://app.example.com/",
            "http://app.example.com/a%2Fb",
            "http:///x",
            "",
        ] {
            assert!(url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn forwarded_parts_read_like_a_url() {
        let t = RequestTarget::from_parts("HTTPS", "App.example.com.", "").unwrap();
        assert_eq!(t.url().as_str(), "https://app.example.com/");
        let t = RequestTarget::from_parts("http", "app.example.com", "?q=1").unwrap();
        assert_eq!(t.url().as_str(), "http://app.example.com/?q=1");
        assert!(RequestTarget::from_parts("http", "app.example.com", "admin").is_err());
        assert!(RequestTarget::from_parts("gopher", "app.example.com", "/").is_err());
    }
}
