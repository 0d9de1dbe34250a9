-- The timeline's time-ordered queries with a type filter (`claw-ledger timeline
-- --type T --since ...`, GET /v1/timeline?type=T&since=...) page in
-- (occurred_at, position) order. Without this index they read the occurred_at
-- index from the bound and drop every row of another type: for a rare type
-- (agent.halted, token.revoked) that is the rest of the ledger per page. Here a
-- page reads exactly its rows. A plain index: it stays valid when `events` is
-- partitioned (it becomes a partitioned index).
CREATE INDEX events_type_occurred_idx ON events (event_type, occurred_at, position);
