-- The mandatory-2FA policy and its reminders.

-- Set at sign-up when the policy covered new accounts: such an account must have 2FA at once.
ALTER TABLE accounts ADD COLUMN two_factor_required INTEGER NOT NULL DEFAULT 0;

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
