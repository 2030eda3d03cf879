-- Second factors, backup codes, partial sessions, the verification API's tenants, keys and
-- subjects, and the canary that proves the data-encryption key at start-up.

ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'full';
ALTER TABLE sessions ADD COLUMN factor_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN step_up_at INTEGER;
CREATE INDEX sessions_partial_expiry ON sessions (kind, expires_at);

-- owner is 'account:<uuid>' for hosted accounts or 'subject:<uuid>' for API subjects.
CREATE TABLE factors (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    kind          TEXT NOT NULL,
    label         TEXT NOT NULL,
    status        TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    secret        BLOB NOT NULL,
    algorithm     TEXT NOT NULL,
    digits        INTEGER NOT NULL,
    period        INTEGER NOT NULL,
    last_step     INTEGER NOT NULL DEFAULT -1,
    last_drift    INTEGER NOT NULL DEFAULT 0,
    drift_matches INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    confirmed_at  INTEGER,
    last_used_at  INTEGER
);
CREATE INDEX factors_by_owner ON factors (owner, status);

CREATE TABLE backup_codes (
    owner      TEXT NOT NULL,
    code_hash  BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (owner, code_hash)
);

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    name         TEXT NOT NULL,
    key_hash     BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);

CREATE TABLE subjects (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    external_id TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, external_id)
);

CREATE TABLE key_canary (
    id     INTEGER PRIMARY KEY,
    key_id TEXT NOT NULL,
    blob   BLOB NOT NULL
);
