-- API keys can be revoked (issue 28): why, for the operator's list and the audit trail, and
-- when a key was last used (written at most once a minute per key, never on every request).
-- revoked_at already exists; revoked keys stay in the table so the list and audit keep them.
ALTER TABLE api_keys ADD COLUMN revoked_reason TEXT;
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
