-- A transaction is one login: what one `prepare`, or one checked password, asked the user for.
-- It stands in for the checked password in the resource where it was checked, once, until it
-- expires; answering it with one code voids its other codes. The row is deleted when answered.
CREATE TABLE auth_transactions (
    id               TEXT PRIMARY KEY,
    resource_id      INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    password_checked INTEGER NOT NULL DEFAULT 0 CHECK (password_checked IN (0, 1)),
    expires_at       INTEGER NOT NULL,
    created_at       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX auth_transactions_expiry ON auth_transactions (expires_at);

-- What a right password alone is worth for a user without an active second factor in the
-- resource: refused (the default, also for every resource that existed before), or accepted.
ALTER TABLE resources ADD COLUMN without_second_factor TEXT NOT NULL DEFAULT 'refuse'
    CHECK (without_second_factor IN ('refuse', 'password_only'));

-- The codes a user was sent in the last hour, per channel, are counted against the hourly cap.
CREATE INDEX outbox_token_time ON outbox (token_id, created_at);
