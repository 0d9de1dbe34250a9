-- Every control-plane row records the control version of the commit that last
-- wrote it. A processor that holds the state of version V then reloads only
-- the rows with control_version > V, instead of the whole control plane, when
-- another processor of its group commits (ADR 0005).
ALTER TABLE keys     ADD COLUMN control_version bigint NOT NULL DEFAULT 0;
ALTER TABLE policies ADD COLUMN control_version bigint NOT NULL DEFAULT 0;
ALTER TABLE tokens   ADD COLUMN control_version bigint NOT NULL DEFAULT 0;
ALTER TABLE jobs     ADD COLUMN control_version bigint NOT NULL DEFAULT 0;
ALTER TABLE halts    ADD COLUMN control_version bigint NOT NULL DEFAULT 0;

CREATE INDEX keys_control_version_idx     ON keys (control_version);
CREATE INDEX policies_control_version_idx ON policies (control_version);
CREATE INDEX tokens_control_version_idx   ON tokens (control_version);
CREATE INDEX jobs_control_version_idx     ON jobs (control_version);
CREATE INDEX halts_control_version_idx    ON halts (control_version);
