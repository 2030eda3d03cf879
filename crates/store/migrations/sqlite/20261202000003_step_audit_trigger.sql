-- On SQLite a consumed TOTP step and its audit row become one statement (PostgreSQL uses a
-- data-modifying CTE for the same): the consuming UPDATE carries the audit row in
-- pending_audit, and this trigger moves it into audit_log inside the UPDATE's own implicit
-- transaction, so the row exists exactly when the step was consumed. Each statement is a
-- hand-off to sqlx's connection thread; BEGIN, UPDATE, INSERT, COMMIT were four.
ALTER TABLE factors ADD COLUMN pending_audit TEXT;

CREATE TRIGGER factors_step_audit AFTER UPDATE OF last_step ON factors
WHEN NEW.pending_audit IS NOT NULL
BEGIN
    INSERT INTO audit_log (id, at, account_id, event, ip, user_agent, detail)
    VALUES (json_extract(NEW.pending_audit, '$.id'),
            json_extract(NEW.pending_audit, '$.at'),
            json_extract(NEW.pending_audit, '$.account_id'),
            json_extract(NEW.pending_audit, '$.event'),
            json_extract(NEW.pending_audit, '$.ip'),
            json_extract(NEW.pending_audit, '$.user_agent'),
            json_extract(NEW.pending_audit, '$.detail'));
    UPDATE factors SET pending_audit = NULL WHERE id = NEW.id;
END;
