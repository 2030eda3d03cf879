-- On SQLite a sign-in's session, its audit row and the browser and network it came from are
-- one statement (PostgreSQL uses data-modifying CTEs for the same): an INSERT into this view,
-- whose trigger writes the rows inside that statement's own implicit transaction, so they
-- exist together or not at all. Each statement is a hand-off to sqlx's connection thread;
-- BEGIN, four INSERTs and COMMIT were six, on the cores the password hashing needs.
-- The columns are PostgreSQL's parameters of the same write, in the same order: the session
-- (s_*), its audit row (a_*), the browser and network (d_*, each written only when present)
-- and the browser's own audit row (e_*, written only when present).
CREATE VIEW session_writes AS SELECT
    NULL AS s_id, NULL AS s_account_id, NULL AS s_token_hash, NULL AS s_amr,
    NULL AS s_auth_time, NULL AS s_created_at, NULL AS s_last_seen_at, NULL AS s_expires_at,
    NULL AS s_ip, NULL AS s_user_agent, NULL AS s_security_stamp, NULL AS s_kind,
    NULL AS s_step_up_at,
    NULL AS a_id, NULL AS a_at, NULL AS a_account_id, NULL AS a_event, NULL AS a_ip,
    NULL AS a_user_agent, NULL AS a_detail,
    NULL AS d_id, NULL AS d_account_id, NULL AS d_device_hash, NULL AS d_user_agent,
    NULL AS d_ip, NULL AS d_seen_at, NULL AS d_network,
    NULL AS e_id, NULL AS e_at, NULL AS e_account_id, NULL AS e_event, NULL AS e_ip,
    NULL AS e_user_agent, NULL AS e_detail
WHERE 0;

CREATE TRIGGER session_writes_insert INSTEAD OF INSERT ON session_writes
BEGIN
    INSERT INTO sessions (id, account_id, token_hash, amr, auth_time, created_at, last_seen_at,
                          expires_at, ip, user_agent, security_stamp, kind, step_up_at)
    VALUES (NEW.s_id, NEW.s_account_id, NEW.s_token_hash, NEW.s_amr, NEW.s_auth_time,
            NEW.s_created_at, NEW.s_last_seen_at, NEW.s_expires_at, NEW.s_ip, NEW.s_user_agent,
            NEW.s_security_stamp, NEW.s_kind, NEW.s_step_up_at);
    INSERT INTO audit_log (id, at, account_id, event, ip, user_agent, detail)
    VALUES (NEW.a_id, NEW.a_at, NEW.a_account_id, NEW.a_event, NEW.a_ip, NEW.a_user_agent,
            NEW.a_detail);
    INSERT INTO known_devices (id, account_id, device_hash, user_agent, ip, first_seen_at,
                               last_seen_at)
    SELECT NEW.d_id, NEW.d_account_id, NEW.d_device_hash, NEW.d_user_agent, NEW.d_ip,
           NEW.d_seen_at, NEW.d_seen_at
    WHERE NEW.d_device_hash IS NOT NULL
    ON CONFLICT (account_id, device_hash) DO UPDATE
        SET user_agent = excluded.user_agent, ip = excluded.ip,
            last_seen_at = excluded.last_seen_at;
    INSERT INTO known_networks (account_id, network, first_seen_at, last_seen_at)
    SELECT NEW.d_account_id, NEW.d_network, NEW.d_seen_at, NEW.d_seen_at
    WHERE NEW.d_network IS NOT NULL
    ON CONFLICT (account_id, network) DO UPDATE SET last_seen_at = excluded.last_seen_at;
    INSERT INTO audit_log (id, at, account_id, event, ip, user_agent, detail)
    SELECT NEW.e_id, NEW.e_at, NEW.e_account_id, NEW.e_event, NEW.e_ip, NEW.e_user_agent,
           NEW.e_detail
    WHERE NEW.e_id IS NOT NULL;
END;
