//! Token signing keys and JWTs (jsonwebtoken with its pure-Rust backend). Keys are ES256
//! (P-256): generated from the injected randomness, stored sealed as PKCS#8 DER, published as
//! a JWK Set. Separate from the data-encryption keys, which only seal them.

use crate::random::{Random, random_bytes};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::EncodePrivateKey;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("signing key: {0}")]
    Key(String),
    #[error("jwt: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// A new P-256 private key as PKCS#8 DER.
pub fn generate_es256(random: &dyn Random) -> Result<Zeroizing<Vec<u8>>, JwtError> {
    // A random 256-bit string is a valid scalar except with negligible probability
    // (zero or ≥ the group order); draw again then.
    for _ in 0..8 {
        let bytes = Zeroizing::new(random_bytes::<32>(random));
        if let Ok(secret) = p256::SecretKey::from_slice(bytes.as_slice()) {
            let der = secret
                .to_pkcs8_der()
                .map_err(|e| JwtError::Key(e.to_string()))?;
            return Ok(Zeroizing::new(der.as_bytes().to_vec()));
        }
    }
    Err(JwtError::Key(
        "the random source gave no valid scalar".into(),
    ))
}

/// A signing key, opened.
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
}

impl SigningKey {
    pub fn from_der(kid: &str, der: &[u8]) -> Result<Self, JwtError> {
        Ok(Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ec_der(der),
        })
    }

    /// The public half, as published in the JWK Set.
    pub fn public_jwk(&self) -> Result<Jwk, JwtError> {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, Algorithm::ES256)?;
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(jwk)
    }

    pub fn sign(&self, claims: &impl Serialize) -> Result<String, JwtError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}

/// Verifies a token Twofold signed with one of `keys` (the published set) for `issuer`. The
/// expiry is not checked when `allow_expired` (an `id_token_hint` at logout may be old).
pub fn verify<T: DeserializeOwned>(
    token: &str,
    keys: &JwkSet,
    issuer: &str,
    allow_expired: bool,
) -> Result<T, JwtError> {
    let header = jsonwebtoken::decode_header(token)?;
    if header.alg != Algorithm::ES256 {
        return Err(JwtError::Key("unexpected algorithm".into()));
    }
    let jwk = header
        .kid
        .as_deref()
        .and_then(|kid| keys.find(kid))
        .ok_or_else(|| JwtError::Key("unknown key id".into()))?;
    let key = DecodingKey::from_jwk(jwk)?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    validation.validate_exp = !allow_expired;
    validation.required_spec_claims.clear();
    Ok(jsonwebtoken::decode::<T>(token, &key, &validation)?.claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Claims {
        iss: String,
        sub: String,
        exp: i64,
    }

    #[test]
    fn signs_and_verifies_against_the_published_set() {
        let der = generate_es256(&OsRandom).unwrap();
        let key = SigningKey::from_der("k1", &der).unwrap();
        let set = JwkSet {
            keys: vec![key.public_jwk().unwrap()],
        };
        let claims = Claims {
            iss: "https://id.example".into(),
            sub: "a".into(),
            exp: 4_000_000_000,
        };
        let token = key.sign(&claims).unwrap();
        let back: Claims = verify(&token, &set, "https://id.example", false).unwrap();
        assert_eq!(back, claims);
        assert!(verify::<Claims>(&token, &set, "https://other.example", false).is_err());
        // Another key with the same kid does not verify it.
        let other = SigningKey::from_der("k1", &generate_es256(&OsRandom).unwrap()).unwrap();
        let forged = other.sign(&claims).unwrap();
        assert!(verify::<Claims>(&forged, &set, "https://id.example", false).is_err());
        // An expired token only passes where expiry does not matter.
        let old = key
            .sign(&Claims {
                exp: 1_000,
                ..claims
            })
            .unwrap();
        assert!(verify::<Claims>(&old, &set, "https://id.example", false).is_err());
        assert!(verify::<Claims>(&old, &set, "https://id.example", true).is_ok());
    }
}
