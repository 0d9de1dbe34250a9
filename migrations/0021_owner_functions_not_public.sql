-- The functions that run as the owner (SECURITY DEFINER, migration 0017) were
-- executable by PUBLIC, as PostgreSQL makes every new function: the reader
-- role could create event partitions, as many as it asked for, as the owner.
-- Only the writer (the processor) calls claw_ensure_event_partitions: the
-- role grants give it EXECUTE (storage/roles.py). The trigger function is
-- never called by a role (a trigger fires it).
REVOKE ALL ON FUNCTION claw_ensure_event_partitions(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION claw_record_event_keys() FROM PUBLIC;
