-- Logins are unique and found regardless of case in every script and of the Unicode form they
-- were typed in (`Zoë` and `ZOË`, `straße` and `STRASSE`, `André` composed or with a combining
-- accent), through a key: the login's full Unicode case folding. SQLite folds only ASCII
-- (NOCASE), so otpgate computes the key: a new or renamed user gets it in the same statement,
-- and the rows written before this migration get theirs when the store opens, right after
-- migrating. Until then their key is NULL, which a UNIQUE index allows for any number of rows.
ALTER TABLE users ADD COLUMN login_key TEXT;
CREATE UNIQUE INDEX users_login_key ON users (login_key);
