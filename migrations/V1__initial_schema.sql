-- The whole domain of otpgate, created at once so that later features only add columns.
-- Times are unix seconds (INTEGER). Secrets are AEAD-sealed BLOBs (see src/crypto.rs).

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Values that must stay secret (SMTP password, SMS gateway credentials, bot token).
CREATE TABLE secret_settings (
    key        TEXT PRIMARY KEY,
    sealed     BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE admins (
    id             INTEGER PRIMARY KEY,
    login          TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash  TEXT NOT NULL,
    totp_secret    BLOB,              -- sealed; NULL until the administrator enrols
    totp_last_step INTEGER,           -- replay guard: the last accepted time step
    enabled        INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at     INTEGER NOT NULL,
    last_login_at  INTEGER
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    login         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    first_name    TEXT NOT NULL DEFAULT '',
    last_name     TEXT NOT NULL DEFAULT '',
    email         TEXT,
    phone         TEXT,              -- E.164
    password_hash TEXT,              -- Argon2id; NULL when the user has none
    enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX users_email ON users (email);
CREATE INDEX users_phone ON users (phone);

CREATE TABLE resources (
    id                  INTEGER PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE COLLATE NOCASE,
    description         TEXT NOT NULL DEFAULT '',
    fail_limit          INTEGER NOT NULL DEFAULT 5 CHECK (fail_limit BETWEEN 3 AND 10),
    password_required   INTEGER NOT NULL DEFAULT 0 CHECK (password_required IN (0, 1)),
    auto_unlock_seconds INTEGER,     -- NULL: only an administrator unlocks
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

CREATE TABLE tokens (
    id             INTEGER PRIMARY KEY,
    serial         TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('TOTP', 'HOTP', 'MAIL', 'SMS', 'BOT')),
    user_id        INTEGER REFERENCES users (id) ON DELETE SET NULL,
    secret         BLOB,             -- sealed seed of TOTP and HOTP tokens
    algorithm      TEXT NOT NULL DEFAULT 'SHA1' CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
    digits         INTEGER NOT NULL DEFAULT 6 CHECK (digits IN (6, 8)),
    period         INTEGER NOT NULL DEFAULT 30 CHECK (period IN (30, 60)),
    last_step      INTEGER,          -- replay guard: the last accepted counter or time step
    drift          INTEGER NOT NULL DEFAULT 0,
    window_behind  INTEGER,          -- per-token override of the global window
    window_ahead   INTEGER,
    destination    TEXT,             -- email address or E.164 phone number
    messenger      TEXT,             -- BOT: 'telegram'
    bot_user_id    INTEGER,
    bot_chat_id    INTEGER,
    activation_code_hash BLOB,       -- BOT: hash of the one-time activation code
    activation_expires_at INTEGER,
    pin_hash       BLOB,             -- keyed hash, see src/crypto.rs
    pin_position   TEXT NOT NULL DEFAULT 'before' CHECK (pin_position IN ('before', 'after')),
    enabled        INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    state          TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('pending', 'active', 'reactivate')),
    fail_count     INTEGER NOT NULL DEFAULT 0,
    locked_at      INTEGER,
    last_used_at   INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX tokens_user ON tokens (user_id);
CREATE UNIQUE INDEX tokens_activation ON tokens (activation_code_hash) WHERE activation_code_hash IS NOT NULL;

CREATE TABLE user_resources (
    resource_id INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (resource_id, user_id)
) WITHOUT ROWID;
CREATE INDEX user_resources_user ON user_resources (user_id);

CREATE TABLE token_resources (
    resource_id INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    token_id    INTEGER NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    PRIMARY KEY (resource_id, token_id)
) WITHOUT ROWID;
CREATE INDEX token_resources_token ON token_resources (token_id);

CREATE TABLE self_service (
    resource_id      INTEGER PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
    enabled          INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    address          TEXT UNIQUE COLLATE NOCASE,
    allowed_actions  TEXT NOT NULL DEFAULT '',   -- comma-separated action names, all off by default
    enrollment_kinds TEXT NOT NULL DEFAULT '',   -- comma-separated token kinds
    updated_at       INTEGER NOT NULL
);

CREATE TABLE challenges (
    id             INTEGER PRIMARY KEY,
    transaction_id TEXT NOT NULL,
    token_id       INTEGER NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    purpose        TEXT NOT NULL DEFAULT 'auth',
    code_hash      BLOB NOT NULL,
    tries_left     INTEGER NOT NULL DEFAULT 3,
    expires_at     INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
);
-- A new challenge for the same token and purpose replaces the old one.
CREATE UNIQUE INDEX challenges_token ON challenges (token_id, purpose);
CREATE INDEX challenges_transaction ON challenges (transaction_id);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    channel         TEXT NOT NULL CHECK (channel IN ('mail', 'sms', 'bot')),
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL DEFAULT '',
    body            BLOB NOT NULL,               -- sealed: it carries the code
    challenge_id    INTEGER,
    token_id        INTEGER REFERENCES tokens (id) ON DELETE SET NULL,
    status          TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed', 'expired')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    expires_at      INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,        -- 'admin:NAME', 'apikey:ID', 'user:LOGIN', 'system', 'console'
    action      TEXT NOT NULL,
    result      TEXT NOT NULL,
    reason      TEXT,
    client_ip   TEXT,
    end_user_ip TEXT,
    resource_id INTEGER,
    user_id     INTEGER,
    token_id    INTEGER,
    api_key_id  INTEGER,
    detail      TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE TRIGGER audit_log_is_append_only BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TABLE sessions (
    id_hash      BLOB PRIMARY KEY,     -- SHA-256 of the cookie value
    kind         TEXT NOT NULL CHECK (kind IN ('admin', 'portal')),
    stage        TEXT NOT NULL DEFAULT 'full' CHECK (stage IN ('full', 'enrol_totp')),
    admin_id     INTEGER REFERENCES admins (id) ON DELETE CASCADE,
    user_id      INTEGER REFERENCES users (id) ON DELETE CASCADE,
    resource_id  INTEGER REFERENCES resources (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    pending_secret BLOB,               -- sealed TOTP seed during enrolment
    client_ip    TEXT,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,  -- the public part of the key, to find its row
    key_hash     BLOB NOT NULL,         -- SHA-256 of the secret part
    scope        TEXT NOT NULL CHECK (scope IN ('admin', 'resource')),
    resource_id  INTEGER REFERENCES resources (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER,
    CHECK ((scope = 'resource') = (resource_id IS NOT NULL))
);
