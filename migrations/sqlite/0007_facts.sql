-- Facts a domain derives from a patient's resources in the write's own transaction (the
-- follow-up measures' per-patient and per-appointment facts), kept with the period each was
-- true for, so a report can be evaluated as the data stood at an instant without re-reading
-- the version history. Times are unix microseconds; `valid_to` is NULL for the current fact.
CREATE TABLE fact (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    valid_from INTEGER NOT NULL,
    valid_to   INTEGER,
    body       TEXT    NOT NULL
);
-- The current fact of a subject, which a write closes and replaces.
CREATE UNIQUE INDEX fact_current ON fact (kind, subject) WHERE valid_to IS NULL;
-- A report reads one kind as it stood at an instant, in keyset pages ordered by `seq`
-- (paraply-store-sql facts.rs): an index range per page, never a sort.
CREATE INDEX fact_kind_seq ON fact (kind, seq);
