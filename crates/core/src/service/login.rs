use super::Core;
use crate::email::Email;
use crate::error::CoreError;
use crate::model::{Account, NewSession, RequestMeta, Session};
use crate::password::Verified;
use crate::token::{TokenPurpose, token_bytes};
use secrecy::SecretString;
use serde_json::json;

/// Where a login stands after the password step.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Fully signed in; `token` goes into the session cookie and nowhere else.
    SignedIn {
        token: SecretString,
        session: Box<Session>,
    },
}

impl Core {
    /// The password step. Unknown account, wrong password and a blocked budget all answer
    /// without revealing whether the account exists, and in the same time.
    pub async fn log_in(
        &self,
        email: &str,
        password: &SecretString,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome, CoreError> {
        let now = self.clock.now();
        let email = Email::parse(email).ok();
        let account = match &email {
            Some(e) => self.store.account_by_email(e.as_str()).await?,
            None => None,
        };
        let account_key = budget_key_account(account.as_ref(), email.as_ref());
        let ip_key = meta.ip.map(|ip| format!("login:ip:{ip}"));

        let budget_a = self.settings.login_budget_account;
        let budget_i = self.settings.login_budget_ip;
        let mut wait = budget_a.blocked_for(self.store.attempts(&account_key).await?, now);
        if let Some(k) = &ip_key {
            wait = wait.max(budget_i.blocked_for(self.store.attempts(k).await?, now));
        }
        if let Some(retry_after_secs) = wait {
            let audit = self.audit(
                "login_throttled",
                account.as_ref().map(|a| a.id),
                meta,
                json!({ "retry_after_secs": retry_after_secs }),
            );
            self.store.record_audit(&audit).await?;
            return Err(CoreError::TooManyAttempts { retry_after_secs });
        }

        let verified = match &account {
            Some(a) => self.hasher.verify(password, &a.password_hash).await?,
            None => {
                self.hasher.verify_dummy(password).await?;
                Verified::Invalid
            }
        };

        let (account, needs_rehash) = match (account, verified) {
            (Some(a), Verified::Valid { needs_rehash }) => (a, needs_rehash),
            (account, _) => {
                self.store
                    .record_failure(&account_key, now, now - budget_a.window)
                    .await?;
                if let Some(k) = &ip_key {
                    self.store
                        .record_failure(k, now, now - budget_i.window)
                        .await?;
                }
                let audit = self.audit(
                    "login_failed",
                    account.as_ref().map(|a| a.id),
                    meta,
                    json!({ "email": email.as_ref().map(|e| e.as_str()) }),
                );
                self.store.record_audit(&audit).await?;
                return Err(CoreError::InvalidCredentials);
            }
        };

        self.store.clear_attempts(&account_key).await?;
        if needs_rehash {
            let upgraded = self.hasher.hash(password).await?;
            self.store
                .upgrade_password_hash(account.id, &account.password_hash, &upgraded)
                .await?;
        }
        if !account.is_verified() {
            self.resend_verification(account.id, &account.email, meta)
                .await?;
            return Err(CoreError::EmailNotVerified);
        }
        let (token, session) = self
            .start_session(&account, vec!["pwd".into()], meta)
            .await?;
        Ok(LoginOutcome::SignedIn {
            token,
            session: Box::new(session),
        })
    }

    async fn start_session(
        &self,
        account: &Account,
        amr: Vec<String>,
        meta: &RequestMeta,
    ) -> Result<(SecretString, Session), CoreError> {
        let now = self.clock.now();
        let token = self.new_secret();
        let session = Session {
            id: self.new_id(),
            account_id: account.id,
            amr,
            auth_time: now,
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.settings.session_lifetime,
            ip: meta.ip_string(),
            user_agent: meta.user_agent_trimmed(),
            security_stamp: account.security_stamp.clone(),
        };
        let record = NewSession {
            session: session.clone(),
            token_hash: self.hash_token(TokenPurpose::Session, &token_bytes(&token)),
        };
        let audit = self.audit(
            "login_succeeded",
            Some(account.id),
            meta,
            json!({ "session_id": session.id, "amr": session.amr }),
        );
        self.store.create_session(&record, &audit).await?;
        Ok((token, session))
    }
}

/// Budgets key on the canonical account id; an address with no account keys on the address,
/// which behaves the same from outside.
fn budget_key_account(account: Option<&Account>, email: Option<&Email>) -> String {
    match (account, email) {
        (Some(a), _) => format!("login:account:{}", a.id),
        (None, Some(e)) => format!("login:email:{}", e.as_str()),
        (None, None) => "login:email:invalid".to_owned(),
    }
}
