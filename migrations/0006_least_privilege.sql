-- Least privilege (ADR 0013): the processor and the query commands do not
-- connect as the owner of these tables. A role that is not the owner cannot
-- ALTER TABLE ... DISABLE TRIGGER, and without UPDATE/DELETE/TRUNCATE it cannot
-- reach the append-only triggers of 0001 at all.
--
-- Role names carry passwords and depend on the database (several ledgers may
-- share one server), so they are created by `claw-ledger migrate` in code; this
-- migration holds what is the same everywhere: no rights for PUBLIC, and the
-- one function that grants the writer and the reader what they need. migrate
-- calls it after every run (GRANT is idempotent), and a later migration that
-- adds a table replaces the function.

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC;

CREATE FUNCTION claw_ledger_grant_roles(writer text, reader text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t text;
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

    -- the writer: exactly what storage/postgres.py does
    FOREACH t IN ARRAY ARRAY['events', 'quarantine', 'ledger_meta'] LOOP
        -- append-only: INSERT (COPY) and SELECT; ledger_meta.trust_root is written once
        EXECUTE format('GRANT SELECT, INSERT ON %I TO %I', t, writer);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['consumer_positions', 'keys', 'policies', 'tokens', 'jobs',
                             'halts', 'receipts'] LOOP
        -- upserts (INSERT ... ON CONFLICT DO UPDATE) and SELECT ... FOR UPDATE
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO %I', t, writer);
    END LOOP;
    EXECUTE format('GRANT SELECT, UPDATE ON control_state TO %I', writer);
    -- 0007's control-plane digests, moved with the rows (migrate calls this after every
    -- migration has run)
    IF to_regclass('control_digests') IS NOT NULL THEN
        EXECUTE format('GRANT SELECT, UPDATE ON control_digests TO %I', writer);
    END IF;
    -- the processor checks the schema version at start
    EXECUTE format('GRANT SELECT ON schema_migrations TO %I', writer);
END;
$$;

REVOKE ALL ON FUNCTION claw_ledger_grant_roles(text, text) FROM PUBLIC;
