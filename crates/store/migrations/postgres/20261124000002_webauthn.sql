-- Security keys and passkeys (WebAuthn): the credentials behind `webauthn` factors, and the
-- server-side state of each ceremony (single use, five minutes).

CREATE TABLE webauthn_credentials (
    factor_id     TEXT PRIMARY KEY REFERENCES factors(id) ON DELETE CASCADE,
    owner         TEXT NOT NULL,
    -- Unique across every owner: a credential registered anywhere is refused again.
    credential_id BYTEA NOT NULL UNIQUE,
    -- webauthn-rs `Passkey` as JSON: public key, algorithm, counter, backup flags.
    passkey       TEXT NOT NULL,
    counter       BIGINT NOT NULL DEFAULT 0,
    discoverable  BIGINT NOT NULL DEFAULT 0,
    aaguid        TEXT,
    suspicious_at BIGINT
);
CREATE INDEX webauthn_credentials_by_owner ON webauthn_credentials (owner);

CREATE TABLE webauthn_ceremonies (
    id         TEXT PRIMARY KEY,
    owner      TEXT,
    session_id TEXT,
    kind       TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX webauthn_ceremonies_by_expiry ON webauthn_ceremonies (expires_at);

-- A tenant's own relying party for the verification API (its app's domain), instead of ours.
ALTER TABLE tenants ADD COLUMN rp_id TEXT;
-- JSON array of origins.
ALTER TABLE tenants ADD COLUMN rp_origins TEXT;
