-- Directories (Active Directory, FreeIPA, OpenLDAP) whose people are otpgate users: where the
-- servers are, how otpgate binds and searches, and which attributes say what. The service
-- account's password is sealed by the application, never stored in clear.
CREATE TABLE directories (
    id                      INTEGER PRIMARY KEY,
    name                    TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    -- The preset it started from, which also says how to read the stable id and bind errors.
    kind                    TEXT    NOT NULL CHECK (kind IN ('active_directory', 'openldap')),
    -- ldap:// or ldaps:// addresses, one a line, in failover order.
    urls                    TEXT    NOT NULL,
    tls                     TEXT    NOT NULL CHECK (tls IN ('starttls', 'ldaps', 'none')),
    ca_pem                  TEXT,   -- NULL: the system's roots
    bind_dn                 TEXT    NOT NULL,
    bind_password_sealed    BLOB    NOT NULL,
    base_dn                 TEXT    NOT NULL,
    user_filter             TEXT    NOT NULL,
    -- Attribute names, one a line: a login matches any of them.
    login_attributes        TEXT    NOT NULL,
    id_attribute            TEXT    NOT NULL,
    -- '' when the directory's value is not taken.
    first_name_attribute    TEXT    NOT NULL DEFAULT '',
    last_name_attribute     TEXT    NOT NULL DEFAULT '',
    email_attribute         TEXT    NOT NULL DEFAULT '',
    mobile_attribute        TEXT    NOT NULL DEFAULT '',
    -- A group's DN or a filter whose people are otpgate users; NULL: everyone the filter finds.
    user_group              TEXT,
    connect_timeout_seconds INTEGER NOT NULL CHECK (connect_timeout_seconds BETWEEN 1 AND 60),
    search_timeout_seconds  INTEGER NOT NULL CHECK (search_timeout_seconds BETWEEN 1 AND 300),
    sync_interval_minutes   INTEGER NOT NULL CHECK (sync_interval_minutes BETWEEN 1 AND 1440),
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
);

-- A user who comes from a directory: the directory and the entry's stable id (objectGUID as
-- text, entryUUID), so that a rename in the directory is a rename here. Both NULL for a local
-- user. A directory with users is not deleted.
ALTER TABLE users ADD COLUMN directory_id INTEGER REFERENCES directories (id);
ALTER TABLE users ADD COLUMN directory_uid TEXT;
CREATE UNIQUE INDEX users_by_directory_entry ON users (directory_id, directory_uid);
