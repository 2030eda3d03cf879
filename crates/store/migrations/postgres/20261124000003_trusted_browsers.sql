-- "Remember this browser": a browser that skips the second factor (only that) for one account
-- until a fixed expiry, or until the account's security stamp changes.

CREATE TABLE trusted_browsers (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    token_hash     BYTEA NOT NULL UNIQUE,
    user_agent     TEXT,
    ip             TEXT,
    security_stamp TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    last_used_at   BIGINT
);
CREATE INDEX trusted_browsers_by_account ON trusted_browsers (account_id);
