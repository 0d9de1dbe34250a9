-- Deny early, allow late (ADR 0025): a denial that rests on a control event
-- the authorize service saw on the control lane before the ledger committed it
-- names that event. NULL for every other decision and for those recorded before.
ALTER TABLE decisions ADD COLUMN seen_event_id text;
CREATE INDEX decisions_seen_event_idx ON decisions (seen_event_id)
    WHERE seen_event_id IS NOT NULL;
