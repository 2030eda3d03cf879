//! The OpenID Connect token side: the token endpoint (code and refresh-token grants), userinfo,
//! and the signing keys behind the JWK Set. Refresh tokens rotate on every use; a used one
//! coming back revokes its whole family, and a changed security stamp ends them all.

use super::Core;
use crate::error::CoreError;
use crate::model::{Account, RequestMeta};
use crate::oidc::OidcClient;
use crate::oidc::jwt::{self, SigningAlg, SigningKey};
use crate::oidc::{IdTokenClaims, is_pkce_value, s256};
use crate::ports::{NewOidcToken, OidcTokenKind, OidcTokenRecord, Redemption, SigningKeyRecord};
use crate::token::TokenPurpose;
use jsonwebtoken::jwk::JwkSet;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;

/// How the client authenticated: `client_secret_basic`, `client_secret_post`, or a public
/// client's bare `client_id`.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<SecretString>,
}

/// The form of `/oidc/token`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    pub id_token: String,
    pub scope: String,
}

/// An error in OAuth 2.0's own shape (RFC 6749 §5.2), which token and userinfo clients expect
/// instead of problem+json.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            description: description.into(),
        }
    }

    fn grant(description: &str) -> Self {
        Self::new("invalid_grant", description)
    }
}

impl From<CoreError> for OAuthError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "token endpoint: dependency unavailable");
                Self::new("temporarily_unavailable", "try again later")
            }
            CoreError::Busy { .. } => Self::new("temporarily_unavailable", "try again later"),
            other => {
                tracing::error!(error = %other, "token endpoint failed");
                Self::new("server_error", "internal error")
            }
        }
    }
}

impl Core {
    /// The token endpoint.
    pub async fn oidc_token(
        &self,
        creds: &ClientCredentials,
        req: &TokenRequest,
        meta: &RequestMeta,
    ) -> Result<TokenResponse, OAuthError> {
        let client = self.authenticate_client(creds).await?;
        let access = self.new_secret();
        let refresh = self.new_secret();
        let now = self.clock.now();
        let tokens = [
            NewOidcToken {
                hash: self.hash_token(TokenPurpose::OidcAccess, access.expose_secret().as_bytes()),
                kind: OidcTokenKind::Access,
                expires_at: now + self.settings.oidc.access_token_ttl,
            },
            NewOidcToken {
                hash: self.hash_token(
                    TokenPurpose::OidcRefresh,
                    refresh.expose_secret().as_bytes(),
                ),
                kind: OidcTokenKind::Refresh,
                expires_at: now + self.settings.oidc.refresh_token_ttl,
            },
        ];
        let (redemption, from_code) = match req.grant_type.as_deref() {
            Some("authorization_code") => {
                let code = req
                    .code
                    .as_deref()
                    .ok_or_else(|| OAuthError::new("invalid_request", "code is missing"))?;
                let challenge = match req.code_verifier.as_deref() {
                    Some(v) if is_pkce_value(v) => s256(v),
                    Some(_) => return Err(OAuthError::grant("malformed code_verifier")),
                    None => String::new(),
                };
                let hash = self.hash_token(TokenPurpose::OidcCode, code.as_bytes());
                let redemption = self
                    .store
                    .redeem_code(
                        &hash,
                        &creds.client_id,
                        req.redirect_uri.as_deref().unwrap_or_default(),
                        &challenge,
                        now,
                        &tokens,
                    )
                    .await
                    .map_err(CoreError::from)?;
                (redemption, true)
            }
            Some("refresh_token") => {
                let token = req.refresh_token.as_deref().ok_or_else(|| {
                    OAuthError::new("invalid_request", "refresh_token is missing")
                })?;
                let hash = self.hash_token(TokenPurpose::OidcRefresh, token.as_bytes());
                let redemption = self
                    .store
                    .rotate_refresh_token(&hash, &creds.client_id, now, &tokens)
                    .await
                    .map_err(CoreError::from)?;
                (redemption, false)
            }
            _ => {
                return Err(OAuthError::new(
                    "unsupported_grant_type",
                    "use authorization_code or refresh_token",
                ));
            }
        };
        let record = match redemption {
            Redemption::Granted(r) => r,
            Redemption::Replayed {
                family_id,
                account_id,
            } => {
                let revoked = self
                    .store
                    .revoke_token_family(family_id, now)
                    .await
                    .map_err(CoreError::from)?;
                let event = if from_code {
                    "oidc_code_replayed"
                } else {
                    "oidc_refresh_token_reused"
                };
                tracing::warn!(client_id = %creds.client_id, %family_id, revoked, "{event}: token family revoked");
                let audit = self.audit(
                    event,
                    Some(account_id),
                    meta,
                    json!({ "client_id": creds.client_id, "revoked_tokens": revoked }),
                );
                self.store
                    .record_audit(&audit)
                    .await
                    .map_err(CoreError::from)?;
                return Err(OAuthError::grant("this grant was used before"));
            }
            Redemption::Invalid => {
                return Err(OAuthError::grant(
                    "the grant is invalid, expired, or was issued to another client",
                ));
            }
        };
        let account = self.grant_account(&record).await?;
        let id_token = self
            .id_token(&account, &record, client.id_token_alg, from_code)
            .await?;
        let audit = self.audit(
            "oidc_tokens_issued",
            Some(account.id),
            meta,
            json!({ "client_id": creds.client_id, "grant_type": if from_code { "authorization_code" } else { "refresh_token" } }),
        );
        self.store
            .record_audit(&audit)
            .await
            .map_err(CoreError::from)?;
        Ok(TokenResponse {
            access_token: access.expose_secret().to_owned(),
            token_type: "Bearer",
            expires_in: self.settings.oidc.access_token_ttl.whole_seconds(),
            refresh_token: refresh.expose_secret().to_owned(),
            id_token,
            scope: record.grant.scope.join(" "),
        })
    }

    /// The account a grant speaks for, if it still may: a password change, a reset or a
    /// factor change (a new security stamp) ends every grant given before.
    async fn grant_account(&self, record: &OidcTokenRecord) -> Result<Account, OAuthError> {
        let account = self
            .store
            .account_by_id(record.account_id)
            .await
            .map_err(CoreError::from)?;
        match account {
            Some(a) if a.security_stamp == record.security_stamp && !a.is_locked() => Ok(a),
            _ => {
                self.store
                    .revoke_token_family(record.family_id, self.clock.now())
                    .await
                    .map_err(CoreError::from)?;
                Err(OAuthError::grant(
                    "the account's credentials changed since this grant",
                ))
            }
        }
    }

    async fn authenticate_client(
        &self,
        creds: &ClientCredentials,
    ) -> Result<OidcClient, OAuthError> {
        use subtle::ConstantTimeEq;
        let bad = || OAuthError::new("invalid_client", "client authentication failed");
        let (client, secret_hash) = self
            .store
            .oidc_client(&creds.client_id)
            .await
            .map_err(CoreError::from)?
            .ok_or_else(bad)?;
        match (secret_hash, &creds.secret) {
            (None, None) => Ok(client),
            (Some(expected), Some(given)) => {
                let hash = self.hash_token(
                    TokenPurpose::OidcClientSecret,
                    given.expose_secret().as_bytes(),
                );
                if bool::from(hash.ct_eq(&expected)) {
                    Ok(client)
                } else {
                    Err(bad())
                }
            }
            _ => Err(bad()),
        }
    }

    async fn id_token(
        &self,
        account: &Account,
        record: &OidcTokenRecord,
        alg: SigningAlg,
        with_nonce: bool,
    ) -> Result<String, OAuthError> {
        let now = self.clock.now().unix_timestamp();
        let grant = &record.grant;
        let email = grant.has_scope("email");
        let claims = IdTokenClaims {
            iss: self.settings.public_url.clone(),
            sub: account.id.to_string(),
            aud: record.client_id.clone(),
            azp: record.client_id.clone(),
            exp: now + self.settings.oidc.id_token_ttl.whole_seconds(),
            iat: now,
            auth_time: grant.auth_time.unix_timestamp(),
            nonce: grant.nonce.clone().filter(|_| with_nonce),
            amr: grant.amr.clone(),
            acr: grant.acr.clone(),
            sid: grant.session_id.to_string(),
            email: email.then(|| account.email.clone()),
            email_verified: email.then_some(account.email_verified_at.is_some()),
        };
        let key = self.active_signing_key(alg).await?;
        key.sign(&claims)
            .map_err(|e| OAuthError::from(CoreError::Internal(e.to_string())))
    }

    /// The userinfo endpoint: the claims an access token's scope allows.
    pub async fn oidc_userinfo(&self, access_token: &str) -> Result<serde_json::Value, OAuthError> {
        let invalid = || OAuthError::new("invalid_token", "the access token is not valid");
        let hash = self.hash_token(TokenPurpose::OidcAccess, access_token.as_bytes());
        let record = self
            .store
            .oidc_access_token(&hash, self.clock.now())
            .await
            .map_err(CoreError::from)?
            .ok_or_else(invalid)?;
        let account = self.grant_account(&record).await.map_err(|_| invalid())?;
        let mut claims = json!({ "sub": account.id.to_string() });
        if record.grant.has_scope("email") {
            claims["email"] = json!(account.email);
            claims["email_verified"] = json!(account.email_verified_at.is_some());
        }
        Ok(claims)
    }

    /// The key that signs new tokens with `alg`; the first one is made on first use.
    async fn active_signing_key(&self, alg: SigningAlg) -> Result<SigningKey, CoreError> {
        let keys = self.store.signing_keys().await?;
        let record = match keys
            .into_iter()
            .find(|k| k.alg == alg && k.retired_at.is_none())
        {
            Some(r) => r,
            None => self.new_signing_key(alg).await?,
        };
        self.open_signing_key(&record)
    }

    fn open_signing_key(&self, record: &SigningKeyRecord) -> Result<SigningKey, CoreError> {
        let der = self
            .open_sealed(record.id.as_bytes(), &record.sealed)
            .map_err(|e| CoreError::Internal(format!("cannot open signing key: {e}")))?;
        SigningKey::from_der(&record.id.to_string(), record.alg, &der)
            .map_err(|e| CoreError::Internal(e.to_string()))
    }

    /// An RS256 key for a client that needs one, so it is in the JWK Set before the first
    /// token it signs.
    pub(super) async fn ensure_signing_key(&self, alg: SigningAlg) -> Result<(), CoreError> {
        self.active_signing_key(alg).await.map(|_| ())
    }

    /// Makes new signing keys (ES256, and RS256 where clients use it) and retires the current
    /// ones, which stay published for `oidc.retired_key_ttl` so tokens they signed verify.
    pub async fn rotate_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, CoreError> {
        let in_use: std::collections::HashSet<SigningAlg> = self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .map(|k| k.alg)
            .chain([SigningAlg::Es256])
            .collect();
        let mut made = Vec::new();
        for alg in SigningAlg::ALL {
            if in_use.contains(&alg) {
                made.push(self.new_signing_key(alg).await?);
            }
        }
        Ok(made)
    }

    async fn new_signing_key(&self, alg: SigningAlg) -> Result<SigningKeyRecord, CoreError> {
        let id = self.new_id();
        // RSA key generation takes a while; it must not stall other requests on this thread.
        let random = self.random.clone();
        let der = tokio::task::spawn_blocking(move || jwt::generate(alg, random.as_ref()))
            .await
            .map_err(|e| CoreError::Internal(format!("key generation: {e}")))?
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        let sealed = self
            .keyring()
            .seal(self.random.as_ref(), id.as_bytes(), &der);
        let record = SigningKeyRecord {
            id,
            alg,
            sealed,
            created_at: self.clock.now(),
            retired_at: None,
        };
        self.store.add_signing_key(&record).await?;
        tracing::info!(kid = %id, alg = alg.as_str(), "new token signing key");
        Ok(record)
    }

    /// Housekeeping: forgets codes, tokens and pending requests a day after they expired (a
    /// replayed code within that day still finds its family to revoke).
    pub async fn purge_oidc(&self) -> Result<u64, CoreError> {
        let before = self.clock.now() - time::Duration::days(1);
        Ok(self.store.purge_oidc(before).await?)
    }

    /// The JWK Set: the signing key and recently retired ones.
    pub async fn oidc_jwks(&self) -> Result<JwkSet, CoreError> {
        // Makes the first key, so an application can fetch the set before any sign-in.
        self.active_signing_key(SigningAlg::Es256).await?;
        let cutoff = self.clock.now() - self.settings.oidc.retired_key_ttl;
        let mut keys = Vec::new();
        for record in self.store.signing_keys().await? {
            if record.retired_at.is_some_and(|at| at < cutoff) {
                continue;
            }
            let key = self.open_signing_key(&record)?;
            keys.push(
                key.public_jwk()
                    .map_err(|e| CoreError::Internal(e.to_string()))?,
            );
        }
        Ok(JwkSet { keys })
    }

    /// Claims of an ID token Twofold signed (expired ones too: a logout hint may be old).
    pub(super) async fn verify_own_token(&self, token: &str) -> Result<IdTokenClaims, CoreError> {
        let set = self.oidc_jwks().await?;
        jwt::verify(token, &set, &self.settings.public_url, true)
            .map_err(|_| CoreError::InvalidToken)
    }
}
