-- One-time codes by SMS and email: their challenges, the send counters that hold the quotas
-- against SMS pumping, and delivery deadlines for messages that are useless once late.

-- A one-time code is dropped rather than delivered after this time (Unix ms).
ALTER TABLE outbox ADD COLUMN give_up_at BIGINT;
-- Masked destination of an sms/email factor ('+1 ••• ••• 8318'); the full one is sealed in secret.
ALTER TABLE factors ADD COLUMN hint TEXT;
-- When the last code went to this factor: the resend cooldown is one conditional UPDATE on it.
ALTER TABLE factors ADD COLUMN last_sent_at BIGINT;

CREATE TABLE code_challenges (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    factor_id       TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    session_id      TEXT,
    channel         TEXT NOT NULL,
    code_hash       BYTEA NOT NULL,
    link_hash       BYTEA UNIQUE,
    message_id      TEXT NOT NULL,
    idempotency_key TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    approved_at     BIGINT,
    used_at         BIGINT,
    voided_at       BIGINT
);
CREATE INDEX code_challenges_by_owner ON code_challenges (owner, created_at);
CREATE INDEX code_challenges_by_session ON code_challenges (session_id);
CREATE INDEX code_challenges_by_expiry ON code_challenges (expires_at);
CREATE UNIQUE INDEX code_challenges_idempotency ON code_challenges (owner, idempotency_key);

-- Fixed-window counters: key is 'sms:number:+1…', 'sms:ip:…', 'sms:country:US', 'sms:global' …
CREATE TABLE send_counters (
    key          TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (key, window_start)
);
