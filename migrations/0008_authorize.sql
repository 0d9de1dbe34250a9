-- The authorize decision (ADR 0015): what its service reads and writes
-- besides the control-plane projections.
--
-- decisions: the projection of call.authorized / call.denied (one row per
-- decision; the event id is the decision id). Written by the processor like
-- every projection, from the events; the events table stays the record.
CREATE TABLE decisions (
    decision_id           text    PRIMARY KEY,
    event_id              text    NOT NULL,
    job_id                text    NOT NULL,
    allowed               boolean NOT NULL,
    reason_code           text    NOT NULL,
    action                jsonb   NOT NULL,
    token_jti             text,
    token_scope_hash_b64u text,
    policy_hash_b64u      text,
    halt_target           text,
    halt_state            text CHECK (halt_state IN ('committed', 'seen')),
    -- the decision's RFC 3339 time, as the event carries it
    decided_at            text    NOT NULL,
    signer_did            text    NOT NULL
);
CREATE INDEX decisions_job_idx ON decisions (job_id);
CREATE INDEX decisions_token_idx ON decisions (token_jti);

-- authorize_nonces: a nonce is used once per token, across every authorize
-- process and restart. INSERT ... ON CONFLICT DO NOTHING decides the race
-- atomically; rows are never updated.
CREATE TABLE authorize_nonces (
    token_jti   text        NOT NULL,
    nonce       text        NOT NULL,
    decision_id text        NOT NULL,
    used_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (token_jti, nonce)
);

-- processor_heartbeats: each processor process writes its row after its
-- commits and while idle (about every second), with the control version its
-- state holds. The authorize service's state is as fresh as the newest beat it
-- read before loading the control rows; older than its bound, it denies.
CREATE TABLE processor_heartbeats (
    worker_id       text        PRIMARY KEY,
    consumer_group  text        NOT NULL,
    beat_at         timestamptz NOT NULL,
    control_version bigint      NOT NULL
);

INSERT INTO role_grants (table_name, writer_privileges) VALUES
    ('decisions',            'SELECT, INSERT, UPDATE'),
    -- the authorize service connects as the writer for its nonces only
    ('authorize_nonces',     'SELECT, INSERT'),
    ('processor_heartbeats', 'SELECT, INSERT, UPDATE');
