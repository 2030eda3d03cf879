//! Known devices: a correct password from a browser or IP network the account has not used
//! is confirmed with a code sent by email before anything else (even without 2FA); a browser
//! that becomes known this way is announced to the owner, with a "this wasn't me" link that
//! signs out everything and starts a password reset.

use super::login::LoginOutcome;
use super::{Core, SessionContext};
use crate::device::{self, Seen, Unfamiliar};
use crate::error::CoreError;
use crate::factor::otp_code;
use crate::mail;
use crate::model::*;
use crate::phone::mask_email;
use crate::ports::{DeviceRecord, SignInNotice};
use crate::throttle::AttemptKey;
use crate::token::{TokenPurpose, decode_token, token_bytes};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use time::Duration;
use uuid::Uuid;

/// How long the "this wasn't me" link in a new-device mail works.
const REPORT_LINK_TTL: Duration = Duration::days(7);

/// A known browser's and network's records are refreshed by a sign-in at most this often, so
/// their "last seen" (shown to the owner, and what they expire by) stays right to the hour
/// without a write for every sign-in.
const VISIT_PRECISION: Duration = Duration::hours(1);

/// What a correct password from this browser and network leads to.
pub(super) enum DeviceGate {
    /// An emailed code first.
    Confirm(LoginOutcome),
    /// On to the second step; the session records this with it.
    Pass(Option<Box<DeviceRecord>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    /// A browser or network new to the account.
    First { announce: bool },
    /// Both known already.
    Again,
}

/// This sign-in's browser and network, as the store knows them.
pub(super) struct Sighting {
    /// Keyed hash of the device cookie; empty when the client sent none (never matches).
    pub(super) device_hash: Vec<u8>,
    pub(super) network: Option<String>,
    pub(super) seen: Seen,
}

impl Core {
    /// A new device cookie for a browser that has none.
    pub fn new_device_token(&self) -> SecretString {
        self.new_secret()
    }

    fn device_code_hash(&self, session: SessionId, code: &str) -> Vec<u8> {
        self.keyring()
            .token_hash("device_code", format!("{session}:{code}").as_bytes())
    }

    /// What a browser and network are looked up by: the keyed hash of the device cookie
    /// (empty without one) and the client's network.
    pub(super) fn sighting_keys(
        &self,
        device: Option<&str>,
        meta: &RequestMeta,
    ) -> (Vec<u8>, Option<String>) {
        let device_hash = device
            .and_then(decode_token)
            .map(|b| self.hash_token(TokenPurpose::Device, &b))
            .unwrap_or_default();
        (
            device_hash,
            meta.ip.map(|ip| self.settings.devices.network_of(ip)),
        )
    }

    async fn sighting(
        &self,
        account: &Account,
        device: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Sighting, CoreError> {
        let (device_hash, network) = self.sighting_keys(device, meta);
        let seen = self
            .store
            .seen(account.id, &device_hash, network.as_deref())
            .await?;
        Ok(Sighting {
            device_hash,
            network,
            seen,
        })
    }

    /// After a correct password: `Confirm` when this browser or network must be confirmed by
    /// email first; otherwise `Pass` with what the session must record (a new browser, to be
    /// announced, or a known one's visit). `s` was read with the account, before the hash.
    pub(super) async fn device_gate(
        &self,
        account: &Account,
        s: Sighting,
        meta: &RequestMeta,
    ) -> Result<DeviceGate, CoreError> {
        let settings = &self.settings.devices;
        if let Some(reason) = device::verification_needed(settings, account.ip_verification, s.seen)
        {
            let (token, session) = self
                .start_session(account, SessionKind::Device, vec!["pwd".into()], meta, None)
                .await?;
            self.send_device_code(account, session.id, &s, reason, false, meta)
                .await?;
            return Ok(DeviceGate::Confirm(
                LoginOutcome::DeviceVerificationRequired {
                    token,
                    hint: mask_email(&account.email),
                },
            ));
        }
        Ok(DeviceGate::Pass(self.device_visit(account, &s, meta)?))
    }

    /// What a sign-in let through records about its browser and network: a first visit (a
    /// new browser is announced), a known one's visit when its record is over
    /// [`VISIT_PRECISION`] old, or nothing.
    fn device_visit(
        &self,
        account: &Account,
        s: &Sighting,
        meta: &RequestMeta,
    ) -> Result<Option<Box<DeviceRecord>>, CoreError> {
        let new_device = !s.device_hash.is_empty() && !s.seen.device;
        let visit = if new_device || s.seen.network == Some(false) {
            Visit::First {
                announce: new_device && self.settings.devices.notify,
            }
        } else {
            Visit::Again
        };
        let stale = s
            .seen
            .recorded_at
            .is_none_or(|at| at <= self.clock.now() - VISIT_PRECISION);
        let known = s.seen.device || s.seen.network == Some(true);
        if visit == Visit::Again && !(known && stale) {
            return Ok(None);
        }
        let record =
            self.device_record(account, &s.device_hash, s.network.as_deref(), visit, meta)?;
        Ok(Some(Box::new(record)))
    }

    /// A passkey sign-in needs no emailed code from a new browser or network (the passkey
    /// proves more than the mailbox does), but records the visit like any other sign-in: a
    /// new browser becomes known and is announced, a known one's "last seen" moves on.
    pub(super) async fn passkey_visit(
        &self,
        account: &Account,
        device: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Option<Box<DeviceRecord>>, CoreError> {
        let s = self.sighting(account, device, meta).await?;
        self.device_visit(account, &s, meta)
    }

    async fn send_device_code(
        &self,
        account: &Account,
        session: SessionId,
        s: &Sighting,
        reason: Unfamiliar,
        resend: bool,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let now = self.clock.now();
        let settings = &self.settings.codes;
        let code = otp_code::generate(self.random.as_ref(), settings.length);
        let challenge = DeviceChallenge {
            session_id: session,
            account_id: account.id,
            device_hash: s.device_hash.clone(),
            network: s.network.clone(),
            reason,
            sent_at: now,
            expires_at: now + settings.ttl,
        };
        let mail = self.outbox_item(
            "device_code",
            &mail::device_code(
                &self.branding(),
                &account.email,
                &code,
                settings.ttl.whole_minutes().max(1),
                reason == Unfamiliar::Network,
                meta.ip_string().as_deref(),
            ),
        )?;
        let audit = self.audit(
            "device_code_sent",
            Some(account.id),
            meta,
            json!({ "session_id": session, "reason": reason.as_str(), "network": s.network }),
        );
        let written = self
            .store
            .put_device_challenge(
                &challenge,
                &self.device_code_hash(session, &code),
                resend.then(|| now - settings.resend_cooldown),
                &mail,
                &audit,
            )
            .await?;
        if !written {
            return Err(CoreError::TooManyAttempts {
                retry_after_secs: settings.resend_cooldown.whole_seconds().max(1) as u64,
            });
        }
        self.outbox_wakeup.notify_one();
        Ok(())
    }

    /// What a sign-in records about its browser and network; a first visit's `announce` mails
    /// the owner with a "this wasn't me" link.
    fn device_record(
        &self,
        account: &Account,
        device_hash: &[u8],
        network: Option<&str>,
        visit: Visit,
        meta: &RequestMeta,
    ) -> Result<DeviceRecord, CoreError> {
        let now = self.clock.now();
        let known = KnownDevice {
            id: self.new_id(),
            account_id: account.id,
            user_agent: meta.user_agent_trimmed(),
            ip: meta.ip_string(),
            first_seen_at: now,
            last_seen_at: now,
        };
        let announce = visit == Visit::First { announce: true };
        let notice = if announce && !device_hash.is_empty() {
            let token = self.new_secret();
            Some(SignInNotice {
                report_token: NewToken {
                    id: self.new_id(),
                    account_id: account.id,
                    purpose: TokenPurpose::SignInReport.as_str(),
                    token_hash: self.hash_token(TokenPurpose::SignInReport, &token_bytes(&token)),
                    created_at: now,
                    expires_at: now + REPORT_LINK_TTL,
                },
                mail: self.outbox_item(
                    "new_device_sign_in",
                    &mail::new_device_sign_in(
                        &self.branding(),
                        &account.email,
                        &mail::when(now),
                        meta.ip_string().as_deref(),
                        self.geoip
                            .as_ref()
                            .zip(meta.ip)
                            .and_then(|(g, ip)| g.place(ip))
                            .as_deref(),
                        meta.user_agent_trimmed().as_deref(),
                        token.expose_secret(),
                    ),
                )?,
            })
        } else {
            None
        };
        // An empty hash means the client keeps no cookie: only its network can become known.
        // A visit of what is known already is routine and not audited.
        let audit = (!device_hash.is_empty() && visit != Visit::Again).then(|| {
            self.audit(
                "device_remembered",
                Some(account.id),
                meta,
                json!({ "device_id": known.id, "network": network, "announced": notice.is_some() }),
            )
        });
        Ok(DeviceRecord {
            device: known,
            device_hash: (!device_hash.is_empty()).then(|| device_hash.to_vec()),
            network: network.map(str::to_owned),
            notice,
            audit,
        })
    }

    /// Links in mail prove the mailbox as well as a code does: the browser that opens one
    /// (verifying the address, resetting the password) becomes known, without an announcement.
    pub(super) async fn trust_device_of_link(
        &self,
        account: AccountId,
        device: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let Some(account) = self.store.account_by_id(account).await? else {
            return Ok(());
        };
        let s = self.sighting(&account, device, meta).await?;
        if s.device_hash.is_empty() || (s.seen.device && s.seen.network != Some(false)) {
            return Ok(());
        }
        let first = Visit::First { announce: false };
        let record =
            self.device_record(&account, &s.device_hash, s.network.as_deref(), first, meta)?;
        Ok(self.store.remember_device(&record).await?)
    }

    /// A device-verification session (password accepted from an unknown browser or network).
    async fn authenticate_device(&self, token: &str) -> Result<SessionContext, CoreError> {
        let ctx = self.resolve_session(token).await?;
        if ctx.session.kind != SessionKind::Device {
            return Err(CoreError::Unauthenticated);
        }
        Ok(ctx)
    }

    /// Where the code went, for the page that asks for it.
    pub async fn device_verification_hint(&self, token: &str) -> Result<String, CoreError> {
        let ctx = self.authenticate_device(token).await?;
        Ok(mask_email(&ctx.account.email))
    }

    /// Takes the emailed code. The device session is replaced by whatever the login needs
    /// next (second factor, forced enrollment, or a full session), exactly as if the browser
    /// had been known at the password step.
    pub async fn confirm_device(
        &self,
        token: &str,
        code: &str,
        trusted_browser: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome, CoreError> {
        let ctx = self.authenticate_device(token).await?;
        let account = &ctx.account;
        // Paid before the code is looked at: the sign-in's own tries, then the account's. Once
        // the sign-in's tries are all taken nothing is checked; the try that fails last ends
        // the sign-in (taken is not failed: one may be the right code, still being checked).
        let limit = self.settings.partial_session_attempts;
        let Some(tried) = self
            .store
            .reserve_session_attempt(ctx.session.id, limit)
            .await?
        else {
            return Err(CoreError::SecondStepVoid);
        };
        let key = AttemptKey::NewDeviceCode(account.id);
        let paid = match self
            .pay_attempt(key, self.settings.second_factor_budget)
            .await
        {
            Err(e @ CoreError::TooManyAttempts { .. }) => {
                self.store.give_back_session_attempt(ctx.session.id).await?;
                return Err(e);
            }
            other => other?,
        };
        let now = self.clock.now();
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let used = if code.is_empty() || code.len() > 10 {
            None
        } else {
            self.store
                .consume_device_challenge(
                    ctx.session.id,
                    &self.device_code_hash(ctx.session.id, &code),
                    now,
                )
                .await?
        };
        let Some(challenge) = used else {
            if tried >= limit {
                self.void_device_session(&ctx, meta).await?;
                return Err(CoreError::SecondStepVoid);
            }
            let audit = self.audit(
                "device_code_failed",
                Some(account.id),
                meta,
                json!({ "session_id": ctx.session.id, "failures": paid.count }),
            );
            self.store.record_audit(&audit).await?;
            return Err(CoreError::WrongCode);
        };
        self.clear_paid(paid).await?;
        let first = Visit::First {
            announce: challenge.reason == Unfamiliar::Device && self.settings.devices.notify,
        };
        let record = self.device_record(
            account,
            &challenge.device_hash,
            challenge.network.as_deref(),
            first,
            meta,
        )?;
        let audit = self.audit(
            "device_verified",
            Some(account.id),
            meta,
            json!({ "session_id": ctx.session.id, "reason": challenge.reason.as_str() }),
        );
        self.store
            .delete_session(account.id, ctx.session.id, &audit)
            .await?;
        self.after_password(account, trusted_browser, meta, Some(record))
            .await
    }

    /// Ends a device-verification session whose last try failed.
    async fn void_device_session(
        &self,
        ctx: &SessionContext,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let audit = self.audit(
            "device_verification_void",
            Some(ctx.account.id),
            meta,
            json!({ "session_id": ctx.session.id }),
        );
        self.store
            .delete_session(ctx.account.id, ctx.session.id, &audit)
            .await?;
        Ok(())
    }

    /// "Send a new code" on the device-verification page (after the resend cooldown).
    pub async fn resend_device_code(
        &self,
        token: &str,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let ctx = self.authenticate_device(token).await?;
        let c = self
            .store
            .device_challenge(ctx.session.id)
            .await?
            .ok_or(CoreError::Unauthenticated)?;
        let s = Sighting {
            device_hash: c.device_hash,
            network: c.network,
            seen: Seen {
                device: false,
                network: None,
                recorded_at: None,
            },
        };
        self.send_device_code(&ctx.account, ctx.session.id, &s, c.reason, true, meta)
            .await
    }

    /// "This wasn't me" from a new-device mail: signs out every session, forgets trusted
    /// browsers and known devices, and returns a password-reset token for the form (the link
    /// proves the mailbox as a reset mail would). Works once.
    pub async fn report_sign_in(
        &self,
        token: &str,
        meta: &RequestMeta,
    ) -> Result<SecretString, CoreError> {
        let bytes = decode_token(token).ok_or(CoreError::InvalidToken)?;
        let hash = self.hash_token(TokenPurpose::SignInReport, &bytes);
        let now = self.clock.now();
        let record = self
            .store
            .find_token(TokenPurpose::SignInReport.as_str(), &hash)
            .await?
            .filter(|t| t.used_at.is_none() && t.expires_at > now)
            .ok_or(CoreError::InvalidToken)?;
        let reset = self.new_secret();
        let reset_record = NewToken {
            id: self.new_id(),
            account_id: record.account_id,
            purpose: TokenPurpose::PasswordReset.as_str(),
            token_hash: self.hash_token(TokenPurpose::PasswordReset, &token_bytes(&reset)),
            created_at: now,
            expires_at: now + self.settings.password_reset_ttl,
        };
        let stamp = StampChange {
            account: record.account_id,
            stamp: self.new_stamp(),
            keep_session: None,
        };
        let audit = self.audit("sign_in_reported", Some(record.account_id), meta, json!({}));
        if !self
            .store
            .report_sign_in(&hash, now, &stamp, &reset_record, &audit)
            .await?
        {
            return Err(CoreError::InvalidToken);
        }
        Ok(reset)
    }

    /// The browsers the account has signed in from, most recent first.
    pub async fn account_known_devices(
        &self,
        ctx: &SessionContext,
    ) -> Result<Vec<KnownDevice>, CoreError> {
        Ok(self.store.known_devices_of(ctx.account.id).await?)
    }

    /// Forgets one known browser (its next sign-in needs an emailed code again), or all of
    /// them with the account's networks.
    pub async fn forget_known_devices(
        &self,
        ctx: &SessionContext,
        id: Option<Uuid>,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let audit = self.audit(
            "known_devices_forgotten",
            Some(ctx.account.id),
            meta,
            json!({ "device_id": id }),
        );
        let n = self
            .store
            .forget_known_devices(ctx.account.id, id, &audit)
            .await?;
        if id.is_some() && n == 0 {
            return Err(CoreError::NotFound);
        }
        Ok(())
    }

    /// Operator switch: whether a sign-in from a new IP network needs an emailed code.
    pub async fn set_ip_verification(
        &self,
        email: &str,
        on: bool,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let account = self.account_by_email(email).await?;
        let audit = self.audit(
            if on {
                "ip_verification_on"
            } else {
                "ip_verification_off"
            },
            Some(account.id),
            meta,
            json!({}),
        );
        Ok(self
            .store
            .set_ip_verification(account.id, on, &audit)
            .await?)
    }

    /// Housekeeping: forgets browsers and networks not seen for [`device::KNOWN_DEVICE_LIFETIME`]
    /// (a day later, as a record's time may trail its cookie's renewal by the hour of
    /// [`VISIT_PRECISION`]), and all but each account's [`device::KNOWN_PER_ACCOUNT`] most
    /// recent ones. A forgotten browser is a new one at its next sign-in.
    pub async fn purge_known_devices(&self) -> Result<u64, CoreError> {
        let before = self.clock.now() - device::KNOWN_DEVICE_LIFETIME - Duration::days(1);
        Ok(self
            .store
            .purge_known_devices(before, device::KNOWN_PER_ACCOUNT)
            .await?)
    }

    /// Housekeeping: drops device codes that expired a day ago.
    pub async fn purge_device_challenges(&self) -> Result<u64, CoreError> {
        let before = self.clock.now() - Duration::days(1);
        Ok(self.store.purge_device_challenges(before).await?)
    }
}
