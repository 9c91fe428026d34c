-- The admin panel searches users by any piece of their login, names, email or phone. A
-- LIKE '%text%' has no index to use and reads every row; at 100,000 users that is too slow
-- for a page that answers while the administrator types. A trigram index finds every row that
-- contains a text of three or more characters from the index. It holds no copy of the data
-- (external content: it reads the users table) and triggers keep it in step with every write.
CREATE VIRTUAL TABLE users_search USING fts5(
    login, first_name, last_name, email, phone,
    content = 'users', content_rowid = 'id', tokenize = 'trigram'
);
INSERT INTO users_search (users_search) VALUES ('rebuild');

CREATE TRIGGER users_search_insert AFTER INSERT ON users
BEGIN
    INSERT INTO users_search (rowid, login, first_name, last_name, email, phone)
    VALUES (new.id, new.login, new.first_name, new.last_name, new.email, new.phone);
END;

CREATE TRIGGER users_search_delete AFTER DELETE ON users
BEGIN
    INSERT INTO users_search (users_search, rowid, login, first_name, last_name, email, phone)
    VALUES ('delete', old.id, old.login, old.first_name, old.last_name, old.email, old.phone);
END;

CREATE TRIGGER users_search_update AFTER UPDATE OF login, first_name, last_name, email, phone ON users
BEGIN
    INSERT INTO users_search (users_search, rowid, login, first_name, last_name, email, phone)
    VALUES ('delete', old.id, old.login, old.first_name, old.last_name, old.email, old.phone);
    INSERT INTO users_search (rowid, login, first_name, last_name, email, phone)
    VALUES (new.id, new.login, new.first_name, new.last_name, new.email, new.phone);
END;

-- "Only enabled" and "only disabled" page through this index in login order.
CREATE INDEX users_enabled_login ON users (enabled, login);
