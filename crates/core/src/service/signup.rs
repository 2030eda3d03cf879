use super::Core;
use crate::email::Email;
use crate::error::CoreError;
use crate::mail;
use crate::model::{AccountId, NewAccount, NewOutboxItem, NewToken, RequestMeta};
use crate::password::check_password_policy;
use crate::ports::{MailSpacing, StoreError};
use crate::token::{TokenPurpose, decode_token, token_bytes};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use time::Duration;

/// One verification mail a minute is plenty; more would let anyone mail-bomb the owner.
const VERIFY_MAIL_INTERVAL: Duration = Duration::minutes(1);

impl Core {
    /// Creates an unverified account and mails a verification link. An address that already
    /// has an account gets a notice instead; the caller sees the same answer either way.
    pub async fn sign_up(
        &self,
        email: &str,
        password: &SecretString,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let (email, account) = self.prepare_account(email, password, false).await?;
        let (token, verify) = self.verification_link(account.id, email.as_str())?;
        let audit = self.audit("signup", Some(account.id), meta, json!({}));
        match self
            .store
            .create_account(&account, Some(&token), Some(&verify), &audit)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => self.notify_taken_address(&email, meta).await?,
            Err(e) => return Err(e.into()),
        }
        self.outbox_wakeup.notify_one();
        Ok(())
    }

    /// Tells the owner of a taken address that someone tried to sign up with it: at most
    /// once per [`VERIFY_MAIL_INTERVAL`], like the verification and reset mails, however many
    /// sign-ups arrive at once.
    async fn notify_taken_address(
        &self,
        email: &Email,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let existing = self.store.account_by_email(email.as_str()).await?;
        let notice = self.outbox_item(
            "signup_existing",
            &mail::signup_existing_account(&self.branding(), email.as_str()),
        )?;
        let audit = self.audit(
            "signup_existing_address",
            existing.map(|a| a.id),
            meta,
            json!({}),
        );
        let now = self.clock.now();
        let spacing = MailSpacing {
            key: format!("signup_existing:{}", email.as_str()),
            now,
            last_at_or_before: now - VERIFY_MAIL_INTERVAL,
        };
        self.store
            .enqueue_spaced(&spacing, &notice, Some(&audit))
            .await?;
        Ok(())
    }

    /// Consumes a verification link token and marks the address verified.
    /// `device` is the device cookie of the browser that opened the link; it becomes known.
    pub async fn verify_email(
        &self,
        token: &str,
        device: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let bytes = decode_token(token).ok_or(CoreError::InvalidToken)?;
        let hash = self.hash_token(TokenPurpose::VerifyEmail, &bytes);
        let audit = self.audit("email_verified", None, meta, json!({}));
        let account = self
            .store
            .verify_email(&hash, self.clock.now(), &audit)
            .await?
            .ok_or(CoreError::InvalidToken)?;
        self.trust_device_of_link(account, device, meta).await
    }

    /// Sends a fresh verification link to an account that has not verified yet.
    pub(super) async fn resend_verification(
        &self,
        account: AccountId,
        email: &str,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        if let Some(last) = self
            .store
            .latest_token_at(account, TokenPurpose::VerifyEmail.as_str())
            .await?
            && self.clock.now() - last < VERIFY_MAIL_INTERVAL
        {
            return Ok(());
        }
        let (token, mail) = self.verification_link(account, email)?;
        let audit = self.audit("verification_resent", Some(account), meta, json!({}));
        self.store.issue_token(&token, &mail, Some(&audit)).await?;
        self.outbox_wakeup.notify_one();
        Ok(())
    }

    /// Operator path (CLI): creates an account directly, optionally already verified.
    pub async fn create_account_direct(
        &self,
        email: &str,
        password: &SecretString,
        verified: bool,
        meta: &RequestMeta,
    ) -> Result<AccountId, CoreError> {
        let (_, account) = self.prepare_account(email, password, verified).await?;
        let audit = self.audit(
            "account_created_by_operator",
            Some(account.id),
            meta,
            json!({}),
        );
        match self
            .store
            .create_account(&account, None, None, &audit)
            .await
        {
            Ok(()) => Ok(account.id),
            Err(StoreError::Conflict(_)) => Err(CoreError::invalid(
                "email",
                "An account with this email address already exists.",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Validates the address and password and hashes the password. The hash comes before any
    /// look-up of the address, so a taken and a free address cost the same.
    async fn prepare_account(
        &self,
        email: &str,
        password: &SecretString,
        verified: bool,
    ) -> Result<(Email, NewAccount), CoreError> {
        let email = Email::parse(email)?;
        check_password_policy(password.expose_secret(), email.as_str())?;
        let password_hash = self.hasher.hash(password).await?;
        let now = self.clock.now();
        let account = NewAccount {
            id: self.new_id(),
            email: email.as_str().to_owned(),
            password_hash,
            email_verified_at: verified.then_some(now),
            security_stamp: self.new_stamp(),
            created_at: now,
            two_factor_required: self.policy().await?.covers_new_accounts(),
        };
        Ok((email, account))
    }

    /// A new verification token and the sealed mail that carries its link.
    pub(super) fn verification_link(
        &self,
        account: AccountId,
        email: &str,
    ) -> Result<(NewToken, NewOutboxItem), CoreError> {
        let now = self.clock.now();
        let token = self.new_secret();
        let record = NewToken {
            id: self.new_id(),
            account_id: account,
            purpose: TokenPurpose::VerifyEmail.as_str(),
            token_hash: self.hash_token(TokenPurpose::VerifyEmail, &token_bytes(&token)),
            created_at: now,
            expires_at: now + self.settings.verify_email_ttl,
        };
        let mail = self.outbox_item(
            "verify_email",
            &mail::verify_email(&self.branding(), email, token.expose_secret()),
        )?;
        Ok((record, mail))
    }
}
