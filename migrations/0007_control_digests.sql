-- The control-plane digest (ADR 0014): per control-plane table, the sum mod
-- 2^256 of the SHA-256 of each row's canonical encoding
-- (ledger/control_digest.py), moved by the processor in the same transaction
-- as the rows it writes. A row changed behind the ledger's back no longer sums
-- to it, and a processor refuses to start on such a table.
--
-- An empty table's digest is 0. A table that already holds rows when this
-- migration runs gets NULL ("not sealed"): the encoding is not SQL, so the
-- first processor to start computes it from the rows it loads and seals it.
-- Run `claw-ledger audit` before upgrading a ledger that has rows.
CREATE TABLE control_digests (
    table_name text PRIMARY KEY
        CHECK (table_name IN ('keys', 'policies', 'tokens', 'jobs', 'halts')),
    digest     text CHECK (digest ~ '^[0-9a-f]{64}$')
);

INSERT INTO control_digests (table_name, digest)
SELECT name, CASE WHEN filled THEN NULL ELSE repeat('0', 64) END
FROM (VALUES ('keys',     EXISTS (SELECT 1 FROM keys)),
             ('policies', EXISTS (SELECT 1 FROM policies)),
             ('tokens',   EXISTS (SELECT 1 FROM tokens)),
             ('jobs',     EXISTS (SELECT 1 FROM jobs)),
             ('halts',    EXISTS (SELECT 1 FROM halts))) AS t (name, filled);

-- moved by the processor with the rows (migration 0006's role_grants)
INSERT INTO role_grants (table_name, writer_privileges) VALUES ('control_digests', 'SELECT, UPDATE');
