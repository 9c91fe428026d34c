-- Failed logins in a row, per account: a user, a token used alone, an administrator. The row
-- with the empty address is the account's; for the admin panel's and the portals' logins there
-- is also a row per client address (an IPv6 address by its /64), which remembers the address's
-- own failures and when the account last logged in from it. A success resets the rows of its
-- login; failures in a row delay the next attempt, and at the configured limit the account is
-- locked (locked_at) until an administrator unlocks it or, in the panel and the portals, the
-- owner logs in from an address with a success on record.
CREATE TABLE login_failures (
    account         TEXT    NOT NULL CHECK (account IN ('user', 'token', 'admin')),
    account_id      INTEGER NOT NULL,
    address         TEXT    NOT NULL DEFAULT '',
    failures        INTEGER NOT NULL DEFAULT 0,
    last_failure_at INTEGER,
    locked_at       INTEGER,
    last_success_at INTEGER,
    PRIMARY KEY (account, account_id, address)
) WITHOUT ROWID;

-- The rows go with their account (ids may be used again).
CREATE TRIGGER login_failures_of_deleted_users AFTER DELETE ON users BEGIN
    DELETE FROM login_failures WHERE account = 'user' AND account_id = OLD.id;
END;
CREATE TRIGGER login_failures_of_deleted_tokens AFTER DELETE ON tokens BEGIN
    DELETE FROM login_failures WHERE account = 'token' AND account_id = OLD.id;
END;
CREATE TRIGGER login_failures_of_deleted_admins AFTER DELETE ON admins BEGIN
    DELETE FROM login_failures WHERE account = 'admin' AND account_id = OLD.id;
END;
