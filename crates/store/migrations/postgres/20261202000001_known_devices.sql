-- Known devices and networks, and the emailed code that confirms a sign-in from a new one.

-- On unless an operator turned it off for this account (`twofold user set --ip-verification off`).
ALTER TABLE accounts ADD COLUMN ip_verification BIGINT NOT NULL DEFAULT 1;

-- Browsers an account has signed in from: the keyed hash of the device cookie.
CREATE TABLE known_devices (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    device_hash   BYTEA NOT NULL,
    user_agent    TEXT,
    ip            TEXT,
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    UNIQUE (account_id, device_hash)
);

-- IP networks (/24, /48 by default) an account has signed in from.
CREATE TABLE known_networks (
    account_id    TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    network       TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, network)
);

-- One code per device-verification session; used_at is the single point of consumption.
CREATE TABLE device_challenges (
    session_id  TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    code_hash   BYTEA NOT NULL,
    device_hash BYTEA NOT NULL,
    network     TEXT,
    reason      TEXT NOT NULL,
    sent_at     BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX device_challenges_by_expiry ON device_challenges (expires_at);
