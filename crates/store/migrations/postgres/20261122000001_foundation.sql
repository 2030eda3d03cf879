-- Accounts, link tokens, sessions, attempt budgets, outbox and audit log.
-- Times are Unix milliseconds (BIGINT); ids are UUID text; hashes are BYTEA.

CREATE TABLE accounts (
    id                TEXT PRIMARY KEY,
    email             TEXT NOT NULL UNIQUE,
    password_hash     TEXT NOT NULL,
    email_verified_at BIGINT,
    security_stamp    TEXT NOT NULL,
    created_at        BIGINT NOT NULL
);

CREATE TABLE account_tokens (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX account_tokens_by_account ON account_tokens (account_id, purpose, created_at);

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    token_hash     BYTEA NOT NULL UNIQUE,
    amr            TEXT NOT NULL,
    auth_time      BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_seen_at   BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    ip             TEXT,
    user_agent     TEXT,
    security_stamp TEXT NOT NULL
);
CREATE INDEX sessions_by_account ON sessions (account_id);

CREATE TABLE attempt_budgets (
    key             TEXT PRIMARY KEY,
    failures        BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL
);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    payload         BYTEA,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    leased_until    BIGINT,
    sent_at         BIGINT,
    failed_at       BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;

CREATE TABLE audit_log (
    id         TEXT PRIMARY KEY,
    at         BIGINT NOT NULL,
    account_id TEXT,
    event      TEXT NOT NULL,
    ip         TEXT,
    user_agent TEXT,
    detail     TEXT NOT NULL
);
CREATE INDEX audit_log_by_account ON audit_log (account_id, at);
CREATE INDEX audit_log_by_time ON audit_log (at);
