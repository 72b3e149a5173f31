-- A report reads one kind of fact as it stood at an instant in keyset pages ordered by
-- `seq` (paraply-store-sql facts.rs): an index range per page, never a sort. Most facts
-- of a kind begin before the instants reports ask about, so `valid_from` narrowed little.
DROP INDEX fact_kind;
CREATE INDEX fact_kind_seq ON fact (kind, seq);
