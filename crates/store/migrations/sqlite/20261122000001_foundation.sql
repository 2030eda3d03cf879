-- Accounts, link tokens, sessions, attempt budgets, outbox and audit log.
-- Times are Unix milliseconds (INTEGER); ids are UUID text; hashes are BLOBs.

CREATE TABLE accounts (
    id                TEXT PRIMARY KEY,
    email             TEXT NOT NULL UNIQUE,
    password_hash     TEXT NOT NULL,
    email_verified_at INTEGER,
    security_stamp    TEXT NOT NULL,
    created_at        INTEGER NOT NULL
);

CREATE TABLE account_tokens (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX account_tokens_by_account ON account_tokens (account_id, purpose, created_at);

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    token_hash     BLOB NOT NULL UNIQUE,
    amr            TEXT NOT NULL,
    auth_time      INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    ip             TEXT,
    user_agent     TEXT,
    security_stamp TEXT NOT NULL
);
CREATE INDEX sessions_by_account ON sessions (account_id);

CREATE TABLE attempt_budgets (
    key             TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL
);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    payload         BLOB,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    leased_until    INTEGER,
    sent_at         INTEGER,
    failed_at       INTEGER,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;

CREATE TABLE audit_log (
    id         TEXT PRIMARY KEY,
    at         INTEGER NOT NULL,
    account_id TEXT,
    event      TEXT NOT NULL,
    ip         TEXT,
    user_agent TEXT,
    detail     TEXT NOT NULL
);
CREATE INDEX audit_log_by_account ON audit_log (account_id, at);
CREATE INDEX audit_log_by_time ON audit_log (at);
