-- Projections of the claw primitives (ledger/primitive_rules.py): the WPC
-- registry, scoped tokens, jobs (URM + run lifecycle), halts and receipts.
--
-- The rules write each row whole (upsert by primary key) and the processor
-- loads policies/tokens/jobs/halts back with SELECT *, so every column here is
-- a key of the rule's row values, and nothing else (no defaults, no generated
-- columns). Times are the events' RFC 3339 ``occurred_at`` strings, kept as
-- text so a row loads back equal to what the rule wrote. Lists and objects
-- are jsonb. These tables are projections: the events table is the truth.

CREATE TABLE policies (
    policy_hash_b64u   text PRIMARY KEY,
    status             text    NOT NULL CHECK (status IN ('active', 'superseded', 'revoked')),
    publisher_did      text    NOT NULL,  -- signer of the wpc envelope
    published_by       text    NOT NULL,  -- signer of the policy.published event
    issuer             text,
    halt_mode          boolean NOT NULL,
    -- the exact text of the signed wpc envelope (jsonb would reorder its keys)
    wpc_envelope_raw   text    NOT NULL,
    wpc_envelope       jsonb   NOT NULL,
    published_event_id text    NOT NULL,
    published_at       text    NOT NULL,
    supersedes         jsonb   NOT NULL,
    superseded_by      text,
    superseded_at      text,
    revoked_reason     text,
    revoked_by         text,
    revoked_at         text
);

CREATE TABLE tokens (
    jti                   text PRIMARY KEY,
    status                text   NOT NULL CHECK (status IN ('active', 'revoked')),
    sub                   text   NOT NULL,
    aud                   jsonb  NOT NULL,  -- a string or a list, as in the token
    scope                 jsonb  NOT NULL,
    iat                   bigint NOT NULL,
    exp                   bigint NOT NULL,
    kid                   text   NOT NULL,
    issuer_did            text   NOT NULL,
    token_scope_hash_b64u text   NOT NULL,
    -- SHA-256 of the compact token: the token itself is a bearer secret, never stored
    token_sha256_b64u     text   NOT NULL,
    policy_hash_b64u      text,
    mission_id            text,
    nonce                 text,
    issued_event_id       text   NOT NULL,
    issued_at             text   NOT NULL,
    revoked_reason        text,
    revoked_by            text,
    revoked_at            text
);
CREATE INDEX tokens_mission_idx ON tokens (mission_id);
CREATE INDEX tokens_sub_idx ON tokens (sub);

CREATE TABLE jobs (
    job_id                text PRIMARY KEY,
    run_id                text    NOT NULL,
    status                text    NOT NULL CHECK (status IN ('approved', 'running', 'completed')),
    urm_hash_b64u         text    NOT NULL,
    urm                   jsonb   NOT NULL,
    approvals             jsonb   NOT NULL,
    approver_dids         jsonb   NOT NULL,
    requester_did         text    NOT NULL,
    wpc_hash_b64u         text    NOT NULL,
    cst_scope_hash        text    NOT NULL,
    policy_hash_pinning   boolean NOT NULL,
    approved_event_id     text    NOT NULL,
    approved_at           text    NOT NULL,
    cst_jti               text,
    sub                   text,
    token_scope_hash_b64u text,
    started_event_id      text,
    started_at            text,
    -- clawsig event chain of the job's lifecycle events (formats.md §6)
    event_chain           jsonb   NOT NULL,
    receipt_ids           jsonb   NOT NULL,
    receipt_count         integer NOT NULL,
    outputs               jsonb,
    output_flags          jsonb,
    outputs_match         boolean,
    completed_event_id    text,
    completed_at          text
);
CREATE INDEX jobs_wpc_idx ON jobs (wpc_hash_b64u);
CREATE INDEX jobs_status_idx ON jobs (status);

CREATE TABLE halts (
    target           text PRIMARY KEY,  -- '*', 'sub:<subject>' or 'job:<job id>'
    active           boolean NOT NULL,
    reason           text    NOT NULL,
    halted_by        text    NOT NULL,
    halted_at        text    NOT NULL,
    halted_event_id  text    NOT NULL,
    resumed_reason   text,
    resumed_by       text,
    resumed_at       text,
    resumed_event_id text
);

-- Written by the receipt rule, not loaded into the processor's state.
CREATE TABLE receipts (
    receipt_id           text PRIMARY KEY,
    job_id               text   NOT NULL,
    run_id               text   NOT NULL,
    event_hash_b64u      text   NOT NULL,
    nonce                text   NOT NULL,
    gateway_id           text   NOT NULL,
    provider             text   NOT NULL,
    model                text   NOT NULL,
    request_hash_b64u    text   NOT NULL,
    response_hash_b64u   text   NOT NULL,
    tokens_input         bigint NOT NULL,
    tokens_output        bigint NOT NULL,
    latency_ms           bigint NOT NULL,
    receipt_timestamp    text   NOT NULL,
    signer_did           text   NOT NULL,
    -- the exact text of the signed gateway_receipt envelope
    receipt_envelope_raw text   NOT NULL,
    recorded_event_id    text   NOT NULL,
    recorded_at          text   NOT NULL
);
CREATE INDEX receipts_job_idx ON receipts (job_id);
