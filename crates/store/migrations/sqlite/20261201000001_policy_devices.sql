-- Mandatory-2FA policy, its reminders, and the browsers and networks an account signed in from.

-- Set at sign-up when the policy covered new accounts: such an account must have 2FA at once.
ALTER TABLE accounts ADD COLUMN two_factor_required INTEGER NOT NULL DEFAULT 0;
-- Operators can turn the new-network check off for one account.
ALTER TABLE accounts ADD COLUMN ip_verification INTEGER NOT NULL DEFAULT 1;

-- Settings operators change while servers run (the policy); the value is JSON.
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One row per reminder sent: the primary key makes "each sent once" hold across nodes.
CREATE TABLE policy_reminders (
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    deadline    INTEGER NOT NULL,
    days_before INTEGER NOT NULL,
    sent_at     INTEGER NOT NULL,
    PRIMARY KEY (account_id, deadline, days_before)
);

-- Browsers that proved the account's email once (a long-lived device cookie; its keyed hash).
CREATE TABLE known_devices (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    device_hash  BLOB NOT NULL,
    user_agent   TEXT,
    ip           TEXT,
    first_seen_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    UNIQUE (account_id, device_hash)
);

-- Networks (/24 for IPv4, /48 for IPv6 by default) the account signed in from.
CREATE TABLE known_networks (
    account_id    TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    network       TEXT NOT NULL,
    first_seen_at INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, network)
);
