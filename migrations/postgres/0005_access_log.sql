-- The access log (I15) as compact, append-only rows: one per access, with the columns it is
-- searched by, a compact body the server renders as an AuditEvent on read, and hash chains
-- (`hash` = SHA-256 of `prev_hash` and the row's content, see paraply_store::link_hash)
-- that `paraply audit verify` walks. AuditEvents written as resources before this migration
-- stay in resource_version, unread (docs/ACCESS.md).
CREATE TABLE access_log (
    seq       BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain     BIGINT  NOT NULL,
    position  BIGINT  NOT NULL,
    id        TEXT    COLLATE "C" NOT NULL,  -- the AuditEvent id
    recorded  BIGINT  NOT NULL,              -- unix microseconds, UTC
    subtype   TEXT    COLLATE "C" NOT NULL,  -- the RESTful interaction
    action    TEXT    COLLATE "C" NOT NULL,  -- C R U D E
    outcome   TEXT    COLLATE "C" NOT NULL,  -- 0 4 8
    emergency BIGINT  NOT NULL,              -- 1: ETREAT
    body      TEXT    NOT NULL,
    prev_hash TEXT    COLLATE "C" NOT NULL,
    hash      TEXT    COLLATE "C" NOT NULL,
    CONSTRAINT access_log_link UNIQUE (chain, position)
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
    name  TEXT   COLLATE "C" NOT NULL,
    value TEXT   COLLATE "C" NOT NULL,
    seq   BIGINT NOT NULL,
    PRIMARY KEY (name, value, seq)
);
-- The terms of given rows (verify, purge).
CREATE INDEX access_log_term_seq ON access_log_term (seq);

-- Each chain's last position and hash (so a truncated tail is found) and where it starts
-- (`anchor_*`: 0 and the zero hash, or where a purge left it). Concurrent transactions
-- append to different chains, each under a transaction advisory lock on its chain.
CREATE TABLE access_log_chain (
    chain           BIGINT PRIMARY KEY,
    position        BIGINT NOT NULL,
    hash            TEXT   NOT NULL,
    anchor_position BIGINT NOT NULL,
    anchor_hash     TEXT   NOT NULL
);
INSERT INTO access_log_chain (chain, position, hash, anchor_position, anchor_hash)
SELECT c, 0, repeat('0', 64), 0, repeat('0', 64) FROM generate_series(0, 15) AS c;

-- Every run of `paraply audit purge`: when, the cutoff, how many entries it deleted and
-- where it left each chain (JSON).
CREATE TABLE access_log_purge (
    seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ran_at   BIGINT NOT NULL,
    cutoff   BIGINT NOT NULL,
    deleted  BIGINT NOT NULL,
    anchors  TEXT   NOT NULL
);
