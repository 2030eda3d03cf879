//! Server-side key material: the data-encryption keys that seal secrets at rest, and the
//! key that turns tokens and codes into keyed hashes.

use crate::random::{Random, random_bytes};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key file is empty")]
    Empty,
    #[error("line {0} of the key file is not `ID:BASE64KEY` with a 32-byte key")]
    Malformed(usize),
    #[error("sealed with unknown key id {0}")]
    UnknownKey(String),
    #[error("sealed data failed authentication")]
    Tampered,
}

struct DataKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// All data-encryption keys (newest seals, every one still opens) and the token-hash key.
pub struct Keyring {
    keys: Vec<DataKey>,
    token_hash_key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring")
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

/// A sealed secret and the id of the key that sealed it, so keys can rotate without downtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub blob: Vec<u8>,
}

impl Keyring {
    /// A new key-file body with one fresh key.
    pub fn generate_file(random: &dyn Random) -> Zeroizing<String> {
        let key: Zeroizing<[u8; 32]> = Zeroizing::new(random_bytes(random));
        let id = hex_id(&random_bytes::<4>(random));
        Zeroizing::new(format!("{id}:{}\n", URL_SAFE_NO_PAD.encode(*key)))
    }

    /// Parses a key file: one `ID:BASE64URLKEY` per line; the last line seals new data.
    /// Token hashes derive from the first key, so adding a key never signs anybody out.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        let mut first_raw: Option<Zeroizing<Vec<u8>>> = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, b64) = line.split_once(':').ok_or(KeyError::Malformed(n + 1))?;
            let raw = Zeroizing::new(
                URL_SAFE_NO_PAD
                    .decode(b64.trim())
                    .map_err(|_| KeyError::Malformed(n + 1))?,
            );
            if raw.len() != 32 || id.is_empty() {
                return Err(KeyError::Malformed(n + 1));
            }
            let cipher =
                XChaCha20Poly1305::new_from_slice(&raw).map_err(|_| KeyError::Malformed(n + 1))?;
            keys.push(DataKey {
                id: id.trim().to_owned(),
                cipher,
            });
            if first_raw.is_none() {
                first_raw = Some(raw);
            }
        }
        let first = first_raw.ok_or(KeyError::Empty)?;
        let hk = Hkdf::<Sha256>::new(Some(b"twofold"), &first);
        let mut token_hash_key = Zeroizing::new([0u8; 32]);
        hk.expand(b"token-hash v1", token_hash_key.as_mut())
            .map_err(|_| KeyError::Empty)?;
        Ok(Self {
            keys,
            token_hash_key,
        })
    }

    /// A keyed hash (HMAC-SHA-256) of a token or code, bound to its purpose, for storage and lookup.
    pub fn token_hash(&self, purpose: &str, token: &[u8]) -> Vec<u8> {
        let Ok(mut mac) =
            <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.token_hash_key.as_ref())
        else {
            unreachable!("HMAC accepts keys of any length")
        };
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(token);
        mac.finalize().into_bytes().to_vec()
    }

    pub fn active_key_id(&self) -> &str {
        self.keys.last().map(|k| k.id.as_str()).unwrap_or_default()
    }

    /// Seals `plaintext` with the newest key; `context` is authenticated but not stored,
    /// so a sealed value copied to another record or purpose does not open.
    pub fn seal(&self, random: &dyn Random, context: &[u8], plaintext: &[u8]) -> Sealed {
        let Some(key) = self.keys.last() else {
            unreachable!("a keyring always has a key")
        };
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes(random);
        let nonce = XNonce::from(nonce_bytes);
        let Ok(ct) = key.cipher.encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: context,
            },
        ) else {
            unreachable!("XChaCha20-Poly1305 encryption only fails for messages over 256 GiB")
        };
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce_bytes);
        blob.extend_from_slice(&ct);
        Sealed {
            key_id: key.id.clone(),
            blob,
        }
    }

    pub fn open(&self, context: &[u8], sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| KeyError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.blob.len() < NONCE_LEN {
            return Err(KeyError::Tampered);
        }
        let (nonce, ct) = sealed.blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| KeyError::Tampered)?;
        key.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: context,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| KeyError::Tampered)
    }
}

fn hex_id(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn seal_open_round_trip_and_rotation() {
        let first = Keyring::generate_file(&OsRandom);
        let ring1 = Keyring::parse(&first).unwrap();
        let sealed = ring1.seal(&OsRandom, b"ctx", b"secret seed");
        assert_ne!(sealed.blob, b"secret seed");
        assert_eq!(&*ring1.open(b"ctx", &sealed).unwrap(), b"secret seed");
        assert!(ring1.open(b"other ctx", &sealed).is_err());

        let second = Keyring::generate_file(&OsRandom);
        let ring2 = Keyring::parse(&format!("{}{}", *first, *second)).unwrap();
        assert_ne!(ring2.active_key_id(), sealed.key_id);
        assert_eq!(&*ring2.open(b"ctx", &sealed).unwrap(), b"secret seed");
        // Token hashes survive adding a key.
        assert_eq!(ring1.token_hash("s", b"t"), ring2.token_hash("s", b"t"));
    }

    #[test]
    fn tampering_is_detected() {
        let ring = Keyring::parse(&Keyring::generate_file(&OsRandom)).unwrap();
        let mut sealed = ring.seal(&OsRandom, b"", b"x");
        let last = sealed.blob.len() - 1;
        sealed.blob[last] ^= 1;
        assert!(matches!(ring.open(b"", &sealed), Err(KeyError::Tampered)));
    }

    #[test]
    fn malformed_files_are_refused() {
        assert!(matches!(Keyring::parse(""), Err(KeyError::Empty)));
        assert!(matches!(Keyring::parse("abc"), Err(KeyError::Malformed(1))));
        assert!(matches!(
            Keyring::parse("a:AAAA"),
            Err(KeyError::Malformed(1))
        ));
    }

    #[test]
    fn token_hash_depends_on_purpose() {
        let ring = Keyring::parse(&Keyring::generate_file(&OsRandom)).unwrap();
        assert_ne!(ring.token_hash("a", b"t"), ring.token_hash("b", b"t"));
    }
}
