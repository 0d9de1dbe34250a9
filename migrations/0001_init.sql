-- claw-ledger core schema: the append-only event ledger, quarantine,
-- consumer positions (exactly-once tracking) and the key registry.

CREATE TABLE events (
    position          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id          uuid        NOT NULL UNIQUE,
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
    -- per-partition hash chain: ledger_seq is contiguous from 1, chain_hash links to prev
    ledger_seq        bigint      NOT NULL,
    prev_chain_hash   text,
    chain_hash        text        NOT NULL,
    UNIQUE (kafka_topic, kafka_partition, kafka_offset),
    UNIQUE (kafka_topic, kafka_partition, ledger_seq)
);

CREATE INDEX events_stream_idx ON events (stream, position);
CREATE INDEX events_type_idx ON events (event_type, position);
CREATE INDEX events_producer_idx ON events (producer, position);
CREATE INDEX events_occurred_idx ON events (occurred_at, position);

-- The ledger is append-only, enforced by the database itself.
CREATE FUNCTION claw_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'claw-ledger: % on % is refused: the ledger is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION claw_refuse_change();

CREATE TABLE quarantine (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reason_code     text        NOT NULL,
    detail          text        NOT NULL,
    raw             bytea       NOT NULL,
    raw_size        integer     NOT NULL,
    event_id        text,
    signer_did      text,
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);
CREATE INDEX quarantine_reason_idx ON quarantine (reason_code, id);
CREATE INDEX quarantine_event_idx ON quarantine (event_id);

CREATE TRIGGER quarantine_append_only
    BEFORE UPDATE OR DELETE ON quarantine
    FOR EACH ROW EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER quarantine_no_truncate
    BEFORE TRUNCATE ON quarantine
    FOR EACH STATEMENT EXECUTE FUNCTION claw_refuse_change();

-- Exactly-once: the next offset to read, written in the same transaction as the effects.
CREATE TABLE consumer_positions (
    consumer_group  text    NOT NULL,
    topic           text    NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset     bigint  NOT NULL,
    ledger_seq      bigint  NOT NULL DEFAULT 0,
    chain_hash      text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);

-- Key registry projection (rebuilt from key.* events).
CREATE TABLE keys (
    did                 text PRIMARY KEY,
    name                text    NOT NULL,
    roles               jsonb   NOT NULL,
    registered_by       text    NOT NULL,
    registered_event_id text    NOT NULL,
    revoked             boolean NOT NULL DEFAULT false,
    revoked_reason      text
);

-- Bumped whenever a control-plane projection changes, so processors in a
-- consumer group notice and reload their cached state.
CREATE SEQUENCE control_version;

CREATE TABLE ledger_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
