-- How far each partition's outcomes have been copied to the verified and
-- quarantine topics, as acknowledged by Kafka: outcomes of ingress offsets in
-- [forwarded_offset, next_offset) are committed but maybe not copied yet. A
-- processor assigned the partition copies them again from the ledger tables
-- (at least once; ADR 0008). Existing positions count as fully copied.
ALTER TABLE consumer_positions ADD COLUMN forwarded_offset bigint;
UPDATE consumer_positions SET forwarded_offset = next_offset;
ALTER TABLE consumer_positions ALTER COLUMN forwarded_offset SET NOT NULL;
