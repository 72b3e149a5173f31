-- Every version of every resource, one row each; the body is stored once, as the exact JSON
-- text the server wrote (TEXT, so key order and decimals such as 1.50 come back unchanged).
-- AUTOINCREMENT keeps `seq` strictly increasing and never reused, because history cursors
-- are `seq` values.
CREATE TABLE resource_version (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    version_id    INTEGER NOT NULL,
    last_updated  INTEGER NOT NULL, -- unix microseconds, UTC
    is_current    BOOLEAN NOT NULL, -- true on exactly the newest version of each resource
    body          TEXT,             -- NULL: this version is a deletion
    -- The backstop against two writers storing the same version.
    UNIQUE (resource_type, id, version_id)
);

-- One current version per resource: a create of an id that exists in any version (even as a
-- deletion) collides here. Also serves reads and search by id.
CREATE UNIQUE INDEX resource_version_current ON resource_version (resource_type, id)
    WHERE is_current;

-- Type-level history, newest first.
CREATE INDEX resource_version_type_seq ON resource_version (resource_type, seq);

-- Token search values (identifier, ...) of the current version of each resource, replaced in
-- the same transaction as every write. `system` is NULL when the value has none.
CREATE TABLE index_token (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    system        TEXT,
    code          TEXT NOT NULL
);

-- Search: covers `param=code` and `param=system|code` and yields the id without a table read.
CREATE INDEX index_token_lookup ON index_token (resource_type, param, code, system, id);
-- Replacing a resource's rows on write.
CREATE INDEX index_token_resource ON index_token (resource_type, id);
