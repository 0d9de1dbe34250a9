-- The transparency log (ADR 0011, ADR 0017): one RFC 9162 tree over the
-- accepted events, appended by the single checkpointer
-- (`claw-ledger checkpointer run`). Each round writes its new leaves, the
-- nodes of the complete subtrees they close and the signed checkpoint in ONE
-- transaction, so the tree's stored state is always the last checkpoint's.
-- All three tables are append-only, like `events`.

-- log index -> the event it holds (the assignment cannot be derived from the
-- events: across partitions, log order is the order the checkpointer saw)
-- and its leaf hash: the level-0 nodes of the tree live here, one row per event
CREATE TABLE tlog_leaves (
    log_index       bigint  PRIMARY KEY CHECK (log_index >= 0),
    -- an event is a leaf once (a position is one event; found by event id
    -- through events, whose event_id is unique: a random uuid index here
    -- would cost the checkpointer a random page write per event)
    position        bigint  NOT NULL UNIQUE,
    event_id        uuid    NOT NULL,
    kafka_partition integer NOT NULL,
    ledger_seq      bigint  NOT NULL CHECK (ledger_seq >= 1),
    leaf_hash       bytea   NOT NULL CHECK (octet_length(leaf_hash) = 32)
);

-- (level, idx) -> hash of the complete subtree over leaves
-- [idx * 2^level, (idx + 1) * 2^level), for level >= 1 (level 0 is
-- tlog_leaves.leaf_hash). The incomplete right edge is never stored: proofs
-- fold it from these.
CREATE TABLE tlog_nodes (
    level smallint NOT NULL CHECK (level >= 1 AND level < 64),
    idx   bigint   NOT NULL CHECK (idx >= 0),
    hash  bytea    NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (level, idx)
);

-- every checkpoint the ledger signed, one per round
CREATE TABLE tlog_checkpoints (
    tree_size   bigint      PRIMARY KEY CHECK (tree_size >= 1),
    origin      text        NOT NULL,
    root_hash   bytea       NOT NULL CHECK (octet_length(root_hash) = 32),
    -- the C2SP signed note, exactly as signed
    note        text        NOT NULL,
    signer_did  text        NOT NULL,
    -- the checkpoint.signed event that publishes it (re-published with the
    -- same id and payload after a crash: the processor sees a duplicate)
    event_id    uuid        NOT NULL UNIQUE,
    occurred_at text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER tlog_leaves_append_only
    BEFORE UPDATE OR DELETE ON tlog_leaves
    FOR EACH ROW EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER tlog_leaves_no_truncate
    BEFORE TRUNCATE ON tlog_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER tlog_nodes_append_only
    BEFORE UPDATE OR DELETE ON tlog_nodes
    FOR EACH ROW EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER tlog_nodes_no_truncate
    BEFORE TRUNCATE ON tlog_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER tlog_checkpoints_append_only
    BEFORE UPDATE OR DELETE ON tlog_checkpoints
    FOR EACH ROW EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER tlog_checkpoints_no_truncate
    BEFORE TRUNCATE ON tlog_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION claw_refuse_change();

-- the checkpointer connects as the writer: it appends, and reads back what it wrote
INSERT INTO role_grants (table_name, writer_privileges) VALUES
    ('tlog_leaves',      'SELECT, INSERT'),
    ('tlog_nodes',       'SELECT, INSERT'),
    ('tlog_checkpoints', 'SELECT, INSERT');
