-- Approve in Telegram: instead of typing a code, the user of a BOT token answers a message
-- with buttons. An approval belongs to one transaction (one login); it is decided once
-- (pending -> approved, denied or expired, a compare-and-set), and an approved one lets in one
-- login (used_at, also a compare-and-set). It outlives its transaction, so that a caller asking
-- after a denial is told "rejected" rather than "unknown".
CREATE TABLE approvals (
    id               INTEGER PRIMARY KEY,
    transaction_id   TEXT    NOT NULL UNIQUE,
    token_id         INTEGER NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    resource_id      INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    -- The chat the message went to, and the only Telegram user whose answer counts.
    chat_id          INTEGER NOT NULL,
    telegram_user_id INTEGER NOT NULL,
    -- Number matching: the number the login shows; NULL without number matching.
    number           INTEGER CHECK (number BETWEEN 10 AND 99),
    -- The numbers the bot offers, in their order ("17 42 85"); NULL without number matching.
    choices          TEXT,
    -- The Telegram message offering the buttons, once sent (to edit it after the decision).
    message_id       INTEGER,
    state            TEXT    NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'approved', 'denied', 'expired')),
    -- Why an approval was denied: the user said so, or chose a wrong number.
    reason           TEXT CHECK (reason IN ('denied', 'wrong_number')),
    decided_at       INTEGER,
    -- When the approved login was let in (once).
    used_at          INTEGER,
    expires_at       INTEGER NOT NULL,
    created_at       INTEGER NOT NULL
);
CREATE INDEX approvals_state_expiry ON approvals (state, expires_at);
CREATE INDEX approvals_token ON approvals (token_id);

-- The outbox row that carries an approval's message (its buttons are made from the approval).
ALTER TABLE outbox ADD COLUMN approval_id INTEGER REFERENCES approvals (id) ON DELETE SET NULL;

-- A resource's approvals: allowed (off by default), with number matching (on by default), and
-- whether "Deny" locks the token (off by default).
ALTER TABLE resources ADD COLUMN approvals_allowed INTEGER NOT NULL DEFAULT 0
    CHECK (approvals_allowed IN (0, 1));
ALTER TABLE resources ADD COLUMN approval_number_matching INTEGER NOT NULL DEFAULT 1
    CHECK (approval_number_matching IN (0, 1));
ALTER TABLE resources ADD COLUMN approval_deny_locks INTEGER NOT NULL DEFAULT 0
    CHECK (approval_deny_locks IN (0, 1));
