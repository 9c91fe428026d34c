-- Approve in Telegram over RADIUS: how long a client's Access-Request is held for the user's
-- decision (below the gateway's own timeout), and the word that asks for an approval when typed
-- after the password in one field (NULL: the password alone asks).
ALTER TABLE radius_clients ADD COLUMN approval_wait_seconds INTEGER NOT NULL DEFAULT 25
    CHECK (approval_wait_seconds BETWEEN 5 AND 120);
ALTER TABLE radius_clients ADD COLUMN approval_word TEXT;
