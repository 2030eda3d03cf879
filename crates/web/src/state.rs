use crate::templates::Templates;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use twofold_core::Core;

/// What operators can change about how pages look.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Branding {
    pub product_name: String,
    /// URL or path of the logo shown in the header; the built-in mark when empty.
    pub logo_url: String,
    /// CSS colour for buttons and links.
    pub accent_color: String,
}

impl Default for Branding {
    fn default() -> Self {
        Self {
            product_name: "Twofold".into(),
            logo_url: String::new(),
            accent_color: "#1f5fbf".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WebSettings {
    /// Scheme, host and port users reach us on, without a trailing slash.
    pub public_url: String,
    /// Proxies whose `X-Forwarded-For` is believed; empty means the header is ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// Templates here override the built-in ones of the same name.
    pub templates_dir: Option<PathBuf>,
    pub branding: Branding,
    /// Share the session cookie with this domain and its subdomains (for forward-auth in
    /// front of `app.example.com` with Twofold at `login.example.com`). Default: host only.
    pub cookie_domain: Option<String>,
    /// `/metrics` wants `Authorization: Bearer` with this; without it, loopback clients only.
    pub metrics_token: Option<secrecy::SecretString>,
    /// A request unanswered after this long gets 408 (see `deadline`).
    pub request_timeout: std::time::Duration,
}

impl WebSettings {
    /// Cookies are `Secure` and `__Host-` prefixed whenever users reach us over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    pub fn origin(&self) -> &str {
        let rest = self
            .public_url
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(&self.public_url);
        let host_len = rest.find('/').unwrap_or(rest.len());
        let scheme_len = self.public_url.len() - rest.len();
        &self.public_url[..scheme_len + host_len]
    }
}

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    core: Arc<Core>,
    settings: WebSettings,
    templates: Templates,
}

impl AppState {
    pub fn new(core: Arc<Core>, settings: WebSettings) -> Result<Self, String> {
        let templates = Templates::new(settings.templates_dir.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                core,
                settings,
                templates,
            }),
        })
    }

    pub fn core(&self) -> &Core {
        &self.inner.core
    }

    pub fn settings(&self) -> &WebSettings {
        &self.inner.settings
    }

    pub(crate) fn templates(&self) -> &Templates {
        &self.inner.templates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_strips_path() {
        let mut s = WebSettings {
            cookie_domain: None,
            metrics_token: None,
            request_timeout: std::time::Duration::from_secs(30),
            public_url: "https://auth.example.com/base".into(),
            trusted_proxies: vec![],
            templates_dir: None,
            branding: Branding::default(),
        };
        assert_eq!(s.origin(), "https://auth.example.com");
        assert!(s.secure_cookies());
        s.public_url = "http://127.0.0.1:8080".into();
        assert_eq!(s.origin(), "http://127.0.0.1:8080");
        assert!(!s.secure_cookies());
    }
}
