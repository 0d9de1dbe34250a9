-- API keys of the HTTP API (`claw-ledger serve`, ADR 0018). A key is shown
-- once, when `claw-ledger apikey create` makes it; the ledger keeps only its
-- SHA-256. `key_id` is the key's public part (`clk_<key_id>_<secret>`): the
-- service finds the row by it and compares the hashes in constant time.
--
-- Who may write: only the tables' owner (the role `claw-ledger migrate` and
-- `claw-ledger apikey` connect as). No role_grants row, so the writer (the
-- processor) gets nothing here, and the reader (the API service) gets the
-- SELECT every reader has: the service can check a key but never mint,
-- revoke or re-role one.

CREATE TABLE api_keys (
    key_id      text        PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{12}$'),
    name        text        NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    role        text        NOT NULL CHECK (role IN ('reader', 'runtime', 'operator', 'admin')),
    key_sha256  text        NOT NULL UNIQUE CHECK (key_sha256 ~ '^[0-9a-f]{64}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
