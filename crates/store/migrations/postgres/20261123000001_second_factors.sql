-- Second factors, backup codes, partial sessions, the verification API's tenants, keys and
-- subjects, and the canary that proves the data-encryption key at start-up.

ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'full';
ALTER TABLE sessions ADD COLUMN factor_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN step_up_at BIGINT;
CREATE INDEX sessions_partial_expiry ON sessions (kind, expires_at);

-- owner is 'account:<uuid>' for hosted accounts or 'subject:<uuid>' for API subjects.
CREATE TABLE factors (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    kind          TEXT NOT NULL,
    label         TEXT NOT NULL,
    status        TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    secret        BYTEA NOT NULL,
    algorithm     TEXT NOT NULL,
    digits        BIGINT NOT NULL,
    period        BIGINT NOT NULL,
    last_step     BIGINT NOT NULL DEFAULT -1,
    last_drift    BIGINT NOT NULL DEFAULT 0,
    drift_matches BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    confirmed_at  BIGINT,
    last_used_at  BIGINT
);
CREATE INDEX factors_by_owner ON factors (owner, status);

CREATE TABLE backup_codes (
    owner      TEXT NOT NULL,
    code_hash  BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (owner, code_hash)
);

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    name         TEXT NOT NULL,
    key_hash     BYTEA NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

CREATE TABLE subjects (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    external_id TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, external_id)
);

CREATE TABLE key_canary (
    id     BIGINT PRIMARY KEY,
    key_id TEXT NOT NULL,
    blob   BYTEA NOT NULL
);
