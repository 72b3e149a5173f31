-- The access log (I15) as compact, append-only rows: one per access, with the columns it is
-- searched by, a compact body the server renders as an AuditEvent on read, and a hash chain
-- (`hash` = SHA-256 of `prev_hash` and the row's content, see paraply_store::link_hash)
-- that `paraply audit verify` walks. AuditEvents written as resources before this migration
-- stay in resource_version, unread (docs/ACCESS.md).
CREATE TABLE access_log (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    chain     INTEGER NOT NULL,
    position  INTEGER NOT NULL,
    id        TEXT    NOT NULL,  -- the AuditEvent id
    recorded  INTEGER NOT NULL,  -- unix microseconds, UTC
    subtype   TEXT    NOT NULL,  -- the RESTful interaction
    action    TEXT    NOT NULL,  -- C R U D E
    outcome   TEXT    NOT NULL,  -- 0 4 8
    emergency INTEGER NOT NULL,  -- 1: ETREAT
    body      TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL,
    UNIQUE (chain, position)
);

-- Read by id.
CREATE UNIQUE INDEX access_log_id ON access_log (id);
-- `date` and `_sort=date`.
CREATE INDEX access_log_recorded ON access_log (recorded, seq);
-- The rare values searched for: refusals and failures, emergency accesses.
CREATE INDEX access_log_not_success ON access_log (outcome, seq) WHERE outcome <> '0';
CREATE INDEX access_log_emergency ON access_log (seq) WHERE emergency = 1;

-- Multi-valued search keys: `patient` (patient id), `agent` and `entity` (references).
CREATE TABLE access_log_term (
    name  TEXT    NOT NULL,
    value TEXT    NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (name, value, seq)
) WITHOUT ROWID;
-- The terms of given rows (verify, purge).
CREATE INDEX access_log_term_seq ON access_log_term (seq);

-- Each chain's last position and hash (so a truncated tail is found) and where it starts
-- (`anchor_*`: 0 and the zero hash, or where a purge left it). SQLite has one writer and so
-- one chain.
CREATE TABLE access_log_chain (
    chain           INTEGER PRIMARY KEY,
    position        INTEGER NOT NULL,
    hash            TEXT    NOT NULL,
    anchor_position INTEGER NOT NULL,
    anchor_hash     TEXT    NOT NULL
);
INSERT INTO access_log_chain (chain, position, hash, anchor_position, anchor_hash)
VALUES (0, 0, '0000000000000000000000000000000000000000000000000000000000000000',
        0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Every run of `paraply audit purge`: when, the cutoff, how many entries it deleted and
-- where it left each chain (JSON).
CREATE TABLE access_log_purge (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    ran_at   INTEGER NOT NULL,
    cutoff   INTEGER NOT NULL,
    deleted  INTEGER NOT NULL,
    anchors  TEXT    NOT NULL
);
