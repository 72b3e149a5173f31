-- Search index rows of every kind. Each row points at the version row it was extracted from
-- (`rid` = resource_version.seq of the current version) instead of repeating the resource's
-- type and 36-byte id: that roughly halves the index size, and a row reaches its resource
-- through the primary key. Rows exist only for current, non-deleted versions; a write
-- deletes the rows of the version it retires and inserts the new version's in the same
-- transaction. Absent values are stored as '' (as in SQLite, where they are key columns), so
-- both backends run the same statements. Each table has one lookup index for searches and
-- one `rid` index for replacing a resource's rows and checking a candidate's rows.

-- Tokens: `system` '' when the value has none; `code` '' for a CodeableConcept with only
-- text; `text` the normalized display/text for `:text`. Replaces 0001's table (which
-- repeated type and id); existing rows are carried over to their current version.
CREATE TABLE index_token_v2 (
    rid           BIGINT NOT NULL,
    resource_type TEXT COLLATE "C" NOT NULL,
    param         TEXT COLLATE "C" NOT NULL,
    system        TEXT COLLATE "C" NOT NULL,
    code          TEXT COLLATE "C" NOT NULL,
    text          TEXT COLLATE "C"
);
INSERT INTO index_token_v2 (rid, resource_type, param, system, code)
    SELECT v.seq, t.resource_type, t.param, COALESCE(t.system, ''), t.code
    FROM index_token t
    JOIN resource_version v
      ON v.resource_type = t.resource_type AND v.id = t.id AND v.is_current;
DROP TABLE index_token;
ALTER TABLE index_token_v2 RENAME TO index_token;
-- `param=code`, `param=system|code`; covering, so a lookup yields `rid` from the index.
CREATE INDEX index_token_lookup ON index_token (resource_type, param, code, system, rid);
CREATE INDEX index_token_rid ON index_token (rid);

-- Strings: `normalized` (lower case, no accents) for the default and `:contains` searches,
-- `exact` as written for `:exact`.
CREATE TABLE index_string (
    rid           BIGINT NOT NULL,
    resource_type TEXT COLLATE "C" NOT NULL,
    param         TEXT COLLATE "C" NOT NULL,
    normalized    TEXT COLLATE "C" NOT NULL,
    exact         TEXT COLLATE "C" NOT NULL
);
CREATE INDEX index_string_lookup ON index_string (resource_type, param, normalized, rid);
CREATE INDEX index_string_rid ON index_string (rid);

-- References: `target_type`/`target_id` when the reference names a resource ('' otherwise);
-- `url` as written, or '' when it is just `target_type/target_id`.
CREATE TABLE index_reference (
    rid           BIGINT NOT NULL,
    resource_type TEXT COLLATE "C" NOT NULL,
    param         TEXT COLLATE "C" NOT NULL,
    target_type   TEXT COLLATE "C" NOT NULL,
    target_id     TEXT COLLATE "C" NOT NULL,
    url           TEXT COLLATE "C" NOT NULL
);
-- Who points at this resource: patient-scoped searches, `_revinclude`, `_has`, chains. The
-- id leads because a search value may name no type (`subject=123`).
CREATE INDEX index_reference_target
    ON index_reference (target_id, resource_type, param, target_type, rid);
CREATE INDEX index_reference_rid ON index_reference (rid);

-- Dates as half-open ranges in unix microseconds; open ends are the i64 extremes.
CREATE TABLE index_date (
    rid           BIGINT NOT NULL,
    resource_type TEXT COLLATE "C" NOT NULL,
    param         TEXT COLLATE "C" NOT NULL,
    start_us      BIGINT NOT NULL,
    end_us        BIGINT NOT NULL
);
CREATE INDEX index_date_lookup ON index_date (resource_type, param, start_us, end_us, rid);
CREATE INDEX index_date_rid ON index_date (rid);

CREATE TABLE index_uri (
    rid           BIGINT NOT NULL,
    resource_type TEXT COLLATE "C" NOT NULL,
    param         TEXT COLLATE "C" NOT NULL,
    value         TEXT COLLATE "C" NOT NULL
);
CREATE INDEX index_uri_lookup ON index_uri (resource_type, param, value, rid);
CREATE INDEX index_uri_rid ON index_uri (rid);

-- Quantities: `system`/`code` '' when absent.
CREATE TABLE index_quantity (
    rid           BIGINT NOT NULL,
    resource_type TEXT COLLATE "C" NOT NULL,
    param         TEXT COLLATE "C" NOT NULL,
    value         DOUBLE PRECISION NOT NULL,
    system        TEXT COLLATE "C" NOT NULL,
    code          TEXT COLLATE "C" NOT NULL
);
CREATE INDEX index_quantity_lookup ON index_quantity (resource_type, param, value, rid);
CREATE INDEX index_quantity_rid ON index_quantity (rid);
