-- The search parameter definitions the index rows of each resource type were extracted by
-- (`definition`: paraply_search's text of everything a parameter's rows depend on). On
-- start the server compares them with its registry and re-extracts the rows of every
-- parameter added, removed or changed since, then records the new definitions; a database
-- created before this table has none recorded and is reindexed completely once.
CREATE TABLE indexed_param (
    resource_type TEXT COLLATE "C" NOT NULL,
    param         TEXT COLLATE "C" NOT NULL,
    definition    TEXT NOT NULL,
    PRIMARY KEY (resource_type, param)
);
