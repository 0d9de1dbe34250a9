-- The kill switch (ADR 0016): a halt records what the execution layer denies,
-- the halt WPC in force, the tokens its rule revoked and, once lifted, the WPC
-- it was re-authorised under; a token row names the halt that revoked it.
--
-- Every column is nullable at first so that a row written before this
-- migration keeps its control-plane digest (ADR 0014: NULL counts as absent).
-- A halt recorded before it denied everything and revoked nothing, so its row
-- is filled in as such; that changes the rows' encoding, so the halts digest
-- is unsealed and the first processor to start seals it again (as in 0007).
-- Run `claw-ledger audit` before upgrading a ledger that has halts.

ALTER TABLE halts
    ADD COLUMN deny_tools              boolean,
    ADD COLUMN deny_model_egress       boolean,
    ADD COLUMN policy_hash_b64u        text,   -- the halt WPC (mode halt) in force, if named
    ADD COLUMN revoked_jtis            jsonb,  -- the tokens the halt's rule revoked
    ADD COLUMN resume_policy_hash_b64u text;   -- the WPC the lift re-authorised under

ALTER TABLE tokens
    ADD COLUMN revoked_by_halt text;           -- event id of the agent.halted that revoked it

UPDATE control_digests SET digest = NULL
WHERE table_name = 'halts' AND EXISTS (SELECT 1 FROM halts);

UPDATE halts SET deny_tools = true, deny_model_egress = true, revoked_jtis = '[]'::jsonb;

ALTER TABLE halts
    ALTER COLUMN deny_tools        SET NOT NULL,
    ALTER COLUMN deny_model_egress SET NOT NULL,
    ALTER COLUMN revoked_jtis      SET NOT NULL;
