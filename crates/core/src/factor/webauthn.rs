//! Security keys and passkeys through webauthn-rs: the relying party's identity, and how a
//! credential's assurance reads as RFC 8176 `amr` values.

use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};

/// Who we are to authenticators. By default the host of the public URL and that URL's origin.
#[derive(Debug, Clone, Default)]
pub struct RelyingParty {
    /// Empty: the host of the public URL.
    pub id: String,
    /// Empty: the public URL's origin.
    pub origins: Vec<String>,
}

/// Builds the relying party for `public_url`, applying the configured overrides.
pub fn relying_party(rp: &RelyingParty, public_url: &str, name: &str) -> Result<Webauthn, String> {
    let public = Url::parse(public_url).map_err(|e| format!("public URL: {e}"))?;
    let id = if rp.id.is_empty() {
        public
            .host_str()
            .ok_or("the public URL has no host")?
            .to_owned()
    } else {
        rp.id.clone()
    };
    let origins: Vec<Url> = if rp.origins.is_empty() {
        vec![public]
    } else {
        rp.origins
            .iter()
            .map(|o| Url::parse(o).map_err(|e| format!("WebAuthn origin {o:?}: {e}")))
            .collect::<Result<_, _>>()?
    };
    let mut builder = WebauthnBuilder::new(&id, &origins[0])
        .map_err(|e| format!("WebAuthn relying party {id:?}: {e}"))?
        .rp_name(name);
    for o in &origins[1..] {
        builder = builder.append_allowed_origin(o);
    }
    builder
        .build()
        .map_err(|e| format!("WebAuthn relying party {id:?}: {e}"))
}

/// `hwk` for a key bound to one device, `swk` for a synchronised passkey (backup eligible),
/// plus `user` when the authenticator verified the person (PIN or biometrics).
pub fn amr(backup_eligible: bool, user_verified: bool) -> Vec<String> {
    let mut v = vec![if backup_eligible { "swk" } else { "hwk" }.to_owned()];
    if user_verified {
        v.push("user".into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relying_party_defaults_to_the_public_url() {
        assert!(relying_party(&RelyingParty::default(), "http://localhost:8080", "T").is_ok());
        assert!(relying_party(&RelyingParty::default(), "https://login.example.com", "T").is_ok());
        let other = RelyingParty {
            id: "example.com".into(),
            origins: vec![
                "https://login.example.com".into(),
                "https://app.example.com".into(),
            ],
        };
        assert!(relying_party(&other, "https://login.example.com", "T").is_ok());
        let wrong = RelyingParty {
            id: "evil.example".into(),
            origins: vec![],
        };
        assert!(relying_party(&wrong, "https://login.example.com", "T").is_err());
    }

    #[test]
    fn amr_values() {
        assert_eq!(amr(false, true), ["hwk", "user"]);
        assert_eq!(amr(true, true), ["swk", "user"]);
        assert_eq!(amr(false, false), ["hwk"]);
    }
}
