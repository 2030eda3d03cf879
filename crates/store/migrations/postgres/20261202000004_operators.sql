-- Operators: accounts that run the installation (`twofold user create --operator`,
-- `twofold user promote`); the policy can hold them to security keys and passkeys.
ALTER TABLE accounts ADD COLUMN operator BIGINT NOT NULL DEFAULT 0;
