-- The writer role (ADR 0013) moves the control-plane digests of 0007 in the same
-- transaction as the rows: SELECT and UPDATE on control_digests. As 0006 says, a
-- migration that adds a table replaces the grant function; migrate calls it
-- after every run, so existing roles get the new right too.
CREATE OR REPLACE FUNCTION claw_ledger_grant_roles(writer text, reader text) RETURNS void
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
    -- 0007: the processor moves the digests with the rows, and seals unsealed ones
    EXECUTE format('GRANT SELECT, UPDATE ON control_digests TO %I', writer);
    -- the processor checks the schema version at start
    EXECUTE format('GRANT SELECT ON schema_migrations TO %I', writer);
END;
$$;
