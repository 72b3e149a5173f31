//! SQL text and row conversions shared by both backends.
//!
//! Both SQLite and PostgreSQL accept `$N` placeholders, `TRUE`/`FALSE` and
//! `ON CONFLICT DO NOTHING`, so every statement is written once, here; the backends only bind
//! and run them.

use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::{IndexRow, IndexValue};
use paraply_store::{
    HistoryCursor, HistoryQuery, HistoryScope, NewVersion, StoreError, StoredResource,
};
use serde::Serialize;
use time::OffsetDateTime;

/// The columns of [`VersionRow`], in order.
const COLUMNS: &str = "resource_type, id, version_id, last_updated, body";

/// `resource_version` columns as decoded by sqlx, before validation.
pub(crate) type VersionRow = (String, String, i64, i64, Option<String>);

/// A [`VersionRow`] preceded by its `seq` (the history cursor).
pub(crate) type HistoryRow = (i64, String, String, i64, i64, Option<String>);
/// `seq, resource_type, id` of a version row just inserted.
pub(crate) type InsertedRow = (i64, String, String);

pub(crate) const READ_CURRENT: &str = "SELECT resource_type, id, version_id, last_updated, body \
     FROM resource_version WHERE resource_type = $1 AND id = $2 AND is_current";

pub(crate) const READ_VERSION: &str = "SELECT resource_type, id, version_id, last_updated, body \
     FROM resource_version WHERE resource_type = $1 AND id = $2 AND version_id = $3";

/// The index tables, one per [`IndexValue`] kind (see migration 0002).
pub(crate) const INDEX_TABLES: [&str; 6] = [
    "index_token",
    "index_string",
    "index_reference",
    "index_date",
    "index_uri",
    "index_quantity",
];

pub(crate) const PING: &str = "SELECT 1";

/// A value bound to a `$N` placeholder of a [`Statement`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Text(String),
    NullableText(Option<String>),
    Int(i64),
    Real(f64),
}

/// SQL text built at run time plus the values of its placeholders, in order.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) binds: Vec<Bind>,
}

impl Statement {
    /// Binds `value` and returns its placeholder. Values are never spliced into the text.
    pub(crate) fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    pub(crate) fn text(&mut self, value: &str) -> String {
        self.bind(Bind::Text(value.to_owned()))
    }

    pub(crate) fn int(&mut self, value: i64) -> String {
        self.bind(Bind::Int(value))
    }

    /// Binds `rows` as one JSON array of arrays: many rows in one value, which the
    /// statement takes apart with the database's JSON functions (see
    /// `Backend::JSON_ROWS`). Thousands of index rows cost one bound value instead of
    /// thousands, and one statement text serves every number of rows.
    pub(crate) fn json<T: Serialize>(&mut self, rows: &[T]) -> String {
        // Serializing tuples of strings and integers cannot fail.
        let text = serde_json::to_string(rows).unwrap_or_default();
        self.bind(Bind::Text(text))
    }
}

/// `sql` with `$1 … $n` replaced by plain `?` when each appears exactly once and in that
/// order (multi-row inserts are written so), else `sql` unchanged. SQLite looks a named or
/// numbered parameter up by a linear scan, and sqlx asks for every parameter's name before
/// binding it: a statement with a thousand `$N` placeholders costs a million steps each
/// time it runs, with `?` nothing.
pub(crate) fn positional(sql: &str, binds: usize) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut expected = 1;
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        let digits = rest[at + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let number: Option<usize> = rest[at + 1..at + 1 + digits].parse().ok();
        if number != Some(expected) {
            return sql.to_owned();
        }
        out.push_str(&rest[..at]);
        out.push('?');
        rest = &rest[at + 1 + digits..];
        expected += 1;
    }
    if expected != binds + 1 {
        return sql.to_owned();
    }
    out.push_str(rest);
    out
}

/// How a database reads the rows of a JSON array bound as one value (see
/// [`Statement::json`]): each row is an array, its columns `value ->> 0`, `value ->> 1`, …
/// (text or SQL NULL), cast where the column is not text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonRows {
    /// `json_each` (the JSON functions built into SQLite since 3.38).
    Sqlite,
    /// `json_array_elements`.
    Postgres,
}

impl JsonRows {
    /// The table expression of the rows of the JSON array bound at `placeholder`.
    pub(crate) fn from(self, placeholder: &str) -> String {
        match self {
            JsonRows::Sqlite => format!("json_each({placeholder})"),
            JsonRows::Postgres => format!("json_array_elements(CAST({placeholder} AS json))"),
        }
    }

    /// A statement over `rows`: `sql` gets the table expression of the bound rows.
    pub(crate) fn statement<T: Serialize>(
        self,
        rows: &[T],
        sql: impl FnOnce(&str) -> String,
    ) -> Statement {
        let mut stmt = Statement::default();
        let placeholder = stmt.json(rows);
        stmt.sql = sql(&self.from(&placeholder));
        stmt
    }

    /// The table expression of `rows` bound as the statement's only value (its `sql` is the
    /// expression alone, to be wrapped), or `None` for no rows.
    fn source<T: Serialize>(self, rows: &[T]) -> Option<Statement> {
        (!rows.is_empty()).then(|| self.statement(rows, str::to_owned))
    }
}

/// A resource named by type and id, as a write transaction reads and locks it.
pub(crate) type ResourceKey = (ResourceType, ResourceId);

fn key_rows(keys: &[ResourceKey]) -> Vec<(&str, &str)> {
    keys.iter()
        .map(|(resource_type, id)| (resource_type.as_str(), id.as_str()))
        .collect()
}

/// Taken inside a PostgreSQL write transaction before reading resources: concurrent writers
/// of the same resource queue here until the holder commits, then read the version it
/// wrote, instead of all losing their compare-and-swap. (A row lock would not do: the row
/// it waited for is no longer current once the holder commits. SQLite needs no lock: it has
/// one writer.) The locks are taken in the order of their hashes, so two transactions that
/// lock overlapping sets this way cannot deadlock; a hash collision only makes two
/// unrelated writes wait in turn.
pub(crate) fn lock_resources(rows: JsonRows, keys: &[ResourceKey]) -> Statement {
    rows.statement(&key_rows(keys), |keys| {
        format!(
            "SELECT pg_advisory_xact_lock(h) FROM (SELECT \
             hashtextextended((value ->> 0) || '/' || (value ->> 1), 0) AS h \
             FROM {keys} ORDER BY h) AS locks"
        )
    })
}

/// [`lock_resources`] for the resources of the version rows `rids`, taken by a reindex
/// batch before it replaces their rows: a writer of one of them waits until the batch
/// commits, or the batch until the write commits and then sees its version is no longer
/// current. The hash must be the one [`lock_resources`] takes.
pub(crate) fn lock_versions(rows: JsonRows, rids: &[[i64; 1]]) -> Statement {
    rows.statement(rids, |rids| {
        format!(
            "SELECT pg_advisory_xact_lock(h) FROM (SELECT \
             hashtextextended(resource_type || '/' || id, 0) AS h FROM resource_version \
             WHERE seq IN (SELECT CAST(value ->> 0 AS BIGINT) FROM {rids}) ORDER BY h) AS locks"
        )
    })
}

/// The current versions of several resources in one statement (absent ones give no row).
pub(crate) fn read_current(rows: JsonRows, keys: &[ResourceKey]) -> Statement {
    // Joining the list of (type, id) pairs lets both databases look each pair up in the
    // index of current versions (checked with EXPLAIN on both).
    rows.statement(&key_rows(keys), |keys| {
        format!(
            "WITH wanted (resource_type, id) AS (SELECT value ->> 0, value ->> 1 FROM {keys}) \
             SELECT v.resource_type, v.id, v.version_id, v.last_updated, v.body \
             FROM wanted w JOIN resource_version v \
             ON v.resource_type = w.resource_type AND v.id = w.id AND v.is_current"
        )
    })
}

/// The compare-and-swap step of writes of versions N > 1: retires each resource's current
/// version if it is still N-1 and returns the [`InsertedRow`] of every row retired (whose
/// index rows the writes replace). A resource missing from the answer was written by
/// someone else first, or skips a version. Row locking (PostgreSQL) or the single writer
/// (SQLite) makes a second writer of the same version see no row.
pub(crate) fn retire_current(rows: JsonRows, versions: &[(&NewVersion, i64)]) -> Statement {
    let previous: Vec<_> = versions
        .iter()
        .map(|(version, number)| {
            (
                version.resource_type.as_str(),
                version.id.as_str(),
                number - 1,
            )
        })
        .collect();
    // A join with the list: one lookup in the (type, id, version) key per entry on both
    // databases.
    rows.statement(&previous, |previous| {
        format!(
            "UPDATE resource_version SET is_current = FALSE \
             FROM (SELECT value ->> 0 AS t, value ->> 1 AS i, CAST(value ->> 2 AS BIGINT) AS v \
             FROM {previous}) AS w \
             WHERE resource_version.resource_type = w.t AND resource_version.id = w.i \
             AND resource_version.version_id = w.v AND resource_version.is_current \
             RETURNING resource_version.seq, resource_version.resource_type, resource_version.id"
        )
    })
}

/// Deletes the index rows of the version rows `rids` (retired versions), one statement per
/// index table.
pub(crate) fn delete_index(rows: JsonRows, rids: &[i64]) -> Vec<Statement> {
    let rids: Vec<[i64; 1]> = rids.iter().map(|rid| [*rid]).collect();
    INDEX_TABLES
        .iter()
        .map(|table| {
            rows.statement(&rids, |rids| {
                format!(
                    "DELETE FROM {table} WHERE rid IN \
                     (SELECT CAST(value ->> 0 AS BIGINT) FROM {rids})"
                )
            })
        })
        .collect()
}

/// Most versions in one multi-row `INSERT`: far below both databases' placeholder limits.
const VERSION_CHUNK: usize = 64;

/// Inserts new current versions in multi-row statements; each returns the [`InsertedRow`]s
/// it wrote. `DO NOTHING` turns a collision with either unique index (an existing id written
/// as version 1, or the same version twice) into a missing row, which the caller reports as
/// a conflict, instead of an error, which in PostgreSQL would poison the rest of the
/// transaction.
///
/// Bodies go in as bound values of a `VALUES` list, not as rows of one JSON array like the
/// index rows: a 1.5 KB body escaped into JSON and taken out again with SQLite's JSON
/// functions costs three to four times as much as binding it. Chunks have power-of-two
/// sizes, so a few prepared statements serve every number of versions.
pub(crate) fn insert_versions(versions: &[(&NewVersion, i64)]) -> Vec<Statement> {
    let mut statements = Vec::new();
    let mut rest = versions;
    while !rest.is_empty() {
        let size = 1 << rest.len().min(VERSION_CHUNK).ilog2();
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let mut stmt = Statement::default();
        let values: Vec<String> = chunk
            .iter()
            .map(|(version, number)| {
                let resource_type = stmt.text(version.resource_type.as_str());
                let id = stmt.text(version.id.as_str());
                let number = stmt.int(*number);
                let at = stmt.int(to_micros(version.last_updated));
                let body = stmt.bind(Bind::NullableText(version.body.clone()));
                format!("({resource_type}, {id}, {number}, {at}, TRUE, {body})")
            })
            .collect();
        stmt.sql = format!(
            "INSERT INTO resource_version \
             (resource_type, id, version_id, last_updated, is_current, body) \
             VALUES {} ON CONFLICT DO NOTHING RETURNING seq, resource_type, id",
            values.join(", ")
        );
        statements.push(stmt);
    }
    statements
}

/// The inserts of all index rows of the versions whose rows are `rid`: one statement per
/// index table that has rows, however many versions and rows there are. `ON CONFLICT DO
/// NOTHING` drops a value a resource holds twice (SQLite keys on it); `WHERE TRUE` tells
/// SQLite's parser that the `ON CONFLICT` belongs to the `INSERT`, not to the `SELECT`.
pub(crate) fn insert_index(
    rows: JsonRows,
    versions: &[(i64, ResourceType, &[IndexRow])],
) -> Vec<Statement> {
    let mut tokens = Vec::new();
    let mut strings = Vec::new();
    let mut references = Vec::new();
    let mut dates = Vec::new();
    let mut uris = Vec::new();
    let mut quantities = Vec::new();
    for (rid, resource_type, index) in versions {
        let (rid, resource_type) = (*rid, resource_type.as_str());
        for row in *index {
            let param = row.param;
            match &row.value {
                IndexValue::Token { system, code, text } => tokens.push((
                    rid,
                    resource_type,
                    param,
                    system.as_deref().unwrap_or(""),
                    code.as_deref().unwrap_or(""),
                    text.as_deref(),
                )),
                IndexValue::String { normalized, exact } => {
                    strings.push((rid, resource_type, param, normalized, exact));
                }
                IndexValue::Reference {
                    target_type,
                    target_id,
                    url,
                } => {
                    let target_type = target_type.map_or("", ResourceType::as_str);
                    let target_id = target_id.as_deref().unwrap_or("");
                    // The plain relative form is implied by type and id; storing it again
                    // would double the size of the most frequent reference rows.
                    let implied = !target_id.is_empty()
                        && url.len() == target_type.len() + 1 + target_id.len()
                        && url.starts_with(target_type)
                        && url.ends_with(target_id)
                        && url.as_bytes().get(target_type.len()) == Some(&b'/');
                    let url = if implied { "" } else { url.as_str() };
                    references.push((rid, resource_type, param, target_type, target_id, url));
                }
                IndexValue::Date(range) => {
                    dates.push((rid, resource_type, param, range.start, range.end));
                }
                IndexValue::Uri(uri) => uris.push((rid, resource_type, param, uri)),
                IndexValue::Quantity {
                    value,
                    system,
                    code,
                } => quantities.push((
                    rid,
                    resource_type,
                    param,
                    value,
                    system.as_deref().unwrap_or(""),
                    code.as_deref().unwrap_or(""),
                )),
            }
        }
    }
    let mut statements = Vec::new();
    let mut add = |table: &str, columns: &str, values: &str, stmt: Option<Statement>| {
        statements.extend(stmt.map(|mut stmt| {
            stmt.sql = format!(
                "INSERT INTO {table} (rid, resource_type, param, {columns}) \
                 SELECT CAST(value ->> 0 AS BIGINT), value ->> 1, value ->> 2, {values} \
                 FROM {} WHERE TRUE ON CONFLICT DO NOTHING",
                stmt.sql
            );
            stmt
        }));
    };
    add(
        "index_token",
        "system, code, text",
        "value ->> 3, value ->> 4, value ->> 5",
        rows.source(&tokens),
    );
    add(
        "index_string",
        "normalized, exact",
        "value ->> 3, value ->> 4",
        rows.source(&strings),
    );
    add(
        "index_reference",
        "target_type, target_id, url",
        "value ->> 3, value ->> 4, value ->> 5",
        rows.source(&references),
    );
    add(
        "index_date",
        "start_us, end_us",
        "CAST(value ->> 3 AS BIGINT), CAST(value ->> 4 AS BIGINT)",
        rows.source(&dates),
    );
    add("index_uri", "value", "value ->> 3", rows.source(&uris));
    add(
        "index_quantity",
        "value, system, code",
        "CAST(value ->> 3 AS DOUBLE PRECISION), value ->> 4, value ->> 5",
        rows.source(&quantities),
    );
    statements
}

/// The page (one row more than asked, to learn whether there is a next page) and the total
/// count of a history query.
pub(crate) fn history(query: &HistoryQuery) -> (Statement, Statement) {
    let mut filter = Statement::default();
    let mut conditions = Vec::new();
    match &query.scope {
        HistoryScope::System => {}
        HistoryScope::Type(resource_type) => {
            let t = filter.bind(Bind::Text(resource_type.as_str().to_owned()));
            conditions.push(format!("resource_type = {t}"));
        }
        HistoryScope::Instance(resource_type, id) => {
            let t = filter.bind(Bind::Text(resource_type.as_str().to_owned()));
            let i = filter.bind(Bind::Text(id.as_str().to_owned()));
            conditions.push(format!("resource_type = {t} AND id = {i}"));
        }
    }
    if let Some(since) = query.since {
        let since = filter.bind(Bind::Int(to_micros(since)));
        conditions.push(format!("last_updated >= {since}"));
    }

    let total = Statement {
        sql: format!(
            "SELECT COUNT(*) FROM resource_version{}",
            where_clause(&conditions)
        ),
        binds: filter.binds.clone(),
    };
    let mut page = filter;
    if let Some(HistoryCursor(after)) = query.after {
        let after = page.bind(Bind::Int(after));
        conditions.push(format!("seq < {after}"));
    }
    let limit = page.bind(Bind::Int(i64::from(query.count) + 1));
    // Within one resource, versions are written in order, so `version_id` orders like `seq`;
    // ordering by it lets the (type, id, version) key serve instance history directly
    // instead of walking the type's whole history.
    let order = match query.scope {
        HistoryScope::Instance(..) => "version_id",
        HistoryScope::System | HistoryScope::Type(_) => "seq",
    };
    page.sql = format!(
        "SELECT seq, {COLUMNS} FROM resource_version{} ORDER BY {order} DESC LIMIT {limit}",
        where_clause(&conditions)
    );
    (page, total)
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// Turns the `count + 1` rows of a history page into the page.
pub(crate) fn history_page(
    mut rows: Vec<HistoryRow>,
    count: u32,
    total: i64,
) -> Result<paraply_store::HistoryPage, StoreError> {
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let more = rows.len() > count;
    rows.truncate(count);
    let next = match rows.last() {
        Some((seq, ..)) if more => Some(HistoryCursor(*seq)),
        _ => None,
    };
    let entries = rows
        .into_iter()
        .map(|(_, t, id, v, at, body)| stored((t, id, v, at, body)))
        .collect::<Result<_, _>>()?;
    Ok(paraply_store::HistoryPage {
        entries,
        next,
        total: count_from(total)?,
    })
}

/// Validates a decoded row into a [`StoredResource`].
pub(crate) fn stored(row: VersionRow) -> Result<StoredResource, StoreError> {
    let (resource_type, id, version_id, last_updated, body) = row;
    Ok(StoredResource {
        resource_type: resource_type
            .parse::<ResourceType>()
            .map_err(|_| StoreError::Corrupt("unknown resource type in a stored row".into()))?,
        id: id
            .parse::<ResourceId>()
            .map_err(|_| StoreError::Corrupt("invalid id in a stored row".into()))?,
        version_id: u64::try_from(version_id)
            .ok()
            .and_then(VersionId::new)
            .ok_or_else(|| StoreError::Corrupt("invalid version id in a stored row".into()))?,
        last_updated: from_micros(last_updated)?,
        body,
    })
}

/// A `COUNT(*)` result as the unsigned total of the store API.
pub(crate) fn count_from(count: i64) -> Result<u64, StoreError> {
    u64::try_from(count).map_err(|_| StoreError::Corrupt("negative row count".into()))
}

/// A version id as the database stores it (BIGINT).
pub(crate) fn version_to_db(
    resource_type: ResourceType,
    id: &ResourceId,
    version_id: VersionId,
) -> Result<i64, StoreError> {
    // Versions beyond i64::MAX cannot exist in the table, so no current version can precede
    // such a version: that is a conflict, not a database failure.
    i64::try_from(version_id.get()).map_err(|_| StoreError::VersionConflict {
        resource_type,
        id: id.clone(),
    })
}

/// Timestamps are stored as unix microseconds, the precision the store API promises.
pub(crate) fn to_micros(at: OffsetDateTime) -> i64 {
    // Every OffsetDateTime (years -9999..=9999) is within ±3.2e17 µs, far inside i64.
    (at.unix_timestamp_nanos() / 1_000) as i64
}

pub(crate) fn from_micros(micros: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|_| StoreError::Corrupt("timestamp out of range in a stored row".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_in_bind_order_become_positional_and_others_stay() {
        assert_eq!(
            positional("INSERT INTO t VALUES ($1, $2), ($3, $4)", 4),
            "INSERT INTO t VALUES (?, ?), (?, ?)"
        );
        // Out of order, repeated, missing or a count that does not match: unchanged.
        for (sql, binds) in [
            ("SELECT $2, $1", 2),
            ("SELECT $1 WHERE $1 = 1", 1),
            ("SELECT $1, $3", 3),
            ("SELECT $1", 2),
        ] {
            assert_eq!(positional(sql, binds), sql);
        }
        assert_eq!(positional("SELECT 1", 0), "SELECT 1");
    }

    #[test]
    fn index_rows_go_in_as_one_json_value_per_table_and_versions_in_few_statements() {
        let index = [IndexRow {
            param: "identifier",
            value: IndexValue::Token {
                system: Some("http://x".into()),
                code: Some("1".into()),
                text: None,
            },
        }];
        let rows: Vec<(i64, ResourceType, &[IndexRow])> = (0..300)
            .map(|rid| (rid, ResourceType::Patient, &index[..]))
            .collect();
        for json in [JsonRows::Sqlite, JsonRows::Postgres] {
            let inserts = insert_index(json, &rows);
            assert_eq!(inserts.len(), 1, "one table has rows");
            let Bind::Text(text) = &inserts[0].binds[0] else {
                panic!("rows are bound as JSON text");
            };
            let parsed: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(parsed.as_array().map(Vec::len), Some(300));
            assert_eq!(
                parsed[7],
                serde_json::json!([7, "Patient", "identifier", "http://x", "1", null])
            );
            assert_eq!(delete_index(json, &[1, 2, 3]).len(), INDEX_TABLES.len());
        }
        assert!(
            insert_index(JsonRows::Sqlite, &rows)[0]
                .sql
                .contains("json_each($1)")
        );
        assert!(
            insert_index(JsonRows::Postgres, &rows)[0]
                .sql
                .contains("json_array_elements(CAST($1 AS json))")
        );

        let version = NewVersion {
            resource_type: ResourceType::Patient,
            id: "p1".parse().unwrap(),
            version_id: VersionId::FIRST,
            last_updated: OffsetDateTime::UNIX_EPOCH,
            body: Some(r#"{"resourceType":"Patient","id":"p1"}"#.into()),
            index: Vec::new(),
        };
        let sizes: Vec<usize> = insert_versions(&vec![(&version, 1); 45])
            .iter()
            .map(|stmt| stmt.binds.len() / 5)
            .collect();
        assert_eq!(sizes, [32, 8, 4, 1]);
        assert!(
            insert_versions(&vec![(&version, 1); 300])
                .iter()
                .all(|s| s.binds.len() <= 5 * VERSION_CHUNK)
        );
    }

    #[test]
    fn history_fetches_one_row_more_than_the_page_and_counts_without_the_cursor() {
        let (page, total) = history(&HistoryQuery {
            scope: HistoryScope::Type(ResourceType::Patient),
            since: None,
            count: 5,
            after: Some(HistoryCursor(42)),
        });
        assert!(
            page.sql
                .ends_with("WHERE resource_type = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3")
        );
        assert_eq!(page.binds[2], Bind::Int(6));
        assert!(!total.sql.contains("seq"));
    }

    #[test]
    fn microsecond_timestamps_round_trip() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000).unwrap();
        assert_eq!(from_micros(to_micros(at)).unwrap(), at);
    }
}
