-- When the last unsolicited mail of a kind went to a recipient (key: kind and recipient, e.g.
-- 'signup_existing:ada@example.com'). One conditional upsert on this row lets the next one
-- through or refuses it, so parallel requests cannot queue more than one per interval. Keys
-- name addresses that have an account, so the table stays as small as the accounts.
CREATE TABLE mail_intervals (
    key     TEXT PRIMARY KEY,
    sent_at BIGINT NOT NULL
);
