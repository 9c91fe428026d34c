-- The sync of a directory: a user the sync disabled (gone from the directory or out of its
-- group) is marked so, and only such a user is enabled again by the sync when they come back.
ALTER TABLE users ADD COLUMN directory_disabled INTEGER NOT NULL DEFAULT 0
    CHECK (directory_disabled IN (0, 1));

-- Group → resource: the people of a directory's group (a DN or a filter) are assigned to a
-- resource, kept in step by each sync.
CREATE TABLE directory_groups (
    id           INTEGER PRIMARY KEY,
    directory_id INTEGER NOT NULL REFERENCES directories (id) ON DELETE CASCADE,
    member_group TEXT    NOT NULL,
    resource_id  INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    UNIQUE (directory_id, member_group, resource_id)
);
CREATE INDEX directory_groups_resource ON directory_groups (resource_id);

-- The assignments a mapping made, so that a sync takes away only those: an assignment an
-- administrator made has no row here. An assignment taken away by hand takes its rows along.
CREATE TABLE directory_group_assignments (
    group_id    INTEGER NOT NULL REFERENCES directory_groups (id) ON DELETE CASCADE,
    resource_id INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id),
    FOREIGN KEY (resource_id, user_id) REFERENCES user_resources (resource_id, user_id)
        ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX directory_group_assignments_assignment
    ON directory_group_assignments (resource_id, user_id);

-- The last sync of each directory: when, how it went, how long it took, what it did.
CREATE TABLE directory_syncs (
    directory_id INTEGER PRIMARY KEY REFERENCES directories (id) ON DELETE CASCADE,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    ok           INTEGER NOT NULL CHECK (ok IN (0, 1)),
    error        TEXT,
    duration_ms  INTEGER NOT NULL,
    people       INTEGER NOT NULL DEFAULT 0,
    created      INTEGER NOT NULL DEFAULT 0,
    updated      INTEGER NOT NULL DEFAULT 0,
    disabled     INTEGER NOT NULL DEFAULT 0,
    enabled      INTEGER NOT NULL DEFAULT 0,
    conflicts    INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    assigned     INTEGER NOT NULL DEFAULT 0,
    unassigned   INTEGER NOT NULL DEFAULT 0,
    -- The time of the last sync that worked, kept through failures after it.
    last_success_at INTEGER
) WITHOUT ROWID;
