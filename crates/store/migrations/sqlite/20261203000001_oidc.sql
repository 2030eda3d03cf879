-- The OpenID Connect provider: applications (clients), signing keys, pending authorization
-- requests, consents, authorization codes and tokens. Codes and tokens are stored as keyed
-- hashes only; private keys sealed with the data key.
CREATE TABLE oidc_clients (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL,
    secret_hash               BLOB,
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    id_token_alg              TEXT NOT NULL DEFAULT 'ES256',
    first_party               INTEGER NOT NULL,
    created_at                INTEGER NOT NULL
);

CREATE TABLE oidc_signing_keys (
    id          TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    private_key BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);

CREATE TABLE oidc_requests (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES oidc_clients(id) ON DELETE CASCADE,
    request    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX oidc_requests_by_expiry ON oidc_requests (expires_at);

CREATE TABLE oidc_consents (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES oidc_clients(id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, client_id)
);

CREATE TABLE oidc_codes (
    code_hash      BLOB PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES oidc_clients(id) ON DELETE CASCADE,
    account_id     TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    grant_json     TEXT NOT NULL,
    family_id      TEXT NOT NULL,
    security_stamp TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER
);

CREATE INDEX oidc_codes_by_expiry ON oidc_codes (expires_at);

CREATE TABLE oidc_tokens (
    token_hash     BLOB PRIMARY KEY,
    kind           TEXT NOT NULL,
    family_id      TEXT NOT NULL,
    client_id      TEXT NOT NULL REFERENCES oidc_clients(id) ON DELETE CASCADE,
    account_id     TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    grant_json     TEXT NOT NULL,
    security_stamp TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    revoked_at     INTEGER
);
CREATE INDEX oidc_tokens_by_family ON oidc_tokens (family_id);
CREATE INDEX oidc_tokens_by_account ON oidc_tokens (account_id);
CREATE INDEX oidc_tokens_by_expiry ON oidc_tokens (expires_at);
