-- The attributes a resource adds to its RADIUS Access-Accepts, in order: a name of the built-in
-- dictionary and its value as text, both checked by the application before they are stored.
CREATE TABLE resource_radius_attributes (
    resource_id INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL CHECK (position >= 0),
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    PRIMARY KEY (resource_id, position)
) WITHOUT ROWID;
