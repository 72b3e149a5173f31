-- Bulk export jobs (`$export`, paraply-export). A job lives here, not in a node's memory, so
-- any node answers its status and downloads. Times are unix microseconds.

-- One row per job. `cutoff` is the highest resource_version.seq committed at the kick-off:
-- the job's files are the versions current at that row. `result` is NULL until the worker
-- holding the lease (`lease_owner` until `lease_until`) has counted every file.
CREATE TABLE export_job (
    id               TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
    client_id        TEXT    NOT NULL,
    spec             TEXT    NOT NULL,
    cutoff           BIGINT  NOT NULL,
    transaction_time BIGINT  NOT NULL,
    expires          BIGINT  NOT NULL,
    result           TEXT,
    progress         TEXT,
    lease_owner      TEXT,
    lease_until      BIGINT  NOT NULL DEFAULT 0,
    -- PostgreSQL hands out row numbers at insert and commits may finish out of order: the
    -- transactions in flight at the kick-off (`snapshot/xid`: the snapshot it took and its
    -- own transaction id) may still commit rows at or below the cutoff, so the worker counts
    -- once they have ended. SQLite, one writer: NULL.
    in_flight        TEXT
);

-- The resources a filtered file holds (a `_typeFilter`, a patient compartment), recorded by
-- the worker; an unfiltered file is every resource of its type.
CREATE TABLE export_member (
    job_id        TEXT COLLATE "C" NOT NULL,
    resource_type TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (job_id, resource_type, id)
);
