//! The traits the core needs from the outside world. `twofold-store` implements the store
//! traits for SQLite and PostgreSQL; `twofold-delivery` implements [`Deliver`].
//!
//! Store methods that change several rows are one transaction each: a message is queued in the
//! outbox in the same transaction as the change that causes it, so a crash loses neither.

use crate::model::*;
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a consuming statement made of a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed<T> {
    /// It matched and is now used up.
    Now(T),
    /// It matched something a request used moments ago (a concurrent replay of a code the
    /// guesser already had): nothing learnt, so the attempt is given back.
    Already,
    /// It did not match.
    No,
}

/// What the password step asks the store before it hashes.
#[derive(Debug, Clone, Copy)]
pub struct LoginLookup<'a> {
    /// `None` for an address that does not parse (no account can match).
    pub email: Option<&'a str>,
    /// Keyed hash of the device cookie; empty when the client sent none (never matches).
    pub device_hash: &'a [u8],
    pub network: Option<&'a str>,
}

/// The answer to a [`LoginLookup`].
#[derive(Debug, Clone)]
pub struct LoginRecords {
    pub account: Option<Account>,
    /// Whether the account has used this browser and network (both false without an account).
    pub seen: crate::device::Seen,
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Inserts the account with its verification token, mail and audit event.
    /// `Conflict` when the email is taken.
    async fn create_account(
        &self,
        account: &NewAccount,
        token: Option<&NewToken>,
        mail: Option<&NewOutboxItem>,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    async fn account_by_email(&self, email: &str) -> StoreResult<Option<Account>>;
    /// The account, both login budgets and the browser's and network's history in one read:
    /// every password attempt makes it, known account or not, so it is one round trip.
    async fn login_lookup(&self, lookup: &LoginLookup<'_>) -> StoreResult<LoginRecords>;
    async fn account_by_id(&self, id: AccountId) -> StoreResult<Option<Account>>;
    async fn list_accounts(&self, limit: u32, offset: u32) -> StoreResult<Vec<Account>>;
    async fn set_operator(&self, id: AccountId, on: bool, audit: &AuditEvent) -> StoreResult<()>;
    /// Replaces the hash only if it is still `old` (an upgrade of parameters on login).
    async fn upgrade_password_hash(&self, id: AccountId, old: &str, new: &str) -> StoreResult<()>;
    /// Sets a new password and security stamp; deletes every session except `keep`, which
    /// takes the new stamp.
    async fn change_password(
        &self,
        id: AccountId,
        new_hash: &str,
        new_stamp: &str,
        keep: Option<SessionId>,
        mail: &NewOutboxItem,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a link token and the mail that carries it, in one transaction.
    async fn issue_token(
        &self,
        token: &NewToken,
        mail: &NewOutboxItem,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()>;
    async fn find_token(&self, purpose: &str, hash: &[u8]) -> StoreResult<Option<TokenRecord>>;
    async fn latest_token_at(
        &self,
        account: AccountId,
        purpose: &str,
    ) -> StoreResult<Option<OffsetDateTime>>;
    /// Consumes a verification token with one conditional UPDATE and marks the address
    /// verified. `None` when the token is unknown, used or expired.
    async fn verify_email(
        &self,
        hash: &[u8],
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Option<AccountId>>;
    /// Consumes a reset token (one conditional UPDATE), sets the password and stamp, voids the
    /// account's other reset tokens, deletes all its sessions. `false` if the token was
    /// already used or expired by the time the transaction ran.
    #[allow(clippy::too_many_arguments)]
    async fn complete_password_reset(
        &self,
        hash: &[u8],
        account: AccountId,
        new_hash: &str,
        new_stamp: &str,
        now: OffsetDateTime,
        mail: &NewOutboxItem,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// A new session with its audit row and, for a sign-in, what it tells about its browser
    /// (as [`DeviceStore::remember_device`]), all or nothing.
    async fn create_session(
        &self,
        session: &NewSession,
        audit: &AuditEvent,
        device: Option<&DeviceRecord>,
    ) -> StoreResult<()>;
    /// The session and its account, whatever their state; the core decides validity.
    async fn session_by_token_hash(&self, hash: &[u8]) -> StoreResult<Option<(Session, Account)>>;
    async fn touch_session(&self, id: SessionId, now: OffsetDateTime) -> StoreResult<()>;
    async fn list_sessions(&self, account: AccountId) -> StoreResult<Vec<Session>>;
    /// Deletes the session if it belongs to `account`; `false` when there was none.
    async fn delete_session(
        &self,
        account: AccountId,
        id: SessionId,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
    async fn delete_expired_sessions(
        &self,
        idle_cutoff: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<u64>;
    /// Pays for one code tried in a waiting sign-in (second step or new-device code) before
    /// it is checked: counts it unless `limit` codes were tried already. The new count, or
    /// `None` when the sign-in's attempts are spent (or the session is gone).
    async fn reserve_session_attempt(&self, id: SessionId, limit: u32) -> StoreResult<Option<u32>>;
    /// Gives back an attempt paid by [`SessionStore::reserve_session_attempt`] and not
    /// evaluated after all.
    async fn give_back_session_attempt(&self, id: SessionId) -> StoreResult<()>;
    /// Replaces a partial session by a full one, atomically: `false` if the partial session
    /// was already used or removed.
    async fn complete_partial_session(&self, swap: &SessionSwap) -> StoreResult<bool>;
    /// A second factor proven in a full session: when, and the session's `amr` with it.
    async fn mark_step_up(
        &self,
        id: SessionId,
        at: OffsetDateTime,
        amr: &[String],
    ) -> StoreResult<()>;
    /// Deletes partial sessions that expired, returning their accounts (each node sees each once).
    async fn take_expired_partial_sessions(
        &self,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<AccountId>>;
    /// Deletes one partial session, with the effects of voiding it.
    async fn void_partial_session(&self, id: SessionId, effects: &Effects) -> StoreResult<bool>;
}

#[async_trait]
pub trait FactorStore: Send + Sync {
    async fn create_factor(&self, factor: &Factor, audit: &AuditEvent) -> StoreResult<()>;
    /// All factors of an owner, pending and active.
    async fn factors_of(&self, owner: &str) -> StoreResult<Vec<Factor>>;
    /// An owner's active factors: everything a code check reads.
    async fn code_check_state(&self, owner: &str) -> StoreResult<Vec<Factor>>;
    /// Activates a pending, unexpired factor and uses up the confirming step, with one
    /// conditional UPDATE; stores the first backup codes when given. `false` if it was not
    /// pending any more (or expired, or the step was used).
    #[allow(clippy::too_many_arguments)]
    async fn activate_factor(
        &self,
        owner: &str,
        id: Uuid,
        step: i64,
        now: OffsetDateTime,
        backup_codes: &[Vec<u8>],
        effects: &Effects,
    ) -> StoreResult<bool>;
    /// Records an accepted TOTP step if, and only if, it is later than the last one accepted:
    /// of N concurrent requests with the same code exactly one gets `true`.
    /// `audit`, when given, is written in the same transaction as a successful consumption.
    async fn consume_totp_step(
        &self,
        id: Uuid,
        step: i64,
        drift: i64,
        now: OffsetDateTime,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool>;
    /// [`FactorStore::consume_totp_step`] for a login's second step: the step is consumed and,
    /// in the same commit, `swap`'s partial session gives way to its full session. `None`: not
    /// consumed (used by another request). `Some(false)`: consumed, but the partial session
    /// was already gone (used, voided or expired away), so no session was made.
    async fn sign_in_with_totp_step(
        &self,
        id: Uuid,
        step: i64,
        drift: i64,
        now: OffsetDateTime,
        swap: &SessionSwap,
    ) -> StoreResult<Option<bool>>;
    async fn rename_factor(&self, owner: &str, id: Uuid, label: &str) -> StoreResult<bool>;
    /// Deletes a factor; with `and_backup_codes` (the last factor) the codes go too.
    async fn delete_factor(
        &self,
        owner: &str,
        id: Uuid,
        and_backup_codes: bool,
        effects: &Effects,
    ) -> StoreResult<bool>;
    /// Removes every factor and backup code of an owner (operator reset).
    async fn delete_all_factors(&self, owner: &str, effects: &Effects) -> StoreResult<u64>;
    async fn replace_backup_codes(
        &self,
        owner: &str,
        hashes: &[Vec<u8>],
        now: OffsetDateTime,
        effects: &Effects,
    ) -> StoreResult<()>;
    /// Uses a backup code with one conditional UPDATE: `Now(remaining)` if it was unused,
    /// `Already` if it was used at or after `recent`.
    async fn consume_backup_code(
        &self,
        owner: &str,
        hash: &[u8],
        now: OffsetDateTime,
        recent: OffsetDateTime,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<Consumed<u32>>;
    async fn backup_codes_left(&self, owner: &str) -> StoreResult<u32>;
    /// [`FactorStore::factors_of`] with the owner's unused backup codes counted in the same
    /// read (0 when it has no factors, since codes only back factors up).
    async fn factors_and_backup_codes_left(&self, owner: &str) -> StoreResult<(Vec<Factor>, u32)>;
}

#[async_trait]
pub trait ChallengeStore: Send + Sync {
    /// In one transaction: takes the factor's resend cooldown (one conditional UPDATE),
    /// returns the earlier challenge for a repeated idempotency key, takes one unit from every
    /// quota (all or none), voids the owner's open challenges, and stores the challenge with
    /// its message and audit event. Anything but `Started` writes nothing.
    async fn start_code_challenge(
        &self,
        challenge: &NewCodeChallenge,
        cooldown_cutoff: OffsetDateTime,
        quotas: &[QuotaCheck],
        message: &NewOutboxItem,
        audit: &AuditEvent,
    ) -> StoreResult<ChallengeStart>;
    /// The owner's challenges that can still be used (not used, voided or expired, attempts
    /// left), newest first.
    async fn open_code_challenges(
        &self,
        owner: &str,
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> StoreResult<Vec<CodeChallenge>>;
    async fn code_challenge(&self, owner: &str, id: Uuid) -> StoreResult<Option<CodeChallenge>>;
    /// One try of a code against an open challenge, paid for and checked in one conditional
    /// UPDATE: refused unless fewer than `max_attempts` tries were made, counted when wrong,
    /// used up when right (with the factor's last use, and `audit`, in the same transaction).
    /// `Already` when the challenge is closed and `code_hash` is the code it was used with at
    /// or after `recent`.
    async fn consume_code_challenge(
        &self,
        id: Uuid,
        code_hash: &[u8],
        now: OffsetDateTime,
        recent: OffsetDateTime,
        max_attempts: u32,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<Consumed<()>>;
    /// Where the sign-in behind an open emailed link comes from: the waiting session's IP
    /// address and user agent, and when the code was sent.
    async fn link_request(
        &self,
        link_hash: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<Option<(Option<String>, Option<String>, OffsetDateTime)>>;
    /// Marks the challenge behind an emailed link approved; returns it when it was open.
    async fn approve_code_link(
        &self,
        link_hash: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<Option<CodeChallenge>>;
    /// Uses the session's approved challenge, once; returns it.
    async fn consume_approved_link(
        &self,
        session: SessionId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<CodeChallenge>>;
    async fn delivery_state(&self, message_id: Uuid) -> StoreResult<Option<DeliveryState>>;
    /// Deletes challenges that expired before `challenges_before` and send counters whose
    /// window started before `counters_before`; returns how many rows went.
    async fn purge_code_challenges(
        &self,
        challenges_before: OffsetDateTime,
        counters_before: OffsetDateTime,
    ) -> StoreResult<u64>;
}

#[async_trait]
pub trait WebauthnStore: Send + Sync {
    async fn create_ceremony(&self, ceremony: &WebauthnCeremony) -> StoreResult<()>;
    /// Uses up a ceremony with one conditional UPDATE and returns its state, if it is the
    /// right kind, unused, unexpired and bound to `owner` / `session` (when given).
    async fn take_ceremony(
        &self,
        id: Uuid,
        kind: &str,
        owner: Option<&str>,
        session: Option<SessionId>,
        now: OffsetDateTime,
    ) -> StoreResult<Option<String>>;
    /// Adds an active `webauthn` factor and its credential (and the first backup codes when
    /// given) in one transaction. `Conflict` when the credential id is registered anywhere.
    async fn add_webauthn_factor(
        &self,
        factor: &Factor,
        credential: &WebauthnCredential,
        backup_codes: &[Vec<u8>],
        effects: &Effects,
    ) -> StoreResult<()>;
    /// The owner's credentials that are not marked suspicious.
    async fn webauthn_credentials_of(&self, owner: &str) -> StoreResult<Vec<WebauthnCredential>>;
    async fn webauthn_credential(
        &self,
        credential_id: &[u8],
    ) -> StoreResult<Option<WebauthnCredential>>;
    /// Stores the new counter and credential if the counter moved forward (or the
    /// authenticator keeps none): of two concurrent uses of one signature, one gets `true`.
    async fn record_webauthn_use(
        &self,
        credential_id: &[u8],
        counter: u32,
        passkey: &str,
        now: OffsetDateTime,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool>;
    /// A counter went backwards: possibly a cloned key. Marks it, with audit and owner mail.
    async fn mark_webauthn_suspicious(
        &self,
        credential_id: &[u8],
        now: OffsetDateTime,
        effects: &Effects,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait TrustedBrowserStore: Send + Sync {
    async fn add_trusted_browser(
        &self,
        browser: &TrustedBrowser,
        token_hash: &[u8],
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// The account's browser with this token, whatever its state; the core decides validity.
    async fn trusted_browser(
        &self,
        account: AccountId,
        token_hash: &[u8],
    ) -> StoreResult<Option<TrustedBrowser>>;
    async fn touch_trusted_browser(&self, id: Uuid, now: OffsetDateTime) -> StoreResult<()>;
    async fn trusted_browsers_of(&self, account: AccountId) -> StoreResult<Vec<TrustedBrowser>>;
    /// Forgets one browser (`Some(id)`) or all of them; returns how many went.
    async fn forget_trusted_browsers(
        &self,
        account: AccountId,
        id: Option<Uuid>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<u64>;
}

/// A new-device sign-in mail and the "this wasn't me" token it carries.
#[derive(Debug, Clone)]
pub struct SignInNotice {
    pub report_token: NewToken,
    pub mail: NewOutboxItem,
}

/// A completed second step: the partial session `partial` gives way to `full`, recorded by
/// `audit`.
#[derive(Debug, Clone)]
pub struct SessionSwap {
    pub partial: SessionId,
    pub full: NewSession,
    pub audit: AuditEvent,
}

/// What a sign-in tells the store about its browser and network: a new one to remember, or a
/// known one's visit to refresh (its last-seen time, address and user agent).
#[derive(Debug, Clone)]
pub struct DeviceRecord {
    /// The browser's record; its `id` is used only if the browser is new.
    pub device: KnownDevice,
    /// Keyed hash of the device cookie; `None` for a client that keeps no cookie, whose
    /// network alone is recorded.
    pub device_hash: Option<Vec<u8>>,
    pub network: Option<String>,
    /// The new-browser mail and its "this wasn't me" token.
    pub notice: Option<SignInNotice>,
    pub audit: Option<AuditEvent>,
}

#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Whether the account has used this browser, and (with an address) this network.
    async fn seen(
        &self,
        account: AccountId,
        device_hash: &[u8],
        network: Option<&str>,
    ) -> StoreResult<crate::device::Seen>;
    /// Stores the code of a device-verification session with its mail, or replaces an unused
    /// one when `resend_after` is given and the last code went out before it. `false` when the
    /// resend came too soon (nothing is written).
    async fn put_device_challenge(
        &self,
        challenge: &DeviceChallenge,
        code_hash: &[u8],
        resend_after: Option<OffsetDateTime>,
        mail: &NewOutboxItem,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
    async fn device_challenge(&self, session: SessionId) -> StoreResult<Option<DeviceChallenge>>;
    /// Uses the code up: one conditional UPDATE, so of N concurrent right codes one wins.
    async fn consume_device_challenge(
        &self,
        session: SessionId,
        code_hash: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<Option<DeviceChallenge>>;
    /// Records (or refreshes) the browser and the network as known for the account; with a
    /// notice, also issues its "this wasn't me" token and queues its mail, all in one transaction.
    async fn remember_device(&self, record: &DeviceRecord) -> StoreResult<()>;
    async fn known_devices_of(&self, account: AccountId) -> StoreResult<Vec<KnownDevice>>;
    /// Forgets one known browser (`Some(id)`) or all of them, with the account's networks.
    async fn forget_known_devices(
        &self,
        account: AccountId,
        id: Option<Uuid>,
        audit: &AuditEvent,
    ) -> StoreResult<u64>;
    async fn set_ip_verification(
        &self,
        account: AccountId,
        on: bool,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// "This wasn't me": uses the report token up (one conditional UPDATE) and, in the same
    /// transaction, signs out every session (new stamp), forgets trusted browsers, known
    /// devices and networks, and issues `reset` (a password-reset token). `false` if the
    /// token was used or expired meanwhile (nothing is written).
    async fn report_sign_in(
        &self,
        report_hash: &[u8],
        now: OffsetDateTime,
        stamp: &StampChange,
        reset: &NewToken,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Housekeeping: drops codes that expired before `before`.
    async fn purge_device_challenges(&self, before: OffsetDateTime) -> StoreResult<u64>;
    /// Housekeeping: forgets browsers and networks last seen before `before`, and beyond the
    /// `keep` most recently seen of each account; answers how many rows went.
    async fn purge_known_devices(&self, before: OffsetDateTime, keep: u32) -> StoreResult<u64>;
}

#[async_trait]
pub trait EmailChangeStore: Send + Sync {
    /// Stores the change with its token, replacing the account's earlier unconfirmed ones,
    /// and queues the mails (the link to the new address, the notice to the old one).
    async fn start_email_change(
        &self,
        change: &EmailChange,
        token_hash: &[u8],
        mails: &[NewOutboxItem],
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// The unused, unexpired change behind a link.
    async fn email_change(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<Option<EmailChange>>;
    /// Uses the link up (one conditional UPDATE) and, in the same transaction, sets the
    /// address, voids the account's other mailed links (they went to the old address), applies
    /// the new stamp and queues the notice to the old address.
    async fn complete_email_change(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
        stamp: &StampChange,
        mail: &NewOutboxItem,
        audit: &AuditEvent,
    ) -> StoreResult<EmailChangeOutcome>;
}

#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// A setting operators change while servers run (JSON), if one was ever stored.
    async fn setting(&self, key: &str) -> StoreResult<Option<String>>;
    async fn put_setting(
        &self,
        key: &str,
        value: &str,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Verified accounts created before the requirement, with no active factor and no
    /// reminder yet for this deadline and stage; at most `limit`.
    async fn reminder_candidates(
        &self,
        deadline: OffsetDateTime,
        days_before: i64,
        limit: u32,
    ) -> StoreResult<Vec<Account>>;
    /// Records the reminder and queues its mail in one transaction; `false` (and nothing
    /// queued) when another node sent it first.
    async fn record_reminder(
        &self,
        account: AccountId,
        deadline: OffsetDateTime,
        days_before: i64,
        now: OffsetDateTime,
        mail: &NewOutboxItem,
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait ApiStore: Send + Sync {
    /// The tenant's id, creating it if needed.
    async fn ensure_tenant(
        &self,
        name: &str,
        id_if_new: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<Uuid>;
    async fn create_api_key(
        &self,
        key: &ApiKeyRecord,
        hash: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    /// The key with this hash, unless it is revoked.
    async fn api_key_by_hash(&self, hash: &[u8]) -> StoreResult<Option<ApiKeyRecord>>;
    /// Marks a key revoked (once; a second revocation keeps the first time and reason).
    async fn revoke_api_key(
        &self,
        id: Uuid,
        reason: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Revoked>;
    /// Every key, revoked ones included, oldest first.
    async fn api_keys(&self) -> StoreResult<Vec<ApiKeyInfo>>;
    /// Changes whenever a key is revoked or deleted: (keys, revoked keys). Nodes compare it
    /// to know when their cache of authenticated keys may be stale.
    async fn api_key_revision(&self) -> StoreResult<(i64, i64)>;
    /// Sets `last_used_at` to `now` unless it is already later than `since`, so nodes that
    /// all touch a busy key write the row at most once per interval.
    async fn touch_api_key(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        since: OffsetDateTime,
    ) -> StoreResult<()>;
    /// The tenant's own WebAuthn relying party (id, origins), if one is set.
    async fn tenant_relying_party(
        &self,
        tenant: Uuid,
    ) -> StoreResult<Option<(String, Vec<String>)>>;
    /// Sets (or with `None` clears) a tenant's relying party; `false` for an unknown tenant.
    async fn set_tenant_relying_party(
        &self,
        tenant: &str,
        rp: Option<(&str, &[String])>,
    ) -> StoreResult<bool>;
    /// A subject's internal id together with what a code check reads for it (as
    /// [`FactorStore::code_check_state`] for owner `owner_prefix` + id), in one query; `None`
    /// for an unknown subject.
    async fn subject_check_state(
        &self,
        tenant: Uuid,
        external_id: &str,
        owner_prefix: &str,
    ) -> StoreResult<Option<(Uuid, Vec<Factor>)>>;
    /// The subject's internal id; created with `create_with` when it does not exist.
    async fn subject(
        &self,
        tenant: Uuid,
        external_id: &str,
        create_with: Option<(Uuid, OffsetDateTime)>,
    ) -> StoreResult<Option<Uuid>>;
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn canary(&self) -> StoreResult<Option<crate::keys::Sealed>>;
    async fn set_canary(&self, sealed: &crate::keys::Sealed) -> StoreResult<()>;
    /// Every sealed value: (table, row id, sealed).
    async fn sealed_values(&self) -> StoreResult<Vec<(String, String, crate::keys::Sealed)>>;
    /// Replaces one sealed value if it is still sealed under `old_key_id`.
    async fn reseal(
        &self,
        table: &str,
        id: &str,
        old_key_id: &str,
        new: &crate::keys::Sealed,
    ) -> StoreResult<bool>;
}

/// Attempt budgets (see [`crate::throttle`]).
#[async_trait]
pub trait AttemptStore: Send + Sync {
    /// Pays for one attempt against `key` before its guess is evaluated: counted in the one
    /// statement that refuses it, writing nothing, while `budget` is spent at `now`.
    /// Concurrent calls may be written together.
    async fn reserve_attempt(
        &self,
        key: &crate::throttle::AttemptKey,
        budget: &crate::throttle::Budget,
        now: OffsetDateTime,
    ) -> StoreResult<crate::throttle::Reservation>;
    /// Gives back one attempt that proved nothing (see [`Consumed::Already`]).
    async fn give_back_attempt(&self, key: &crate::throttle::AttemptKey) -> StoreResult<()>;
    /// Forgets every attempt on record: the secret was proven.
    async fn clear_attempts(&self, key: &crate::throttle::AttemptKey) -> StoreResult<()>;
}

/// At most one mail of a kind to one recipient per interval: `key` names both (for example
/// `signup_existing:ada@example.com`), and a mail goes out only if the last one of that key
/// was queued at or before `last_at_or_before`.
#[derive(Debug, Clone)]
pub struct MailSpacing {
    pub key: String,
    pub now: OffsetDateTime,
    pub last_at_or_before: OffsetDateTime,
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    async fn enqueue(&self, item: &NewOutboxItem, audit: Option<&AuditEvent>) -> StoreResult<()>;
    /// Queues `item` with `audit` only when `spacing` lets it through, all or nothing;
    /// `false` when it did not. One conditional upsert on the key decides, so of parallel
    /// requests at most one mail per interval is queued, on every node.
    async fn enqueue_spaced(
        &self,
        spacing: &MailSpacing,
        item: &NewOutboxItem,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool>;
    /// Leases up to `limit` due messages until `lease_until`. A message leased by one node
    /// is invisible to the others until its lease runs out.
    async fn claim_outbox(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>>;
    /// Marks delivered and drops the sealed body, which holds live links.
    async fn mark_sent(&self, id: Uuid, now: OffsetDateTime) -> StoreResult<()>;
    /// Records a failed try; `retry_at = None` gives up on the message.
    async fn mark_failed(
        &self,
        id: Uuid,
        error: &str,
        retry_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    async fn pending_outbox(&self) -> StoreResult<u64>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    async fn audit_for_account(
        &self,
        account: AccountId,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>>;
}

/// A signing key as stored: the private key sealed with the data key (the row id as context).
#[derive(Debug, Clone)]
pub struct SigningKeyRecord {
    pub id: Uuid,
    pub alg: crate::oidc::jwt::SigningAlg,
    pub sealed: crate::keys::Sealed,
    pub created_at: OffsetDateTime,
    /// No longer signs; still published until tokens it signed have expired.
    pub retired_at: Option<OffsetDateTime>,
}

/// An authorization code about to be handed out.
#[derive(Debug, Clone)]
pub struct NewOidcCode {
    pub code_hash: Vec<u8>,
    pub client_id: String,
    pub account_id: AccountId,
    pub redirect_uri: String,
    /// The PKCE S256 challenge, or empty without PKCE.
    pub code_challenge: String,
    pub grant: crate::oidc::Grant,
    /// The refresh-token family the code starts: revoked if the code is ever replayed.
    pub family_id: Uuid,
    pub security_stamp: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OidcTokenKind {
    Access,
    Refresh,
}

impl OidcTokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }
}

/// A token to store with a redeemed code or refresh token; the rest is copied from it.
#[derive(Debug, Clone)]
pub struct NewOidcToken {
    pub hash: Vec<u8>,
    pub kind: OidcTokenKind,
    pub expires_at: OffsetDateTime,
}

/// What a code or token was issued for.
#[derive(Debug, Clone)]
pub struct OidcTokenRecord {
    pub account_id: AccountId,
    pub client_id: String,
    pub grant: crate::oidc::Grant,
    pub family_id: Uuid,
    pub security_stamp: String,
}

/// The outcome of redeeming a one-time code or refresh token.
#[derive(Debug, Clone)]
pub enum Redemption {
    /// Consumed now; the new tokens are stored.
    Granted(OidcTokenRecord),
    /// It was used before: someone replays it, and the family it belongs to must go.
    Replayed {
        family_id: Uuid,
        account_id: AccountId,
    },
    /// Unknown, expired, revoked, or for another client, redirect URI or verifier.
    Invalid,
}

#[async_trait]
pub trait OidcStore: Send + Sync {
    async fn create_oidc_client(
        &self,
        client: &crate::oidc::OidcClient,
        secret_hash: Option<&[u8]>,
    ) -> StoreResult<()>;
    /// The client and its secret's keyed hash (none for a public client).
    async fn oidc_client(
        &self,
        id: &str,
    ) -> StoreResult<Option<(crate::oidc::OidcClient, Option<Vec<u8>>)>>;
    async fn oidc_clients(&self) -> StoreResult<Vec<crate::oidc::OidcClient>>;
    /// Removes the client with its codes, tokens and consents.
    async fn remove_oidc_client(&self, id: &str) -> StoreResult<bool>;
    /// Every signing key, newest first.
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Adds a key; every key of its algorithm still signing is retired at its creation time.
    async fn add_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()>;
    /// Stores (or replaces) a pending authorization request.
    async fn save_auth_request(
        &self,
        id: &str,
        request: &crate::oidc::AuthRequest,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()>;
    /// A pending request that has not expired, with when it was made.
    async fn auth_request(
        &self,
        id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<(crate::oidc::AuthRequest, OffsetDateTime)>>;
    async fn consented_scopes(
        &self,
        account: AccountId,
        client_id: &str,
    ) -> StoreResult<Option<Vec<String>>>;
    async fn save_consent(
        &self,
        account: AccountId,
        client_id: &str,
        scope: &[String],
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Stores the code and forgets the request it answers, in one transaction.
    async fn issue_code(
        &self,
        code: &NewOidcCode,
        request_id: &str,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Consumes a code with one conditional UPDATE (client, redirect URI and PKCE challenge
    /// must match, unexpired, unused) and stores `tokens` in the same transaction.
    async fn redeem_code(
        &self,
        code_hash: &[u8],
        client_id: &str,
        redirect_uri: &str,
        code_challenge: &str,
        now: OffsetDateTime,
        tokens: &[NewOidcToken],
    ) -> StoreResult<Redemption>;
    /// Consumes a refresh token the same way and stores its successors in its family.
    async fn rotate_refresh_token(
        &self,
        token_hash: &[u8],
        client_id: &str,
        now: OffsetDateTime,
        tokens: &[NewOidcToken],
    ) -> StoreResult<Redemption>;
    /// Revokes every token of a family. Returns how many were still live.
    async fn revoke_token_family(&self, family_id: Uuid, now: OffsetDateTime) -> StoreResult<u64>;
    /// Drops codes, tokens and requests that expired before `before`. Returns how many.
    async fn purge_oidc(&self, before: OffsetDateTime) -> StoreResult<u64>;
    /// A live access token.
    async fn oidc_access_token(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<Option<OidcTokenRecord>>;
}

/// What the operator console reads and changes beyond the other ports.
#[async_trait]
pub trait ConsoleStore: Send + Sync {
    /// Accounts whose address contains `query` (case-insensitive), by address.
    async fn search_accounts(&self, query: &str, limit: u32) -> StoreResult<Vec<Account>>;
    /// Locks (`Some`) or unlocks (`None`) an account with the change's effects, if it is not
    /// in that state already. Returns whether it changed.
    async fn set_locked(
        &self,
        id: AccountId,
        locked_at: Option<OffsetDateTime>,
        effects: &Effects,
    ) -> StoreResult<bool>;
    /// Switches new-network verification with the change's effects, in one transaction.
    async fn set_ip_verification_notified(
        &self,
        id: AccountId,
        on: bool,
        effects: &Effects,
    ) -> StoreResult<()>;
    /// Writes effects that accompany no other change (revoking every session).
    async fn record_effects(&self, effects: &Effects) -> StoreResult<()>;
    /// Audit events matching `filter`, newest first.
    async fn search_audit(&self, filter: &AuditFilter, limit: u32)
    -> StoreResult<Vec<AuditRecord>>;
    /// Counts of accounts and factors now (a scan: for the statistics job only).
    async fn stats_snapshot(&self) -> StoreResult<crate::stats::Snapshot>;
    /// The events [`crate::stats::tally`] reads, from `from` (inclusive) to `to`.
    async fn tallied_events(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<Vec<(String, serde_json::Value)>>;
    /// Replaces the rows of `day` whose name is in `names` with `rows`.
    async fn replace_stats(
        &self,
        day: time::Date,
        names: &[&str],
        rows: &[crate::stats::StatRow],
    ) -> StoreResult<()>;
    async fn stats_since(&self, day: time::Date) -> StoreResult<Vec<crate::stats::StatRow>>;
}

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Database reachable and every embedded migration applied.
    async fn ready(&self) -> StoreResult<()>;
    /// Commits a tiny write (the heartbeat row), to prove that writes commit.
    async fn heartbeat(&self, now: OffsetDateTime) -> StoreResult<()>;
    /// Connections in the pool, and how many of them are idle.
    fn pool_use(&self) -> (u32, u32);
}

/// Everything the core stores, on one backend.
pub trait Store:
    AccountStore
    + TokenStore
    + SessionStore
    + AttemptStore
    + OutboxStore
    + AuditStore
    + HealthStore
    + FactorStore
    + ApiStore
    + KeyStore
    + ChallengeStore
    + WebauthnStore
    + TrustedBrowserStore
    + DeviceStore
    + EmailChangeStore
    + PolicyStore
    + OidcStore
    + ConsoleStore
{
}

impl<T> Store for T where
    T: AccountStore
        + TokenStore
        + SessionStore
        + AttemptStore
        + OutboxStore
        + AuditStore
        + HealthStore
        + FactorStore
        + ApiStore
        + KeyStore
        + ChallengeStore
        + WebauthnStore
        + TrustedBrowserStore
        + DeviceStore
        + EmailChangeStore
        + PolicyStore
        + OidcStore
        + ConsoleStore
{
}

/// An email ready to send.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

impl std::fmt::Debug for Mail {
    // Bodies carry live links: never print them by accident.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A text message ready to send. `to` is E.164.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Sms {
    pub to: String,
    pub text: String,
}

impl std::fmt::Debug for Sms {
    // The text carries a live code.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sms")
            .field("to", &crate::phone::mask(&self.to))
            .finish_non_exhaustive()
    }
}

/// What the outbox carries: one message on one channel.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "channel", rename_all = "lowercase")]
pub enum Message {
    Email(Mail),
    Sms(Sms),
}

impl Message {
    pub fn channel(&self) -> Channel {
        match self {
            Self::Email(_) => Channel::Email,
            Self::Sms(_) => Channel::Sms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying: connection refused, timeouts, 4xx SMTP replies, HTTP 429 and 5xx.
    #[error("temporary delivery failure: {0}")]
    Temporary(String),
    /// Retrying will not help: the server rejected the recipient or the message.
    #[error("permanent delivery failure: {0}")]
    Permanent(String),
}

/// One way of delivering messages (SMTP, an SMS gateway, the development log).
#[async_trait]
pub trait Deliver: Send + Sync {
    /// `message_id` stays the same across retries of one message: adapters pass it on (as an
    /// idempotency key) so a gateway that saw a try we think failed can drop the duplicate.
    async fn deliver(&self, message_id: Uuid, message: &Message) -> Result<(), DeliveryError>;
}
