-- The API service keeps the api_keys rows it has read (ADR 0028). Every change
-- to the table notifies the channel `claw_ledger_api_keys` when it commits, so
-- a revoked, re-roled or deleted key is dropped from every service's cache at
-- once; a service that is not listening reads the row on every request. The
-- payload is the key id (empty for a TRUNCATE, which drops every key).
CREATE FUNCTION claw_api_keys_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('claw_ledger_api_keys', '');
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('claw_ledger_api_keys', OLD.key_id);
    ELSE
        PERFORM pg_notify('claw_ledger_api_keys', NEW.key_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_keys_changed_rows
    AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION claw_api_keys_changed();

CREATE TRIGGER api_keys_changed_truncate
    AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION claw_api_keys_changed();
