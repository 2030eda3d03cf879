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
    /// Authenticator models (AAGUIDs) allowed to register; empty allows all. With a list,
    /// registration asks for direct attestation so browsers do not blank the AAGUID.
    pub allowed_aaguids: Vec<uuid::Uuid>,
}

/// The AAGUID (authenticator model) an attestation object reports: bytes 37–53 of its
/// `authData`, present when the attested-credential-data flag (0x40) is set.
pub fn reported_aaguid(attestation_object: &[u8]) -> Option<uuid::Uuid> {
    use serde_cbor_2::Value;
    let Value::Map(map) = serde_cbor_2::from_slice::<Value>(attestation_object).ok()? else {
        return None;
    };
    let Some(Value::Bytes(auth)) = map.get(&Value::Text("authData".into())) else {
        return None;
    };
    if auth.len() < 53 || auth[32] & 0x40 == 0 {
        return None;
    }
    uuid::Uuid::from_slice(&auth[37..53]).ok()
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
            allowed_aaguids: vec![],
        };
        assert!(relying_party(&other, "https://login.example.com", "T").is_ok());
        let wrong = RelyingParty {
            id: "evil.example".into(),
            origins: vec![],
            allowed_aaguids: vec![],
        };
        assert!(relying_party(&wrong, "https://login.example.com", "T").is_err());
    }

    #[test]
    fn aaguid_is_read_from_auth_data() {
        use serde_cbor_2::Value;
        let aaguid = uuid::Uuid::parse_str("cb69481e-8ff7-4039-93ec-0a2729a154a8").unwrap();
        let mut auth = vec![0u8; 32];
        auth.push(0x41); // user present, attested credential data
        auth.extend_from_slice(&[0, 0, 0, 1]);
        auth.extend_from_slice(aaguid.as_bytes());
        auth.extend_from_slice(&[0, 2, 9, 9]);
        let object = |auth: Vec<u8>| {
            let mut m = std::collections::BTreeMap::new();
            m.insert(Value::Text("fmt".into()), Value::Text("none".into()));
            m.insert(Value::Text("authData".into()), Value::Bytes(auth));
            serde_cbor_2::to_vec(&Value::Map(m)).unwrap()
        };
        assert_eq!(reported_aaguid(&object(auth.clone())), Some(aaguid));
        let mut no_flag = auth.clone();
        no_flag[32] = 0x01;
        assert_eq!(reported_aaguid(&object(no_flag)), None);
        assert_eq!(reported_aaguid(&object(auth[..40].to_vec())), None);
        assert_eq!(reported_aaguid(b"not cbor"), None);
    }

    #[test]
    fn amr_values() {
        assert_eq!(amr(false, true), ["hwk", "user"]);
        assert_eq!(amr(true, true), ["swk", "user"]);
        assert_eq!(amr(false, false), ["hwk"]);
    }
}
