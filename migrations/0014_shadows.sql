-- Shadow policies (ADR 0023): the projection of policy.shadowed and
-- policy.shadow_ended, one row per scope ('*', 'sub:<s>', 'job:<j>'). It is a
-- control-plane table: loaded into the processor's state and the authorize
-- service's, and stamped with the control version of the commit that wrote it
-- (migration 0004), so a commit that changes it notifies the control channel.
-- call.shadowed events write no projection: the events table is their record.
CREATE TABLE shadows (
    scope              text    PRIMARY KEY,
    policy_hash_b64u   text    NOT NULL,
    active             boolean NOT NULL,
    reason             text    NOT NULL,
    shadowed_by        text    NOT NULL,
    shadowed_at        text    NOT NULL,
    shadowed_event_id  text    NOT NULL,
    ended_reason       text,
    ended_by           text,
    ended_at           text,
    ended_event_id     text,
    control_version    bigint  NOT NULL DEFAULT 0
);
CREATE INDEX shadows_control_version_idx ON shadows (control_version);

INSERT INTO role_grants (table_name, writer_privileges) VALUES ('shadows', 'SELECT, INSERT, UPDATE');
