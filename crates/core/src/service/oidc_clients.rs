//! Applications registered with the OpenID Connect provider (`twofold client add | list |
//! remove`). A client secret is shown once and stored only as a keyed hash.

use super::Core;
use crate::error::CoreError;
use crate::model::RequestMeta;
use crate::oidc::OidcClient;
use crate::token::TokenPurpose;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

/// What `twofold client add` asks for.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// A server-side app that can keep a secret.
    pub confidential: bool,
    pub first_party: bool,
    pub id_token_alg: crate::oidc::jwt::SigningAlg,
}

/// An address Twofold may send a browser to with a code: absolute, no fragment, and https
/// unless it is this machine (development) or an app's own scheme (`com.example.app:/cb`).
fn check_uri(uri: &str) -> Result<(), CoreError> {
    let url = url::Url::parse(uri)
        .map_err(|e| CoreError::invalid("redirect_uri", format!("{uri:?} is not a URL: {e}")))?;
    if url.fragment().is_some() {
        return Err(CoreError::invalid(
            "redirect_uri",
            format!("{uri:?} must not have a fragment"),
        ));
    }
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(CoreError::invalid(
            "redirect_uri",
            format!("{uri:?} must use https"),
        )),
        "javascript" | "data" | "file" | "vbscript" => Err(CoreError::invalid(
            "redirect_uri",
            format!("{uri:?} is not an address an app can receive a code at"),
        )),
        _ => Ok(()),
    }
}

impl Core {
    pub async fn oidc_add_client(
        &self,
        new: NewClient,
        meta: &RequestMeta,
    ) -> Result<(OidcClient, Option<SecretString>), CoreError> {
        if new.name.trim().is_empty() {
            return Err(CoreError::invalid("name", "A client needs a name."));
        }
        if new.redirect_uris.is_empty() {
            return Err(CoreError::invalid(
                "redirect_uri",
                "A client needs at least one redirect URI.",
            ));
        }
        for uri in new
            .redirect_uris
            .iter()
            .chain(&new.post_logout_redirect_uris)
        {
            check_uri(uri)?;
        }
        let client = OidcClient {
            id: self.new_id().to_string(),
            name: new.name.trim().to_owned(),
            redirect_uris: new.redirect_uris,
            post_logout_redirect_uris: new.post_logout_redirect_uris,
            confidential: new.confidential,
            first_party: new.first_party,
            id_token_alg: new.id_token_alg,
            created_at: self.clock.now(),
        };
        self.ensure_signing_key(client.id_token_alg).await?;
        let secret = new.confidential.then(|| self.new_secret());
        let hash = secret
            .as_ref()
            .map(|s| self.hash_token(TokenPurpose::OidcClientSecret, s.expose_secret().as_bytes()));
        self.store
            .create_oidc_client(&client, hash.as_deref())
            .await?;
        let audit = self.audit(
            "oidc_client_added",
            None,
            meta,
            json!({ "client_id": client.id, "name": client.name, "confidential": client.confidential, "first_party": client.first_party, "id_token_alg": client.id_token_alg.as_str() }),
        );
        self.store.record_audit(&audit).await?;
        Ok((client, secret))
    }

    pub async fn oidc_clients(&self) -> Result<Vec<OidcClient>, CoreError> {
        Ok(self.store.oidc_clients().await?)
    }

    /// Removes a client and everything it was given (codes, tokens, consents).
    pub async fn oidc_remove_client(&self, id: &str, meta: &RequestMeta) -> Result<(), CoreError> {
        if !self.store.remove_oidc_client(id).await? {
            return Err(CoreError::NotFound);
        }
        let audit = self.audit(
            "oidc_client_removed",
            None,
            meta,
            json!({ "client_id": id }),
        );
        self.store.record_audit(&audit).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check_uri;

    #[test]
    fn redirect_uris_must_be_safe_destinations() {
        for ok in [
            "https://app.example/cb",
            "http://localhost:3000/cb",
            "http://127.0.0.1/cb",
            "com.example.app:/oauth",
        ] {
            assert!(check_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#x",
            "javascript:alert(1)",
            "/relative",
            "",
        ] {
            assert!(check_uri(bad).is_err(), "{bad}");
        }
    }
}
