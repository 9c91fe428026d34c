-- The generation of the rows an authentication reads that only administration changes: users,
-- resources, who is assigned where, and the tokens' settings. The writer keeps those rows in
-- memory between authentications and reads them again whenever the generation moved
-- (src/store/hot.rs). Triggers move it in the same transaction as the change, whichever
-- connection or program makes it. What an authentication itself writes to a token (its replay
-- floor, drift, fail counter, lock and last use) does not move it: those columns are read from
-- the row every time.
CREATE TABLE row_changes (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO row_changes (id, generation) VALUES (1, 0);

CREATE TRIGGER row_changes_user_added AFTER INSERT ON users
BEGIN UPDATE row_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER row_changes_user_changed AFTER UPDATE ON users
BEGIN UPDATE row_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER row_changes_user_deleted AFTER DELETE ON users
BEGIN UPDATE row_changes SET generation = generation + 1 WHERE id = 1; END;

CREATE TRIGGER row_changes_resource_added AFTER INSERT ON resources
BEGIN UPDATE row_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER row_changes_resource_changed AFTER UPDATE ON resources
BEGIN UPDATE row_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER row_changes_resource_deleted AFTER DELETE ON resources
BEGIN UPDATE row_changes SET generation = generation + 1 WHERE id = 1; END;

CREATE TRIGGER row_changes_user_assigned AFTER INSERT ON user_resources
BEGIN UPDATE row_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER row_changes_user_assignment_changed AFTER UPDATE ON user_resources
BEGIN UPDATE row_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER row_changes_user_unassigned AFTER DELETE ON user_resources
BEGIN UPDATE row_changes SET generation = generation + 1 WHERE id = 1; END;

CREATE TRIGGER row_changes_token_assigned AFTER INSERT ON token_resources
BEGIN UPDATE row_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER row_changes_token_assignment_changed AFTER UPDATE ON token_resources
BEGIN UPDATE row_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER row_changes_token_unassigned AFTER DELETE ON token_resources
BEGIN UPDATE row_changes SET generation = generation + 1 WHERE id = 1; END;

CREATE TRIGGER row_changes_token_added AFTER INSERT ON tokens
BEGIN UPDATE row_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER row_changes_token_deleted AFTER DELETE ON tokens
BEGIN UPDATE row_changes SET generation = generation + 1 WHERE id = 1; END;
-- Every column of a token but the five an authentication writes.
CREATE TRIGGER row_changes_token_changed AFTER UPDATE OF
    serial, name, kind, user_id, secret, algorithm, digits, period, window_behind, window_ahead,
    destination, messenger, bot_user_id, bot_chat_id, bot_chat_name, activation_code_hash,
    activation_expires_at, pin_hash, pin_position, enabled, state, created_at, updated_at
ON tokens
BEGIN UPDATE row_changes SET generation = generation + 1 WHERE id = 1; END;
