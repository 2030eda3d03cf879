use super::Core;
use super::attempts::Paid;
use super::devices::{DeviceGate, Sighting};
use crate::email::Email;
use crate::error::CoreError;
use crate::model::{Account, NewSession, RequestMeta, Session, SessionKind};
use crate::password::Verified;
use crate::ports::{DeviceRecord, LoginLookup};
use crate::throttle::AttemptKey;
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
    /// The password was right; `token` is a partial session that can only reach the second
    /// step. `methods` are the account's second factors, the last used first.
    SecondFactorRequired {
        token: SecretString,
        methods: Vec<String>,
    },
    /// The password was right, but the policy requires 2FA this account does not have yet:
    /// `token` is a forced-enrollment session that can only add a factor, of `methods`.
    EnrollmentRequired {
        token: SecretString,
        methods: Vec<&'static str>,
    },
    /// The password was right, from a browser or IP network this account has not used: a
    /// code went to the account's address (`hint`, masked), and `token` is a session that
    /// can only take it.
    DeviceVerificationRequired { token: SecretString, hint: String },
}

impl Core {
    /// The password step. Unknown account, wrong password and a blocked budget all answer
    /// without revealing whether the account exists, and in the same time.
    /// `trusted_browser` is the browser's "remember this browser" token, if it has one;
    /// `device` its device cookie (which makes it a known device).
    pub async fn log_in(
        &self,
        email: &str,
        password: &SecretString,
        trusted_browser: Option<&str>,
        device: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome, CoreError> {
        let result = self
            .password_step(email, password, trusted_browser, device, meta)
            .await;
        let outcome = match &result {
            Ok(LoginOutcome::SignedIn { .. }) => "signed_in",
            Ok(LoginOutcome::SecondFactorRequired { .. }) => "second_factor_required",
            Ok(LoginOutcome::EnrollmentRequired { .. }) => "enrollment_required",
            Ok(LoginOutcome::DeviceVerificationRequired { .. }) => "device_verification_required",
            Err(CoreError::InvalidCredentials) => "invalid_credentials",
            Err(CoreError::TooManyAttempts { .. }) => "throttled",
            Err(CoreError::EmailNotVerified) => "email_not_verified",
            Err(CoreError::Busy { .. }) => "shed",
            Err(_) => "error",
        };
        metrics::counter!("twofold_logins_total", "outcome" => outcome).increment(1);
        result
    }

    async fn password_step(
        &self,
        email: &str,
        password: &SecretString,
        trusted_browser: Option<&str>,
        device: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome, CoreError> {
        // Under a flood, refuse before touching the database.
        self.hasher.check_capacity()?;
        // A flood from one address, refused a moment ago, costs no lookup.
        if let Some(retry_after_secs) = meta
            .ip
            .and_then(|ip| self.remembered_refusal(&AttemptKey::LoginIp(ip)))
        {
            return Err(CoreError::TooManyAttempts { retry_after_secs });
        }
        let email = Email::parse(email).ok();
        let (device_hash, network) = self.sighting_keys(device, meta);
        let records = self
            .store
            .login_lookup(&LoginLookup {
                email: email.as_ref().map(Email::as_str),
                device_hash: &device_hash,
                network: network.as_deref(),
            })
            .await?;
        let account = records.account;
        let paid = self
            .pay_password_attempts(account.as_ref(), email, meta)
            .await?;
        let verified = match &account {
            Some(a) => self.hasher.verify(password, &a.password_hash).await,
            None => self
                .hasher
                .verify_dummy(password)
                .await
                .map(|()| Verified::Invalid),
        };
        let verified = match verified {
            Ok(verified) => verified,
            // Shed or failed before the password was compared: nothing was tried.
            Err(e) => {
                self.give_back(paid.account).await?;
                if let Some(ip) = paid.ip {
                    self.give_back(ip).await?;
                }
                return Err(e);
            }
        };

        let (account, needs_rehash) = match (account, verified) {
            // A locked account answers exactly like a wrong password (no oracle).
            (Some(a), Verified::Valid { needs_rehash }) if !a.is_locked() => (a, needs_rehash),
            (account, _) => {
                let audit = self.audit(
                    "login_failed",
                    account.as_ref().map(|a| a.id),
                    meta,
                    json!({ "email": paid.email.as_ref().map(|e| e.as_str()) }),
                );
                self.store.record_audit(&audit).await?;
                return Err(CoreError::InvalidCredentials);
            }
        };
        // The account's failures are forgotten; the address's attempt does not count.
        self.clear_paid(paid.account).await?;
        if let Some(ip) = paid.ip {
            self.give_back(ip).await?;
        }
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
        let sighting = Sighting {
            device_hash,
            network,
            seen: records.seen,
        };
        match self.device_gate(&account, sighting, meta).await? {
            DeviceGate::Confirm(outcome) => Ok(outcome),
            DeviceGate::Pass(device) => {
                self.after_password(&account, trusted_browser, meta, device.map(|d| *d))
                    .await
            }
        }
    }

    /// Pays for a password attempt against the account (or the address, when it has no
    /// account) and against the client's address, before the password is hashed. A refusal
    /// is audited and answered with the longer wait.
    async fn pay_password_attempts(
        &self,
        account: Option<&Account>,
        email: Option<Email>,
        meta: &RequestMeta,
    ) -> Result<PaidLogin, CoreError> {
        let account_key = match account {
            Some(a) => AttemptKey::Login(a.id),
            None => AttemptKey::LoginAddress(email.clone()),
        };
        // The client's address first: a flood from one address is refused there, before it
        // costs a reservation and a give-back on each account it tries.
        let ip = match meta.ip {
            Some(ip) => {
                match self
                    .try_pay(AttemptKey::LoginIp(ip), self.settings.login_budget_ip)
                    .await?
                {
                    Ok(paid) => Some(paid),
                    Err(refused) => {
                        return Err(self.login_throttled(account, refused, meta).await?);
                    }
                }
            }
            None => None,
        };
        match self
            .try_pay(account_key, self.settings.login_budget_account)
            .await?
        {
            Ok(paid) => Ok(PaidLogin {
                account: paid,
                ip,
                email,
            }),
            Err(refused) => {
                if let Some(ip) = ip {
                    self.give_back(ip).await?;
                }
                Err(self.login_throttled(account, refused, meta).await?)
            }
        }
    }

    /// The error a refused login answers with, audited when the database refused it (a
    /// refusal this node remembered is the same flood, already on record).
    async fn login_throttled(
        &self,
        account: Option<&Account>,
        refused: super::attempts::Refused,
        meta: &RequestMeta,
    ) -> Result<CoreError, CoreError> {
        let retry_after_secs = refused.retry_after_secs;
        if !refused.remembered {
            let audit = self.audit(
                "login_throttled",
                account.map(|a| a.id),
                meta,
                json!({ "retry_after_secs": retry_after_secs }),
            );
            self.store.record_audit(&audit).await?;
        }
        Ok(CoreError::TooManyAttempts { retry_after_secs })
    }

    /// What follows a correct password from a known browser and network: the second step,
    /// forced enrollment, a remembered browser's shortcut, or a full session. Whichever
    /// session it is records `device` with it.
    pub(super) async fn after_password(
        &self,
        account: &Account,
        trusted_browser: Option<&str>,
        meta: &RequestMeta,
        device: Option<DeviceRecord>,
    ) -> Result<LoginOutcome, CoreError> {
        // Operators the policy holds to keys: only a key counts, and nothing skips it.
        let keys_only = self.keys_only(account).await?;
        let mut methods = self.second_factor_methods(account).await?;
        if keys_only {
            methods.retain(|m| m == "webauthn");
        }
        if methods.is_empty() {
            // Only an account without a second factor needs the requirement read.
            let policy = self.policy().await?;
            if keys_only
                || policy.requirement(account.two_factor_required, self.clock.now())
                    == crate::policy::Requirement::Required
            {
                // No remembered browser skips this: it has no second factor to skip.
                let (token, _) = self
                    .start_session(
                        account,
                        SessionKind::Enrollment,
                        vec!["pwd".into()],
                        meta,
                        device,
                    )
                    .await?;
                return Ok(LoginOutcome::EnrollmentRequired {
                    token,
                    methods: self.methods_to_set_up(&policy, account.operator),
                });
            }
        }
        if !methods.is_empty()
            && !keys_only
            && self.is_trusted_browser(account, trusted_browser).await?
        {
            // A remembered browser skips the second factor; the session says only `pwd`, so
            // sensitive changes still ask for a fresh second factor.
            let (token, session) = self
                .start_session(account, SessionKind::Full, vec!["pwd".into()], meta, device)
                .await?;
            return Ok(LoginOutcome::SignedIn {
                token,
                session: Box::new(session),
            });
        }
        if !methods.is_empty() {
            let (token, _) = self
                .start_session(
                    account,
                    SessionKind::Partial,
                    vec!["pwd".into()],
                    meta,
                    device,
                )
                .await?;
            return Ok(LoginOutcome::SecondFactorRequired { token, methods });
        }
        let (token, session) = self
            .start_session(account, SessionKind::Full, vec!["pwd".into()], meta, device)
            .await?;
        Ok(LoginOutcome::SignedIn {
            token,
            session: Box::new(session),
        })
    }

    /// A new session record and its token, not yet stored.
    pub(super) fn new_session(
        &self,
        account: &Account,
        kind: SessionKind,
        amr: Vec<String>,
        meta: &RequestMeta,
    ) -> (SecretString, NewSession) {
        let now = self.clock.now();
        let token = self.new_secret();
        let lifetime = match kind {
            SessionKind::Full => self.settings.session_lifetime,
            SessionKind::Partial => self.settings.partial_session_ttl,
            // Long enough to scan a QR code or wait for a text, short like the second step.
            SessionKind::Enrollment | SessionKind::Device => self.settings.partial_session_ttl * 2,
        };
        let session = Session {
            id: self.new_id(),
            account_id: account.id,
            kind,
            factor_failures: 0,
            step_up_at: (kind == SessionKind::Full && amr.iter().any(|m| m == "mfa"))
                .then_some(now),
            amr,
            auth_time: now,
            created_at: now,
            last_seen_at: now,
            expires_at: now + lifetime,
            ip: meta.ip_string(),
            user_agent: meta.user_agent_trimmed(),
            security_stamp: account.security_stamp.clone(),
        };
        let record = NewSession {
            session,
            token_hash: self.hash_token(TokenPurpose::Session, &token_bytes(&token)),
        };
        (token, record)
    }

    pub(super) async fn start_session(
        &self,
        account: &Account,
        kind: SessionKind,
        amr: Vec<String>,
        meta: &RequestMeta,
        device: Option<DeviceRecord>,
    ) -> Result<(SecretString, Session), CoreError> {
        // Every way to a session passes here: a locked account gets none.
        if account.is_locked() {
            return Err(CoreError::InvalidCredentials);
        }
        let (token, record) = self.new_session(account, kind, amr, meta);
        let event = match kind {
            SessionKind::Full => "login_succeeded",
            SessionKind::Partial => "login_password_accepted",
            SessionKind::Enrollment => "login_enrollment_required",
            SessionKind::Device => "login_device_verification_required",
        };
        let audit = self.audit(
            event,
            Some(account.id),
            meta,
            json!({ "session_id": record.session.id, "amr": record.session.amr }),
        );
        self.store
            .create_session(&record, &audit, device.as_ref())
            .await?;
        if device.is_some_and(|d| d.notice.is_some()) {
            self.outbox_wakeup.notify_one();
        }
        Ok((token, record.session))
    }
}

/// The attempts a password step paid for.
struct PaidLogin {
    account: Paid,
    ip: Option<Paid>,
    email: Option<Email>,
}
