-- The events table becomes range-partitioned on position (ADR 0021), so that
-- old partitions can be detached and archived while the chains still verify
-- from a recorded boundary onward.
--
-- A partitioned table's unique constraints must contain the partition key, and
-- the ledger's global uniques (event_id; the Kafka offset and the ledger_seq of
-- each topic partition) do not. They move to event_keys, a small
-- non-partitioned table filled by a set-based statement trigger in the same
-- statement as the insert (one extra index insert per unique, no per-row
-- PL/pgSQL). Its rows outlive a detach, so an archived event_id or offset can
-- never be recorded again.
--
-- Requires PostgreSQL 17 or newer (identity columns on partitioned tables).

ALTER TABLE events RENAME TO events_before_0017;

CREATE TABLE events (
    position          bigint      GENERATED ALWAYS AS IDENTITY,
    event_id          uuid        NOT NULL,
    event_type        text        NOT NULL,
    stream            text        NOT NULL,
    producer          text        NOT NULL,
    occurred_at       timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    payload_hash_b64u text        NOT NULL,
    envelope_sha256   text        NOT NULL,
    -- the exact bytes received: a jsonb round trip reorders keys (formats.md §2)
    envelope_raw      bytea       NOT NULL,
    payload           jsonb       NOT NULL,
    kafka_topic       text        NOT NULL,
    kafka_partition   integer     NOT NULL,
    kafka_offset      bigint      NOT NULL,
    ledger_seq        bigint      NOT NULL,
    prev_chain_hash   text,
    chain_hash        text        NOT NULL
) PARTITION BY RANGE (position);

-- The global uniques of events, one row per event ever recorded (archived or not).
CREATE TABLE event_keys (
    event_id          uuid   PRIMARY KEY,
    payload_hash_b64u text   NOT NULL,
    kafka_topic       text   NOT NULL,
    kafka_partition   integer NOT NULL,
    kafka_offset      bigint NOT NULL,
    ledger_seq        bigint NOT NULL,
    position          bigint NOT NULL,
    UNIQUE (kafka_topic, kafka_partition, kafka_offset),
    UNIQUE (kafka_topic, kafka_partition, ledger_seq)
);

CREATE TRIGGER event_keys_append_only
    BEFORE UPDATE OR DELETE ON event_keys
    FOR EACH ROW EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER event_keys_no_truncate
    BEFORE TRUNCATE ON event_keys
    FOR EACH STATEMENT EXECUTE FUNCTION claw_refuse_change();

-- How partitions are cut: partition_rows positions each, partitions_ahead of
-- them kept empty above the last position handed out.
CREATE TABLE event_partitioning (
    id               integer PRIMARY KEY CHECK (id = 1),
    partition_rows   bigint  NOT NULL CHECK (partition_rows > 0),
    partitions_ahead integer NOT NULL CHECK (partitions_ahead >= 1)
);
INSERT INTO event_partitioning VALUES (1, 1000000, 2);

-- Every partition of events ever created; detached_at is set by an archive.
CREATE TABLE event_partitions (
    name          text PRIMARY KEY,
    position_from bigint NOT NULL UNIQUE,
    position_to   bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    detached_at   timestamptz,
    CHECK (position_to > position_from)
);

-- One row per archive cut: events below before_position are no longer in the
-- table. state_snapshot is the verified replay state at the cut (projection
-- rows, chain positions, trust root), so replay and audit resume from it.
CREATE TABLE archive_boundaries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    before_position bigint NOT NULL UNIQUE,
    partition_name  text   NOT NULL REFERENCES event_partitions (name),
    events          bigint NOT NULL,
    detached_at     timestamptz NOT NULL DEFAULT now(),
    detached_by     text   NOT NULL DEFAULT current_user,
    state_snapshot  jsonb  NOT NULL
);

-- The chain head of every Kafka partition at each cut: the audit starts each
-- chain after it.
CREATE TABLE archive_chain_heads (
    boundary_id     bigint  NOT NULL REFERENCES archive_boundaries (id),
    kafka_topic     text    NOT NULL,
    kafka_partition integer NOT NULL,
    ledger_seq      bigint  NOT NULL,
    chain_hash      text    NOT NULL,
    next_offset     bigint  NOT NULL,
    PRIMARY KEY (boundary_id, kafka_topic, kafka_partition)
);

CREATE TRIGGER archive_boundaries_append_only
    BEFORE UPDATE OR DELETE ON archive_boundaries
    FOR EACH ROW EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER archive_chain_heads_append_only
    BEFORE UPDATE OR DELETE ON archive_chain_heads
    FOR EACH ROW EXECUTE FUNCTION claw_refuse_change();

CREATE FUNCTION claw_record_event_keys() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO event_keys (event_id, payload_hash_b64u, kafka_topic, kafka_partition,
                            kafka_offset, ledger_seq, position)
    SELECT event_id, payload_hash_b64u, kafka_topic, kafka_partition,
           kafka_offset, ledger_seq, position
      FROM new_events;
    RETURN NULL;
END;
$$;

-- Creates the partitions that are missing ahead of the last position handed
-- out (at least `need` positions, else partitions_ahead partitions); returns
-- how many positions remain before the last partition's end.
-- SECURITY DEFINER: the writer (processor) calls it but owns nothing.
CREATE FUNCTION claw_ensure_event_partitions(need bigint DEFAULT 0) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    rows_per bigint;
    ahead    integer;
    last_pos bigint;
    upper_to bigint;
    part     text;
BEGIN
    SELECT partition_rows, partitions_ahead INTO rows_per, ahead
      FROM event_partitioning WHERE id = 1;
    need := greatest(need, rows_per * ahead);
    last_pos := coalesce(pg_sequence_last_value(pg_get_serial_sequence('events', 'position')::regclass), 0);
    SELECT max(position_to) INTO upper_to FROM event_partitions;
    IF upper_to IS NOT NULL AND upper_to - 1 - last_pos >= need THEN
        RETURN upper_to - 1 - last_pos;
    END IF;
    -- one creator at a time; the others wait and then find the work done
    PERFORM pg_advisory_xact_lock(hashtext('claw_ensure_event_partitions'));
    SELECT coalesce(max(position_to), 1) INTO upper_to FROM event_partitions;
    WHILE upper_to - 1 - last_pos < need LOOP
        part := format('events_%s', lpad(upper_to::text, 12, '0'));
        -- CREATE + ATTACH locks events with SHARE UPDATE EXCLUSIVE only: ingest goes on
        EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (position >= %s AND position < %s)',
                       part, part || '_range', upper_to, upper_to + rows_per);
        EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                       part, upper_to, upper_to + rows_per);
        -- statement triggers are not inherited: a partition refuses TRUNCATE itself
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION claw_refuse_change()',
                       part || '_no_truncate', part);
        INSERT INTO event_partitions (name, position_from, position_to)
            VALUES (part, upper_to, upper_to + rows_per);
        upper_to := upper_to + rows_per;
    END LOOP;
    RETURN upper_to - 1 - last_pos;
END;
$$;

-- Owner only: a new partition size, for partitions not yet holding a row. The
-- empty partitions above the last position handed out are dropped and cut
-- again at the new size.
CREATE FUNCTION claw_set_event_partition_rows(new_rows bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    last_pos bigint;
    part     record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('claw_ensure_event_partitions'));
    UPDATE event_partitioning SET partition_rows = new_rows WHERE id = 1;
    last_pos := coalesce(pg_sequence_last_value(pg_get_serial_sequence('events', 'position')::regclass), 0);
    FOR part IN SELECT name FROM event_partitions
                 WHERE position_from > last_pos AND detached_at IS NULL
                 ORDER BY position_from DESC LOOP
        EXECUTE format('DROP TABLE %I', part.name);
        -- bookkeeping of a partition that never held a row; the table is gone
        DELETE FROM event_partitions WHERE name = part.name;
    END LOOP;
    RETURN claw_ensure_event_partitions();
END;
$$;
REVOKE ALL ON FUNCTION claw_set_event_partition_rows(bigint) FROM PUBLIC;

-- the rows recorded before this migration: partitions of partition_rows each
DO $$
DECLARE
    rows_per bigint := (SELECT partition_rows FROM event_partitioning WHERE id = 1);
    last_pos bigint := (SELECT coalesce(max(position), 0) FROM events_before_0017);
    lo       bigint := 1;
    part     text;
BEGIN
    WHILE lo <= last_pos LOOP
        part := format('events_%s', lpad(lo::text, 12, '0'));
        EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%s) TO (%s)',
                       part, lo, lo + rows_per);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION claw_refuse_change()',
                       part || '_no_truncate', part);
        INSERT INTO event_partitions (name, position_from, position_to)
            VALUES (part, lo, lo + rows_per);
        lo := lo + rows_per;
    END LOOP;
    INSERT INTO events OVERRIDING SYSTEM VALUE
        SELECT position, event_id, event_type, stream, producer, occurred_at, recorded_at,
               payload_hash_b64u, envelope_sha256, envelope_raw, payload, kafka_topic,
               kafka_partition, kafka_offset, ledger_seq, prev_chain_hash, chain_hash
          FROM events_before_0017 ORDER BY position;
    INSERT INTO event_keys
        SELECT event_id, payload_hash_b64u, kafka_topic, kafka_partition, kafka_offset,
               ledger_seq, position
          FROM events_before_0017;
    -- positions go on where the old identity stopped
    IF last_pos > 0 THEN
        PERFORM setval(pg_get_serial_sequence('events', 'position'), last_pos);
    END IF;
END;
$$;

DROP TABLE events_before_0017;

ALTER TABLE events ADD PRIMARY KEY (position);
-- no index on event_id here: event_keys has it (a lookup joins on position)
CREATE INDEX events_coordinates_idx ON events (kafka_topic, kafka_partition, kafka_offset);
CREATE INDEX events_chain_idx ON events (kafka_topic, kafka_partition, ledger_seq);
CREATE INDEX events_stream_idx ON events (stream, position);
CREATE INDEX events_type_idx ON events (event_type, position);
CREATE INDEX events_producer_idx ON events (producer, position);
CREATE INDEX events_occurred_idx ON events (occurred_at, position);

-- BEFORE row triggers on the parent are cloned onto every partition
CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER events_record_keys
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION claw_record_event_keys();

-- the partitions ahead of need; the processor calls this again as it goes
SELECT claw_ensure_event_partitions();

INSERT INTO role_grants (table_name, writer_privileges) VALUES
    ('event_keys',          'SELECT'),
    ('event_partitioning',  'SELECT'),
    ('event_partitions',    'SELECT'),
    ('archive_boundaries',  'SELECT'),
    ('archive_chain_heads', 'SELECT');
