-- The operator console: accounts an operator locked (no sign-in until unlocked), and audit
-- events found by name.
ALTER TABLE accounts ADD COLUMN locked_at BIGINT;
CREATE INDEX audit_log_by_event ON audit_log (event, at);

-- Enrollment statistics, one row per day, name and label (method, outcome, country), written
-- by a background job so the console reads rows instead of scanning accounts.
CREATE TABLE stats_daily (
    day   TEXT NOT NULL,
    name  TEXT NOT NULL,
    label TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (day, name, label)
);
