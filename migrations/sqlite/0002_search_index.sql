-- Search index rows of every kind. Each row points at the version row it was extracted from
-- (`rid` = resource_version.seq of the current version) instead of repeating the resource's
-- type and 36-byte id: that roughly halves the index size, and a row reaches its resource
-- with one rowid lookup. Rows exist only for current, non-deleted versions; a write deletes
-- the rows of the version it retires and inserts the new version's in the same transaction.
--
-- The tables are WITHOUT ROWID with the primary key (rid, param, ...): a resource's rows sit
-- together, so replacing them and checking "does this resource have a matching row" (the
-- non-driving filters, `:missing`, sort values) are single range reads, and each secondary
-- index automatically ends with the key columns (so it yields `rid` without a table read).
-- Primary key columns must be NOT NULL here, so absent values are stored as ''.

-- Tokens: `system` '' when the value has none; `code` '' for a CodeableConcept with only
-- text; `text` the normalized display/text for `:text`. Replaces 0001's table (which
-- repeated type and id and had a separate per-resource index); existing rows are carried
-- over to the current version they belong to.
CREATE TABLE index_token_v2 (
    rid           INTEGER NOT NULL,
    resource_type TEXT    NOT NULL,
    param         TEXT    NOT NULL,
    system        TEXT    NOT NULL,
    code          TEXT    NOT NULL,
    text          TEXT,
    PRIMARY KEY (rid, param, system, code)
) WITHOUT ROWID;
INSERT OR IGNORE INTO index_token_v2 (rid, resource_type, param, system, code)
    SELECT v.seq, t.resource_type, t.param, COALESCE(t.system, ''), t.code
    FROM index_token t
    JOIN resource_version v
      ON v.resource_type = t.resource_type AND v.id = t.id AND v.is_current;
DROP TABLE index_token;
ALTER TABLE index_token_v2 RENAME TO index_token;
-- `param=code`, `param=system|code`.
CREATE INDEX index_token_lookup ON index_token (resource_type, param, code, system);

-- Strings: `normalized` (lower case, no accents) for the default and `:contains` searches,
-- `exact` as written for `:exact` (normalized is derived from it, so it is not in the key).
CREATE TABLE index_string (
    rid           INTEGER NOT NULL,
    resource_type TEXT    NOT NULL,
    param         TEXT    NOT NULL,
    normalized    TEXT    NOT NULL,
    exact         TEXT    NOT NULL,
    PRIMARY KEY (rid, param, exact)
) WITHOUT ROWID;
-- Prefix searches as ranges on `normalized`.
CREATE INDEX index_string_lookup ON index_string (resource_type, param, normalized);

-- References: `target_type`/`target_id` when the reference names a resource ('' otherwise);
-- `url` as written, or '' when it is just `target_type/target_id` (the common case, which
-- would otherwise store the id twice).
CREATE TABLE index_reference (
    rid           INTEGER NOT NULL,
    resource_type TEXT    NOT NULL,
    param         TEXT    NOT NULL,
    target_type   TEXT    NOT NULL,
    target_id     TEXT    NOT NULL,
    url           TEXT    NOT NULL,
    PRIMARY KEY (rid, param, target_type, target_id, url)
) WITHOUT ROWID;
-- Who points at this resource: patient-scoped searches, `_revinclude`, `_has`, chains.
-- The id leads because a search value may name no type (`subject=123`); URL-only rows
-- (target_id '') are found under ''.
CREATE INDEX index_reference_target
    ON index_reference (target_id, resource_type, param, target_type);

-- Dates as half-open ranges in unix microseconds; open ends are the i64 extremes.
CREATE TABLE index_date (
    rid           INTEGER NOT NULL,
    resource_type TEXT    NOT NULL,
    param         TEXT    NOT NULL,
    start_us      INTEGER NOT NULL,
    end_us        INTEGER NOT NULL,
    PRIMARY KEY (rid, param, start_us, end_us)
) WITHOUT ROWID;
CREATE INDEX index_date_lookup ON index_date (resource_type, param, start_us);

CREATE TABLE index_uri (
    rid           INTEGER NOT NULL,
    resource_type TEXT    NOT NULL,
    param         TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    PRIMARY KEY (rid, param, value)
) WITHOUT ROWID;
CREATE INDEX index_uri_lookup ON index_uri (resource_type, param, value);

-- Quantities: `system`/`code` '' when absent.
CREATE TABLE index_quantity (
    rid           INTEGER NOT NULL,
    resource_type TEXT    NOT NULL,
    param         TEXT    NOT NULL,
    value         REAL    NOT NULL,
    system        TEXT    NOT NULL,
    code          TEXT    NOT NULL,
    PRIMARY KEY (rid, param, value, system, code)
) WITHOUT ROWID;
CREATE INDEX index_quantity_lookup ON index_quantity (resource_type, param, value);
