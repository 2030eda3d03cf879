-- /readyz proves that a write can commit (issue 29): it rewrites this one row, at most every
-- few seconds per node. A node whose database is full, read-only or stuck is then not ready.
CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY,
    beat_at BIGINT NOT NULL
);
INSERT INTO heartbeat (id, beat_at) VALUES (1, 0);
