//! The traits the core needs from the outside world. `twofold-store` implements the store
//! traits for SQLite and PostgreSQL; `twofold-delivery` implements [`Mailer`].
//!
//! Store methods that change several rows are one transaction each: a message is queued in the
//! outbox in the same transaction as the change that causes it, so a crash loses neither.

use crate::model::*;
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

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
    async fn account_by_id(&self, id: AccountId) -> StoreResult<Option<Account>>;
    async fn list_accounts(&self, limit: u32, offset: u32) -> StoreResult<Vec<Account>>;
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
    async fn create_session(&self, session: &NewSession, audit: &AuditEvent) -> StoreResult<()>;
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
}

#[async_trait]
pub trait AttemptStore: Send + Sync {
    async fn attempts(&self, key: &str) -> StoreResult<Option<AttemptRecord>>;
    /// Counts one failure atomically; failures older than `window_start` are forgotten first.
    async fn record_failure(
        &self,
        key: &str,
        now: OffsetDateTime,
        window_start: OffsetDateTime,
    ) -> StoreResult<AttemptRecord>;
    async fn clear_attempts(&self, key: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    async fn enqueue(&self, item: &NewOutboxItem, audit: Option<&AuditEvent>) -> StoreResult<()>;
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

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Database reachable and every embedded migration applied.
    async fn ready(&self) -> StoreResult<()>;
}

/// Everything the core stores, on one backend.
pub trait Store:
    AccountStore + TokenStore + SessionStore + AttemptStore + OutboxStore + AuditStore + HealthStore
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

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying: connection refused, timeouts, 4xx SMTP replies.
    #[error("temporary delivery failure: {0}")]
    Temporary(String),
    /// Retrying will not help: the server rejected the recipient or the message.
    #[error("permanent delivery failure: {0}")]
    Permanent(String),
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &Mail) -> Result<(), DeliveryError>;
}
