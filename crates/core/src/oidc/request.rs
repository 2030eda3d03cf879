//! The authorization request (OpenID Connect Core §3.1.2.1, RFC 7636): what the application
//! asked for, checked before anyone signs in.

use super::{OidcClient, SCOPES, is_pkce_value, level_of_acr};
use crate::assurance::Assurance;
use serde::{Deserialize, Serialize};

/// The query (or form) of `/oidc/authorize`, as sent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub acr_values: Option<String>,
    pub response_mode: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// No page may be shown: answer at once, with an error if the user must act.
    pub none: bool,
    /// Sign in again even with a session.
    pub login: bool,
    /// Ask for consent even when it was given before.
    pub consent: bool,
}

/// A request that passed every check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    /// The assurance `acr_values` asks for (its first value Twofold knows).
    pub acr: Option<Assurance>,
    /// Set once the user allowed this very request on the consent screen.
    #[serde(default)]
    pub consented: bool,
    /// The session a sign-in asked for by `prompt=login` or `max_age` is to replace. It
    /// ends only once that sign-in has succeeded: any site can start a request, and must
    /// not be able to sign anyone out by it.
    #[serde(default)]
    pub replaces: Option<ReplacedSession>,
}

/// A session to end once the fresh sign-in of the same request has succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplacedSession {
    pub account_id: crate::model::AccountId,
    pub session_id: crate::model::SessionId,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The client or its redirect URI is unknown: the browser must not be sent anywhere
    /// (that would be an open redirect), so the user sees the reason.
    Fatal(&'static str),
    /// Sent back to the application's redirect URI as `error` and `error_description`.
    Redirect {
        error: &'static str,
        description: String,
    },
}

fn redirect(error: &'static str, description: impl Into<String>) -> RequestError {
    RequestError::Redirect {
        error,
        description: description.into(),
    }
}

/// Checks a request against the client it names (`None`: no such client).
pub fn check_request(
    p: &AuthorizeParams,
    client: Option<&OidcClient>,
) -> Result<AuthRequest, RequestError> {
    let client = client.ok_or(RequestError::Fatal(
        "The application that sent you here is not registered.",
    ))?;
    let redirect_uri = p.redirect_uri.as_deref().unwrap_or_default();
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(RequestError::Fatal(
            "The application asked to return to an address it has not registered.",
        ));
    }
    // From here on errors go back to the application.
    if p.request.is_some() {
        return Err(redirect(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if p.request_uri.is_some() {
        return Err(redirect(
            "request_uri_not_supported",
            "request_uri is not supported",
        ));
    }
    if p.response_type.as_deref() != Some("code") {
        return Err(redirect(
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    if p.response_mode.as_deref().is_some_and(|m| m != "query") {
        return Err(redirect(
            "invalid_request",
            "only response_mode=query is supported",
        ));
    }
    let asked: Vec<&str> = p
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    if !asked.contains(&"openid") {
        return Err(redirect("invalid_scope", "the scope must include openid"));
    }
    let mut scope: Vec<String> = Vec::new();
    for s in SCOPES {
        if asked.contains(&s) {
            scope.push(s.to_owned());
        }
    }
    let code_challenge = match (
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    ) {
        (Some(c), Some("S256")) if is_pkce_value(c) => Some(c.to_owned()),
        (Some(_), Some("S256")) => {
            return Err(redirect("invalid_request", "malformed code_challenge"));
        }
        (Some(_), _) => {
            return Err(redirect(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        (None, Some(_)) => {
            return Err(redirect(
                "invalid_request",
                "code_challenge_method without code_challenge",
            ));
        }
        (None, None) if !client.confidential => {
            return Err(redirect(
                "invalid_request",
                "public clients must use PKCE (S256)",
            ));
        }
        (None, None) => None,
    };
    let mut prompt = Prompt::default();
    for value in p.prompt.as_deref().unwrap_or_default().split(' ') {
        match value {
            "" | "select_account" => {}
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            other => {
                return Err(redirect(
                    "invalid_request",
                    format!("unknown prompt value {other:?}"),
                ));
            }
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(redirect(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match p.max_age.as_deref() {
        None | Some("") => None,
        Some(v) => Some(
            v.parse::<u32>()
                .map_err(|_| redirect("invalid_request", "max_age must be a number of seconds"))?
                .into(),
        ),
    };
    let acr = p
        .acr_values
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .find_map(level_of_acr);
    let bounded = |v: &Option<String>, name: &str| match v {
        Some(s) if s.len() > 512 => Err(redirect("invalid_request", format!("{name} is too long"))),
        _ => Ok(v.clone()),
    };
    Ok(AuthRequest {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state: bounded(&p.state, "state")?,
        nonce: bounded(&p.nonce, "nonce")?,
        code_challenge,
        prompt,
        max_age,
        acr,
        consented: false,
        replaces: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn client(confidential: bool) -> OidcClient {
        OidcClient {
            id: "app".into(),
            name: "App".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            post_logout_redirect_uris: vec![],
            confidential,
            first_party: true,
            id_token_alg: Default::default(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn params() -> AuthorizeParams {
        AuthorizeParams {
            response_type: Some("code".into()),
            client_id: Some("app".into()),
            redirect_uri: Some("https://app.example/cb".into()),
            scope: Some("openid email profile".into()),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some("S256".into()),
            ..Default::default()
        }
    }

    fn error_of(p: &AuthorizeParams, c: &OidcClient) -> &'static str {
        match check_request(p, Some(c)) {
            Err(RequestError::Redirect { error, .. }) => error,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_good_request_keeps_known_scopes() {
        let r = check_request(&params(), Some(&client(false))).unwrap();
        assert_eq!(r.scope, ["openid", "email"]);
        assert_eq!(r.acr, None);
    }

    #[test]
    fn unknown_client_or_redirect_uri_is_never_redirected_to() {
        assert!(matches!(
            check_request(&params(), None),
            Err(RequestError::Fatal(_))
        ));
        for uri in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://evil.example/cb",
            "",
        ] {
            let mut p = params();
            p.redirect_uri = Some(uri.into());
            assert!(matches!(
                check_request(&p, Some(&client(true))),
                Err(RequestError::Fatal(_))
            ));
        }
    }

    #[test]
    fn pkce_is_s256_and_required_for_public_clients() {
        let mut p = params();
        p.code_challenge_method = Some("plain".into());
        assert_eq!(error_of(&p, &client(true)), "invalid_request");
        let mut p = params();
        p.code_challenge = None;
        p.code_challenge_method = None;
        assert_eq!(error_of(&p, &client(false)), "invalid_request");
        assert!(check_request(&p, Some(&client(true))).is_ok());
    }

    #[test]
    fn prompt_max_age_and_acr_values() {
        let mut p = params();
        p.prompt = Some("none login".into());
        assert_eq!(error_of(&p, &client(true)), "invalid_request");
        p.prompt = Some("login consent".into());
        p.max_age = Some("300".into());
        p.acr_values = Some("urn:unknown phr aal1".into());
        let r = check_request(&p, Some(&client(true))).unwrap();
        assert!(r.prompt.login && r.prompt.consent && !r.prompt.none);
        assert_eq!(r.max_age, Some(300));
        assert_eq!(r.acr, Some(Assurance::PhishingResistant));
        p.max_age = Some("-1".into());
        assert_eq!(error_of(&p, &client(true)), "invalid_request");
        let mut p = params();
        p.scope = Some("email".into());
        assert_eq!(error_of(&p, &client(true)), "invalid_scope");
        let mut p = params();
        p.response_type = Some("token".into());
        assert_eq!(error_of(&p, &client(true)), "unsupported_response_type");
    }
}
