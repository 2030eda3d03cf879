//! Token signing keys and JWTs (jsonwebtoken with its pure-Rust backend). Keys are ES256
//! (P-256, PKCS#8 DER) by default and RS256 (RSA 2048, PKCS#1 DER) for relying parties that
//! know nothing else; generated from the injected randomness, stored sealed, published as a
//! JWK Set. Separate from the data-encryption keys, which only seal them.

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

/// How ID tokens are signed for a client.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum SigningAlg {
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    #[serde(rename = "RS256")]
    Rs256,
}

impl SigningAlg {
    pub const ALL: [Self; 2] = [Self::Es256, Self::Rs256];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    fn algorithm(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
        }
    }
}

/// A new private key for `alg`, as the DER its [`SigningKey`] reads.
pub fn generate(alg: SigningAlg, random: &dyn Random) -> Result<Zeroizing<Vec<u8>>, JwtError> {
    match alg {
        SigningAlg::Es256 => generate_es256(random),
        SigningAlg::Rs256 => generate_rs256(random),
    }
}

/// The injected randomness for the RustCrypto generation `rsa` 0.9 uses.
struct Rng06<'a>(&'a dyn Random);

impl rsa::rand_core::RngCore for Rng06<'_> {
    fn next_u32(&mut self) -> u32 {
        u32::from_le_bytes(random_bytes(self.0))
    }
    fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes(random_bytes(self.0))
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for Rng06<'_> {}

fn generate_rs256(random: &dyn Random) -> Result<Zeroizing<Vec<u8>>, JwtError> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut Rng06(random), 2048)
        .map_err(|e| JwtError::Key(e.to_string()))?;
    let der = key
        .to_pkcs1_der()
        .map_err(|e| JwtError::Key(e.to_string()))?;
    Ok(Zeroizing::new(der.as_bytes().to_vec()))
}

/// A new P-256 private key as PKCS#8 DER.
fn generate_es256(random: &dyn Random) -> Result<Zeroizing<Vec<u8>>, JwtError> {
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
    pub alg: SigningAlg,
    encoding: EncodingKey,
}

impl SigningKey {
    pub fn from_der(kid: &str, alg: SigningAlg, der: &[u8]) -> Result<Self, JwtError> {
        let encoding = match alg {
            SigningAlg::Es256 => EncodingKey::from_ec_der(der),
            SigningAlg::Rs256 => EncodingKey::from_rsa_der(der),
        };
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            encoding,
        })
    }

    /// The public half, as published in the JWK Set.
    pub fn public_jwk(&self) -> Result<Jwk, JwtError> {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg.algorithm())?;
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(jwk)
    }

    pub fn sign(&self, claims: &impl Serialize) -> Result<String, JwtError> {
        let mut header = Header::new(self.alg.algorithm());
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
    let alg = SigningAlg::ALL
        .into_iter()
        .find(|a| a.algorithm() == header.alg)
        .ok_or_else(|| JwtError::Key("unexpected algorithm".into()))?;
    let jwk = header
        .kid
        .as_deref()
        .and_then(|kid| keys.find(kid))
        .ok_or_else(|| JwtError::Key("unknown key id".into()))?;
    let key = DecodingKey::from_jwk(jwk)?;
    if jwk.common.key_algorithm.map(|k| k.to_string()) != Some(alg.as_str().to_owned()) {
        return Err(JwtError::Key("the key is for another algorithm".into()));
    }
    let mut validation = Validation::new(alg.algorithm());
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
    fn rs256_keys_sign_too() {
        let der = generate(SigningAlg::Rs256, &OsRandom).unwrap();
        let key = SigningKey::from_der("r1", SigningAlg::Rs256, &der).unwrap();
        let jwk = key.public_jwk().unwrap();
        let set = JwkSet { keys: vec![jwk] };
        let claims = Claims {
            iss: "https://id.example".into(),
            sub: "a".into(),
            exp: 4_000_000_000,
        };
        let token = key.sign(&claims).unwrap();
        assert!(token.starts_with("eyJ"));
        let back: Claims = verify(&token, &set, "https://id.example", false).unwrap();
        assert_eq!(back, claims);
    }

    #[test]
    fn signs_and_verifies_against_the_published_set() {
        let der = generate_es256(&OsRandom).unwrap();
        let key = SigningKey::from_der("k1", SigningAlg::Es256, &der).unwrap();
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
        let other =
            SigningKey::from_der("k1", SigningAlg::Es256, &generate_es256(&OsRandom).unwrap())
                .unwrap();
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
