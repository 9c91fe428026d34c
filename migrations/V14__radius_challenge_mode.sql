-- A client's users may also type the password first and the code when asked (the Access-Challenge
-- of FortiGate, Cisco ASA, Palo Alto, NetScaler): the input mode `challenge`. SQLite cannot change
-- a CHECK constraint, so the table is made again with the longer list and its rows copied as
-- they are (nothing refers to this table).
CREATE TABLE radius_clients_new (
    id                            INTEGER PRIMARY KEY,
    name                          TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    -- A network in CIDR form with its host bits cleared ("192.0.2.7/32", "2001:db8::/64").
    network                       TEXT    NOT NULL,
    secret_sealed                 BLOB    NOT NULL,
    resource_id                   INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    require_message_authenticator INTEGER NOT NULL DEFAULT 1
        CHECK (require_message_authenticator IN (0, 1)),
    input_mode                    TEXT    NOT NULL
        CHECK (input_mode IN ('password_code', 'code_password', 'static_challenge', 'code_only',
                              'challenge')),
    separator                     TEXT,  -- NULL: the code is cut off by its length
    code_length                   INTEGER NOT NULL DEFAULT 6 CHECK (code_length BETWEEN 4 AND 10),
    created_at                    INTEGER NOT NULL,
    updated_at                    INTEGER NOT NULL
);

INSERT INTO radius_clients_new (id, name, network, secret_sealed, resource_id,
                                require_message_authenticator, input_mode, separator,
                                code_length, created_at, updated_at)
SELECT id, name, network, secret_sealed, resource_id, require_message_authenticator, input_mode,
       separator, code_length, created_at, updated_at
FROM radius_clients;

DROP TABLE radius_clients;
ALTER TABLE radius_clients_new RENAME TO radius_clients;
CREATE INDEX radius_clients_by_resource ON radius_clients (resource_id);
