-- The self-service portal's logins in progress: the login name was given, the password, the
-- emailed verification code or the one-time password is still asked for. A full portal login
-- is a row of `sessions` (kind 'portal'); this row only lives for the few minutes before it.
CREATE TABLE portal_logins (
    id_hash        BLOB PRIMARY KEY,   -- SHA-256 of the cookie value
    resource_id    INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    user_id        INTEGER REFERENCES users (id) ON DELETE CASCADE,  -- NULL: no such user here
    login          TEXT NOT NULL,
    stage          TEXT NOT NULL CHECK (stage IN ('password', 'email_code', 'otp')),
    code_hash      BLOB,               -- the emailed verification code's keyed hash
    tries_left     INTEGER NOT NULL DEFAULT 0,
    transaction_id TEXT,               -- the challenges sent for the OTP step
    sent_at        INTEGER,
    csrf_token     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX portal_logins_expiry ON portal_logins (expires_at);
