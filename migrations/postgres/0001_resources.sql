-- Every version of every resource, one row each; the body is stored once, as the exact JSON
-- text the server wrote (TEXT, never JSONB: key order and decimals such as 1.50 must come
-- back unchanged). Key columns use the "C" collation so ids sort bytewise, as in SQLite, and
-- compare fast.
CREATE TABLE resource_version (
    seq           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource_type TEXT    COLLATE "C" NOT NULL,
    id            TEXT    COLLATE "C" NOT NULL,
    version_id    BIGINT  NOT NULL,
    last_updated  BIGINT  NOT NULL, -- unix microseconds, UTC
    is_current    BOOLEAN NOT NULL, -- true on exactly the newest version of each resource
    body          TEXT,             -- NULL: this version is a deletion
    -- The backstop against two writers storing the same version.
    CONSTRAINT resource_version_key UNIQUE (resource_type, id, version_id)
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
    resource_type TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    param         TEXT COLLATE "C" NOT NULL,
    system        TEXT COLLATE "C",
    code          TEXT COLLATE "C" NOT NULL
);

-- Search: covers `param=code` and `param=system|code` and yields the id from the index.
CREATE INDEX index_token_lookup ON index_token (resource_type, param, code, system, id);
-- Replacing a resource's rows on write.
CREATE INDEX index_token_resource ON index_token (resource_type, id);
