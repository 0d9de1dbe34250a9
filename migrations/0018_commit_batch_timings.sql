-- Commit batch latency per processor (the metrics an operator watches): each
-- heartbeat carries how many batches the worker committed since it started,
-- their summed duration (decide + commit transaction), and the longest one
-- since its previous beat. /metrics and `claw-ledger status` read them.
ALTER TABLE processor_heartbeats
    ADD COLUMN batches           bigint           NOT NULL DEFAULT 0,
    ADD COLUMN batch_seconds_sum double precision NOT NULL DEFAULT 0,
    ADD COLUMN batch_seconds_max double precision;
