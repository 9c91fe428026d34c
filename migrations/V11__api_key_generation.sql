-- A counter that every change of an API key moves, whoever makes it (this server, the console,
-- a resource deleted with its keys): the server compares it with the one its key cache was
-- filled under before it trusts a cached key, so that a revocation counts from the next request.
CREATE TABLE api_key_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO api_key_generation (id, generation) VALUES (1, 0);

CREATE TRIGGER api_key_created AFTER INSERT ON api_keys
BEGIN
    UPDATE api_key_generation SET generation = generation + 1 WHERE id = 1;
END;

CREATE TRIGGER api_key_changed AFTER UPDATE ON api_keys
BEGIN
    UPDATE api_key_generation SET generation = generation + 1 WHERE id = 1;
END;

CREATE TRIGGER api_key_deleted AFTER DELETE ON api_keys
BEGIN
    UPDATE api_key_generation SET generation = generation + 1 WHERE id = 1;
END;
