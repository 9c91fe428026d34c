-- RADIUS clients (NAS): the gateways that may send requests, by address or network, each with
-- its shared secret (sealed by the application, never stored in clear), the resource its users
-- authenticate for, and how they type their password and code into the one field it has.
CREATE TABLE radius_clients (
    id                            INTEGER PRIMARY KEY,
    name                          TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    -- A network in CIDR form with its host bits cleared ("192.0.2.7/32", "2001:db8::/64").
    network                       TEXT    NOT NULL,
    secret_sealed                 BLOB    NOT NULL,
    resource_id                   INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    require_message_authenticator INTEGER NOT NULL DEFAULT 1
        CHECK (require_message_authenticator IN (0, 1)),
    input_mode                    TEXT    NOT NULL
        CHECK (input_mode IN ('password_code', 'code_password', 'static_challenge', 'code_only')),
    separator                     TEXT,  -- NULL: the code is cut off by its length
    code_length                   INTEGER NOT NULL DEFAULT 6 CHECK (code_length BETWEEN 4 AND 10),
    created_at                    INTEGER NOT NULL,
    updated_at                    INTEGER NOT NULL
);

CREATE INDEX radius_clients_by_resource ON radius_clients (resource_id);
