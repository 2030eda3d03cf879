//! The `sms` and `email` factors: registering a destination, sending a code (with quotas,
//! cooldown and the SMS circuit breaker), confirming a new factor, and the emailed sign-in link.

use super::Core;
use super::attempts::REPLAY_GRACE;
use super::enrollment::{Changer, clean_label};
use crate::email::Email;
use crate::error::CoreError;
use crate::factor::otp_code::{self, SendQuotas};
use crate::factor::totp;
use crate::model::*;
use crate::ports::{Channel, Consumed, Message};
use crate::token::TokenPurpose;
use crate::{mail, phone};
use secrecy::ExposeSecret;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// A code on its way: what the caller may show.
#[derive(Debug, Clone)]
pub struct SentCode {
    pub challenge_id: Uuid,
    pub factor_id: Uuid,
    pub channel: Channel,
    pub expires_at: OffsetDateTime,
    /// Masked destination, `+1 ••• ••• 8318`.
    pub hint: String,
}

/// What a challenge is for; decides who may use it and what the message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    Confirm,
    Login,
    StepUp,
    Verify,
}

impl CodePurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Login => "login",
            Self::StepUp => "step_up",
            Self::Verify => "verify",
        }
    }
}

/// Where the quota counters' windows start: the hour, and the UTC day for the global budget.
fn window(now: OffsetDateTime, length: Duration) -> OffsetDateTime {
    let len = length.whole_seconds().max(1);
    let start = now.unix_timestamp().div_euclid(len) * len;
    OffsetDateTime::from_unix_timestamp(start).unwrap_or(now)
}

const GLOBAL_SMS: &str = "sms:global";

impl Core {
    pub(super) fn code_hash(&self, challenge: Uuid, code: &str) -> Vec<u8> {
        self.keyring()
            .token_hash("code_challenge", format!("{challenge}:{code}").as_bytes())
    }

    /// Registers a pending `sms` or `email` factor; it becomes active when a code sent to it
    /// is typed back.
    pub(super) async fn begin_code_factor(
        &self,
        owner: &Owner,
        channel: Channel,
        destination: &str,
        label: &str,
        account: Option<AccountId>,
        meta: &RequestMeta,
    ) -> Result<Factor, CoreError> {
        let (value, hint, default_label) = match channel {
            Channel::Sms => {
                let p = phone::parse(destination)?;
                if !self
                    .settings
                    .send_quotas
                    .country_allowed(p.country.as_deref())
                {
                    return Err(CoreError::invalid(
                        "phone",
                        "We cannot send text messages to numbers in this country.",
                    ));
                }
                let hint = phone::mask(&p.e164);
                (p.e164, hint, "Phone")
            }
            Channel::Email => {
                let e = Email::parse(destination)?;
                let hint = phone::mask_email(e.as_str());
                (e.as_str().to_owned(), hint, "Email")
            }
        };
        let label = clean_label(label, default_label)?;
        let now = self.clock.now();
        let id = self.new_id();
        let sealed = self
            .keyring()
            .seal(self.random.as_ref(), id.as_bytes(), value.as_bytes());
        let factor = Factor {
            id,
            owner: owner.key(),
            kind: channel.as_str().into(),
            label,
            status: FactorStatus::Pending,
            key_id: sealed.key_id,
            secret: sealed.blob,
            params: totp::TotpParams::default(),
            last_step: -1,
            last_drift: 0,
            drift_matches: 0,
            created_at: now,
            expires_at: Some(now + self.settings.pending_factor_ttl),
            confirmed_at: None,
            last_used_at: None,
            hint: Some(hint),
        };
        let mut detail = json!({ "factor_id": id, "type": channel.as_str() });
        if account.is_none()
            && let Some(o) = detail.as_object_mut()
        {
            o.insert("owner".into(), json!(owner.key()));
        }
        let audit = self.audit("factor_enrollment_started", account, meta, detail);
        self.store.create_factor(&factor, &audit).await?;
        Ok(factor)
    }

    /// Sends a fresh code to one of the owner's `sms`/`email` factors (pending ones only for
    /// `Confirm`). A repeated `idempotency_key` returns the earlier challenge and sends nothing.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn send_code(
        &self,
        owner: &Owner,
        factor_id: Uuid,
        purpose: CodePurpose,
        session: Option<SessionId>,
        idempotency_key: Option<&str>,
        account: Option<AccountId>,
        meta: &RequestMeta,
    ) -> Result<SentCode, CoreError> {
        let now = self.clock.now();
        let factor = self
            .store
            .factors_of(&owner.key())
            .await?
            .into_iter()
            .find(|f| {
                f.id == factor_id
                    && match purpose {
                        CodePurpose::Confirm => {
                            f.status == FactorStatus::Pending
                                && f.expires_at.is_some_and(|e| e > now)
                        }
                        _ => f.status == FactorStatus::Active,
                    }
            })
            .ok_or(CoreError::NotFound)?;
        let channel = match factor.kind.as_str() {
            "sms" => Channel::Sms,
            "email" => Channel::Email,
            _ => {
                return Err(CoreError::invalid(
                    "factor_id",
                    "This factor does not receive codes.",
                ));
            }
        };
        let destination = String::from_utf8(self.open_factor_secret(&factor)?.to_vec())
            .map_err(|_| CoreError::Internal("factor destination is not text".into()))?;
        let settings = &self.settings.codes;
        let code = otp_code::generate(self.random.as_ref(), settings.length);
        let challenge_id = self.new_id();
        let expires_at = now + settings.ttl;
        let minutes = settings.ttl.whole_minutes().max(1);
        let link =
            (channel == Channel::Email && purpose == CodePurpose::Login).then(|| self.new_secret());
        let message = match channel {
            Channel::Sms => Message::Sms(mail::code_sms(
                &self.branding(),
                &destination,
                &code,
                minutes,
            )),
            Channel::Email => Message::Email(mail::code_email(
                &self.branding(),
                &destination,
                &code,
                minutes,
                link.as_ref().map(|l| l.expose_secret()),
            )),
        };
        let item = self.outbox_message(
            match channel {
                Channel::Sms => "sms_code",
                Channel::Email => "email_code",
            },
            &message,
            Some(expires_at),
        )?;
        let challenge = NewCodeChallenge {
            id: challenge_id,
            owner: owner.key(),
            factor_id,
            purpose: purpose.as_str(),
            session_id: session,
            channel,
            code_hash: self.code_hash(challenge_id, &code),
            link_hash: link
                .as_ref()
                .map(|l| self.hash_token(TokenPurpose::SignInLink, &crate::token::token_bytes(l))),
            message_id: item.id,
            idempotency_key: idempotency_key.map(str::to_owned),
            created_at: now,
            expires_at,
        };
        let country = phone::parse(&destination)
            .ok()
            .and_then(|p| p.country)
            .unwrap_or_else(|| "unknown".into());
        let quotas = self.quotas(channel, owner, &destination, &country, meta, now);
        let mut detail = json!({
            "factor_id": factor_id, "challenge_id": challenge_id, "channel": channel.as_str(),
            "purpose": purpose.as_str(),
        });
        if let Some(o) = detail.as_object_mut() {
            if account.is_none() {
                o.insert("owner".into(), json!(owner.key()));
            }
            if channel == Channel::Sms {
                o.insert("country".into(), json!(country));
            }
        }
        let audit = self.audit("code_sent", account, meta, detail);
        let outcome = self
            .store
            .start_code_challenge(
                &challenge,
                now - settings.resend_cooldown,
                &quotas,
                &item,
                &audit,
            )
            .await?;
        let labels = [
            ("channel", channel.as_str().to_owned()),
            ("country", country.clone()),
        ];
        match outcome {
            ChallengeStart::Started => {
                metrics::counter!(
                    "twofold_codes_requested_total",
                    &labels_with(&labels, "queued")
                )
                .increment(1);
                self.outbox_wakeup.notify_one();
                Ok(SentCode {
                    challenge_id,
                    factor_id,
                    channel,
                    expires_at,
                    hint: factor.hint.clone().unwrap_or_default(),
                })
            }
            // The same key for another factor is a client bug, not a retry: say so rather than
            // answer with a challenge the caller did not ask for.
            ChallengeStart::Existing(c) if c.factor_id != factor_id => Err(CoreError::invalid(
                "Idempotency-Key",
                "This Idempotency-Key was already used for another factor.",
            )),
            ChallengeStart::Existing(c) => Ok(SentCode {
                challenge_id: c.id,
                factor_id: c.factor_id,
                channel,
                expires_at: c.expires_at,
                hint: factor.hint.clone().unwrap_or_default(),
            }),
            ChallengeStart::Cooldown => {
                metrics::counter!(
                    "twofold_codes_requested_total",
                    &labels_with(&labels, "cooldown")
                )
                .increment(1);
                Err(CoreError::SendLimited {
                    retry_after_secs: settings.resend_cooldown.whole_seconds().max(1) as u64,
                })
            }
            ChallengeStart::QuotaExceeded { index } => {
                let q = &quotas[index];
                if q.key == GLOBAL_SMS {
                    metrics::counter!(
                        "twofold_codes_requested_total",
                        &labels_with(&labels, "circuit_open")
                    )
                    .increment(1);
                    tracing::error!(
                        limit = q.limit,
                        "SMS circuit breaker open: the daily SMS budget is spent; SMS is off until the next UTC day"
                    );
                    return Err(CoreError::SmsUnavailable);
                }
                metrics::counter!(
                    "twofold_codes_requested_total",
                    &labels_with(&labels, "quota")
                )
                .increment(1);
                let quota_kind = q.key.split(':').take(2).collect::<Vec<_>>().join(":");
                tracing::warn!(quota = %quota_kind, limit = q.limit, "send quota reached");
                let length = if q.key.starts_with("sms:global") {
                    Duration::days(1)
                } else {
                    Duration::hours(1)
                };
                let retry = (q.window_start + length - now).whole_seconds().max(1);
                Err(CoreError::SendLimited {
                    retry_after_secs: retry as u64,
                })
            }
        }
    }

    /// Every counter a send takes a unit from. The global SMS budget comes last, so a send that
    /// another quota refuses does not use it up.
    fn quotas(
        &self,
        channel: Channel,
        owner: &Owner,
        destination: &str,
        country: &str,
        meta: &RequestMeta,
        now: OffsetDateTime,
    ) -> Vec<QuotaCheck> {
        let q: &SendQuotas = &self.settings.send_quotas;
        let hour = window(now, Duration::hours(1));
        let check = |key: String, limit: u32| QuotaCheck {
            key,
            window_start: hour,
            limit,
        };
        let mut out = Vec::new();
        match channel {
            Channel::Sms => {
                out.push(check(
                    format!("sms:number:{destination}"),
                    q.per_number_per_hour,
                ));
                out.push(check(
                    format!("sms:owner:{}", owner.key()),
                    q.per_owner_per_hour,
                ));
                if let Some(ip) = meta.ip_string() {
                    out.push(check(format!("sms:ip:{ip}"), q.per_ip_per_hour));
                }
                out.push(check(
                    format!("sms:country:{country}"),
                    q.per_country_per_hour,
                ));
                out.push(QuotaCheck {
                    key: GLOBAL_SMS.into(),
                    window_start: window(now, Duration::days(1)),
                    limit: q.sms_per_day,
                });
            }
            Channel::Email => {
                out.push(check(
                    format!("email:address:{destination}"),
                    q.per_email_per_hour,
                ));
                out.push(check(
                    format!("email:owner:{}", owner.key()),
                    q.per_owner_per_hour,
                ));
                if let Some(ip) = meta.ip_string() {
                    out.push(check(format!("email:ip:{ip}"), q.per_ip_per_hour));
                }
            }
        }
        out
    }

    /// Activates a pending `sms`/`email` factor with the code sent to it. The first factor of
    /// an owner also creates its backup codes, returned to show once.
    pub(super) async fn confirm_code_factor(
        &self,
        owner: &Owner,
        id: Uuid,
        code: &str,
        changer: Changer<'_>,
        meta: &RequestMeta,
    ) -> Result<Option<Vec<String>>, CoreError> {
        let account = match changer {
            Changer::Session(ctx) => Some(ctx.account.id),
            Changer::Api => None,
        };
        let paid = self.pay_factor_attempt(owner).await?;
        let now = self.clock.now();
        let factors = self.store.factors_of(&owner.key()).await?;
        let factor = factors
            .iter()
            .find(|f| {
                f.id == id
                    && f.status == FactorStatus::Pending
                    && f.expires_at.is_some_and(|e| e > now)
            })
            .ok_or(CoreError::NotFound)?;
        let first = !factors.iter().any(|f| f.status == FactorStatus::Active);
        let session = match changer {
            Changer::Session(ctx) => Some(ctx.session.id),
            Changer::Api => None,
        };
        match self
            .consume_code_of(
                owner,
                code,
                |c| c.factor_id == id && c.session_id == session,
                None,
            )
            .await?
        {
            Consumed::Now(_) => {}
            Consumed::Already => {
                self.give_back(paid).await?;
                return Err(CoreError::WrongCode);
            }
            Consumed::No => {
                self.record_factor_failure(paid, owner, account, "enrollment", meta)
                    .await?;
                return Err(CoreError::WrongCode);
            }
        }
        let (codes, hashes) = self.backup_codes_for(first);
        let what = match factor.kind.as_str() {
            "sms" => format!(
                "Text-message codes to {} were turned on for your account.",
                factor.hint.as_deref().unwrap_or("a phone")
            ),
            _ => format!(
                "Email codes to {} were turned on for your account.",
                factor.hint.as_deref().unwrap_or("an address")
            ),
        };
        let effects = self.effects(
            changer,
            "factor_added",
            owner,
            &what,
            meta,
            json!({ "factor_id": id, "type": factor.kind, "backup_codes_created": first }),
        )?;
        if !self
            .store
            .activate_factor(&owner.key(), id, 0, now, &hashes, &effects)
            .await?
        {
            return Err(CoreError::NotFound);
        }
        self.clear_paid(paid).await?;
        self.outbox_wakeup.notify_one();
        Ok(first.then_some(codes))
    }

    /// Tries `code` against the owner's open challenges that `matches` accepts; uses the one it
    /// fits (one conditional UPDATE). Wrong tries count against each challenge tried.
    pub(super) async fn consume_code_of(
        &self,
        owner: &Owner,
        code: &str,
        matches: impl Fn(&CodeChallenge) -> bool,
        success_audit: Option<&AuditEvent>,
    ) -> Result<Consumed<CodeChallenge>, CoreError> {
        let settings = &self.settings.codes;
        let Some(code) = otp_code::normalize(code, settings.length) else {
            return Ok(Consumed::No);
        };
        let now = self.clock.now();
        let open = self
            .store
            .open_code_challenges(&owner.key(), now, settings.max_attempts)
            .await?;
        let mut found = Consumed::No;
        for c in open.into_iter().filter(|c| matches(c)) {
            match self
                .store
                .consume_code_challenge(
                    c.id,
                    &self.code_hash(c.id, &code),
                    now,
                    now - REPLAY_GRACE,
                    settings.max_attempts,
                    success_audit,
                )
                .await?
            {
                Consumed::Now(()) => return Ok(Consumed::Now(c)),
                Consumed::Already => found = Consumed::Already,
                Consumed::No => {}
            }
        }
        Ok(found)
    }

    /// Who is waiting behind an emailed link (IP address, user agent, when), to show before
    /// the owner approves: approving a stranger's sign-in is how such links get abused.
    pub async fn sign_in_link_request(
        &self,
        token: &str,
    ) -> Result<(Option<String>, Option<String>, OffsetDateTime), CoreError> {
        let bytes = crate::token::decode_token(token).ok_or(CoreError::InvalidToken)?;
        let hash = self.hash_token(TokenPurpose::SignInLink, &bytes);
        self.store
            .link_request(&hash, self.clock.now())
            .await?
            .ok_or(CoreError::InvalidToken)
    }

    /// Approves the sign-in waiting behind an emailed link. Returns the partial session it
    /// belongs to: only that session (that browser) is signed in by it.
    pub async fn approve_sign_in_link(
        &self,
        token: &str,
        meta: &RequestMeta,
    ) -> Result<SessionId, CoreError> {
        let bytes = crate::token::decode_token(token).ok_or(CoreError::InvalidToken)?;
        let hash = self.hash_token(TokenPurpose::SignInLink, &bytes);
        let challenge = self
            .store
            .approve_code_link(&hash, self.clock.now())
            .await?
            .ok_or(CoreError::InvalidToken)?;
        let session = challenge.session_id.ok_or(CoreError::InvalidToken)?;
        let account = challenge
            .owner
            .strip_prefix("account:")
            .and_then(|id| Uuid::parse_str(id).ok());
        let audit = self.audit(
            "sign_in_link_approved",
            account,
            meta,
            json!({ "challenge_id": challenge.id }),
        );
        self.store.record_audit(&audit).await?;
        Ok(session)
    }

    /// Forgets challenges a day after they expired (their status stays readable that long) and
    /// quota counters two days after their window opened (the daily window is one day long).
    pub async fn purge_code_challenges(&self) -> Result<u64, CoreError> {
        let now = self.clock.now();
        Ok(self
            .store
            .purge_code_challenges(now - Duration::days(1), now - Duration::days(2))
            .await?)
    }

    /// Where the message with a challenge's code is: queued, retrying, sent or failed.
    pub(super) async fn challenge_delivery(
        &self,
        challenge: &CodeChallenge,
    ) -> Result<DeliveryState, CoreError> {
        Ok(self
            .store
            .delivery_state(challenge.message_id)
            .await?
            .unwrap_or(DeliveryState::Failed))
    }
}

fn labels_with(base: &[(&'static str, String); 2], outcome: &str) -> Vec<(&'static str, String)> {
    let mut v = base.to_vec();
    v.push(("outcome", outcome.to_owned()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_start_on_the_hour_and_the_utc_day() {
        let t = OffsetDateTime::from_unix_timestamp(1_790_000_123).expect("time");
        assert_eq!(window(t, Duration::hours(1)).unix_timestamp() % 3600, 0);
        assert_eq!(window(t, Duration::days(1)).unix_timestamp() % 86_400, 0);
        assert!(window(t, Duration::hours(1)) <= t);
    }
}
