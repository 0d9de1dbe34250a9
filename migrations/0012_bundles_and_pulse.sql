-- Sealed proof bundles and Trust Pulse records (ADR 0019).
--
-- bundles and pulse_records are projections of the ledger's own events
-- (bundle.sealed, pulse.published); bundle_documents holds each sealed
-- bundle's exact bytes, written by the bundler itself because a bundle of
-- thousands of receipts is far larger than an event may be. All three are
-- append-only: a row, once written, is never rewritten (the writer may only
-- INSERT, and the triggers of 0001 refuse UPDATE, DELETE and TRUNCATE even to
-- the owner).

CREATE TABLE bundles (
    bundle_hash_b64u text PRIMARY KEY,
    job_id           text    NOT NULL,
    bundle_id        text    NOT NULL,
    trigger          text    NOT NULL,
    run_status       text    NOT NULL,
    checkpoint_size  bigint  NOT NULL CHECK (checkpoint_size >= 1),
    event_count      integer NOT NULL,
    receipt_count    integer NOT NULL,
    sealed_by        text    NOT NULL,
    sealed_at        text    NOT NULL,
    sealed_event_id  text    NOT NULL
);
CREATE INDEX bundles_job_idx ON bundles (job_id, sealed_at);

-- content-addressed: the key is the SHA-256 of the bytes, checked here too
CREATE TABLE bundle_documents (
    bundle_hash_b64u text PRIMARY KEY
        CHECK (bundle_hash_b64u = rtrim(translate(encode(sha256(bundle), 'base64'), '+/', '-_'), '=')),
    job_id           text        NOT NULL,
    bundle           bytea       NOT NULL,
    stored_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bundle_documents_job_idx ON bundle_documents (job_id);

CREATE TABLE pulse_records (
    pulse_id           text PRIMARY KEY,
    job_id             text  NOT NULL,
    bundle_hash_b64u   text  NOT NULL,
    policy_hash_b64u   text,
    counts             jsonb NOT NULL,
    verdict            text  NOT NULL,
    reason_code        text  NOT NULL,
    checkpoint         jsonb NOT NULL,
    record             jsonb NOT NULL,
    published_by       text  NOT NULL,
    published_at       text  NOT NULL,
    published_event_id text  NOT NULL
);
CREATE INDEX pulse_records_job_idx ON pulse_records (job_id);

CREATE TRIGGER bundles_append_only BEFORE UPDATE OR DELETE ON bundles
    FOR EACH ROW EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER bundles_no_truncate BEFORE TRUNCATE ON bundles
    FOR EACH STATEMENT EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER bundle_documents_append_only BEFORE UPDATE OR DELETE ON bundle_documents
    FOR EACH ROW EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER bundle_documents_no_truncate BEFORE TRUNCATE ON bundle_documents
    FOR EACH STATEMENT EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER pulse_records_append_only BEFORE UPDATE OR DELETE ON pulse_records
    FOR EACH ROW EXECUTE FUNCTION claw_refuse_change();
CREATE TRIGGER pulse_records_no_truncate BEFORE TRUNCATE ON pulse_records
    FOR EACH STATEMENT EXECUTE FUNCTION claw_refuse_change();

-- INSERT ... ON CONFLICT DO NOTHING only: no UPDATE for anyone
INSERT INTO role_grants (table_name, writer_privileges) VALUES
    ('bundles',          'SELECT, INSERT'),
    ('bundle_documents', 'SELECT, INSERT'),
    ('pulse_records',    'SELECT, INSERT');
