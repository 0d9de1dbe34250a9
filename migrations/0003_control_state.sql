-- A transactional control-plane version. The sequence from 0001 is not
-- transactional (a bump is visible before its commit); this row is, and its
-- lock orders the commits that change control-plane projections.
CREATE TABLE control_state (
    id      integer PRIMARY KEY CHECK (id = 1),
    version bigint  NOT NULL
);
INSERT INTO control_state (id, version) VALUES (1, 0);
