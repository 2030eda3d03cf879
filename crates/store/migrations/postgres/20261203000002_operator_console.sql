-- The operator console: accounts an operator locked (no sign-in until unlocked), and audit
-- events found by name.
ALTER TABLE accounts ADD COLUMN locked_at BIGINT;
CREATE INDEX audit_log_by_event ON audit_log (event, at);
