-- One row that the refusal of a login no user has writes to, so that such a refusal changes a
-- page as a wrong code's penalty on a token does, and its commit costs the same.
CREATE TABLE refusal_decoy (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    refusals INTEGER NOT NULL DEFAULT 0
);
INSERT INTO refusal_decoy (id, refusals) VALUES (1, 0);
