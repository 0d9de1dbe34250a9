-- Least privilege (ADR 0013): the processor and the query commands do not
-- connect as the owner of these tables. A role that is not the owner cannot
-- ALTER TABLE ... DISABLE TRIGGER, and without UPDATE/DELETE/TRUNCATE it cannot
-- reach the append-only triggers of 0001 at all.
--
-- Role names carry passwords and depend on the database (several ledgers may
-- share one server), so they are created by `claw-ledger migrate` in code; this
-- migration holds what is the same everywhere: no rights for PUBLIC, and the
-- one function that grants the writer and the reader what they need. migrate
-- calls it after every run (GRANT is idempotent). What the writer may do to
-- each table is a row of role_grants, so a later migration that adds a table
-- inserts one row there and never replaces the function.

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC;

CREATE TABLE role_grants (
    table_name        text PRIMARY KEY,
    -- only these three: the writer never gets DELETE, TRUNCATE or ownership
    writer_privileges text NOT NULL
        CHECK (writer_privileges ~ '^(SELECT|INSERT|UPDATE)(, (SELECT|INSERT|UPDATE))*$')
);

INSERT INTO role_grants (table_name, writer_privileges) VALUES
    -- append-only: INSERT (COPY) and SELECT; ledger_meta.trust_root is written once
    ('events',             'SELECT, INSERT'),
    ('quarantine',         'SELECT, INSERT'),
    ('ledger_meta',        'SELECT, INSERT'),
    -- upserts (INSERT ... ON CONFLICT DO UPDATE) and SELECT ... FOR UPDATE
    ('consumer_positions', 'SELECT, INSERT, UPDATE'),
    ('keys',               'SELECT, INSERT, UPDATE'),
    ('policies',           'SELECT, INSERT, UPDATE'),
    ('tokens',             'SELECT, INSERT, UPDATE'),
    ('jobs',               'SELECT, INSERT, UPDATE'),
    ('halts',              'SELECT, INSERT, UPDATE'),
    ('receipts',           'SELECT, INSERT, UPDATE'),
    ('control_state',      'SELECT, UPDATE'),
    -- the processor checks the schema version at start
    ('schema_migrations',  'SELECT');

CREATE FUNCTION claw_ledger_grant_roles(writer text, reader text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    grant_row record;
BEGIN
    BEGIN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I, %I', current_database(), writer, reader);
    EXCEPTION WHEN insufficient_privilege THEN
        -- the tables' owner need not own the database; PUBLIC has CONNECT by default
        RAISE NOTICE 'claw-ledger: cannot grant CONNECT on database %', current_database();
    END;
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I, %I', writer, reader);

    -- the reader: SELECT on everything, nothing else
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA public TO %I', reader);

    -- the writer: exactly what storage/ does, one row of role_grants per table
    FOR grant_row IN SELECT table_name, writer_privileges FROM role_grants ORDER BY table_name LOOP
        EXECUTE format('GRANT %s ON %I TO %I',
                       grant_row.writer_privileges, grant_row.table_name, writer);
    END LOOP;
END;
$$;

REVOKE ALL ON FUNCTION claw_ledger_grant_roles(text, text) FROM PUBLIC;
