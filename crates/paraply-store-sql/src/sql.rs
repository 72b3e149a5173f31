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

/// Most rows in one multi-row `INSERT`: far below both databases' placeholder limits.
const INSERT_CHUNK: usize = 256;

/// Splits rows into chunks whose sizes are powers of two (largest first). Each size is one
/// SQL text, so a few dozen prepared statements serve every write instead of one per row
/// count, which kept evicting each other from the connection's statement cache.
fn power_of_two_chunks<T>(mut rows: &[T]) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    while !rows.is_empty() {
        let size = 1 << rows.len().min(INSERT_CHUNK).ilog2();
        let (chunk, rest) = rows.split_at(size);
        chunks.push(chunk);
        rows = rest;
    }
    chunks
}

/// A resource named by type and id, as a write transaction reads and locks it.
pub(crate) type ResourceKey = (ResourceType, ResourceId);

/// Taken inside a PostgreSQL write transaction before reading resources: concurrent writers
/// of the same resource queue here until the holder commits, then read the version it
/// wrote, instead of all losing their compare-and-swap. (A row lock would not do: the row
/// it waited for is no longer current once the holder commits. SQLite needs no lock: it has
/// one writer.) The locks are taken in the order of their hashes, so two transactions that
/// lock overlapping sets this way cannot deadlock; a hash collision only makes two
/// unrelated writes wait in turn.
pub(crate) fn lock_resources(keys: &[ResourceKey]) -> Statement {
    let mut stmt = Statement::default();
    let values = key_values(&mut stmt, keys);
    stmt.sql = format!(
        "SELECT pg_advisory_xact_lock(h) FROM (SELECT hashtextextended(t || '/' || i, 0) AS h \
         FROM (VALUES {values}) AS w (t, i) ORDER BY h) AS locks"
    );
    stmt
}

/// The current versions of several resources in one statement (absent ones give no row).
pub(crate) fn read_current(keys: &[ResourceKey]) -> Statement {
    let mut stmt = Statement::default();
    let values = key_values(&mut stmt, keys);
    // Joining a list of (type, id) pairs lets both databases look each pair up in the
    // index of current versions (checked with EXPLAIN on both).
    stmt.sql = format!(
        "WITH wanted (resource_type, id) AS (VALUES {values}) \
         SELECT v.resource_type, v.id, v.version_id, v.last_updated, v.body \
         FROM wanted w JOIN resource_version v \
         ON v.resource_type = w.resource_type AND v.id = w.id AND v.is_current"
    );
    stmt
}

fn key_values(stmt: &mut Statement, keys: &[ResourceKey]) -> String {
    keys.iter()
        .map(|(resource_type, id)| {
            let resource_type = stmt.text(resource_type.as_str());
            let id = stmt.text(id.as_str());
            format!("({resource_type}, {id})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The compare-and-swap step of writes of versions N > 1: retires each resource's current
/// version if it is still N-1 and returns the [`InsertedRow`] of every row retired (whose
/// index rows the writes replace). A resource missing from the answer was written by
/// someone else first, or skips a version. Row locking (PostgreSQL) or the single writer
/// (SQLite) makes a second writer of the same version see no row.
pub(crate) fn retire_current(versions: &[(&NewVersion, i64)]) -> Vec<Statement> {
    power_of_two_chunks(versions)
        .into_iter()
        .map(|chunk| {
            let mut stmt = Statement::default();
            let alternatives: Vec<String> = chunk
                .iter()
                .map(|(version, number)| {
                    let resource_type = stmt.text(version.resource_type.as_str());
                    let id = stmt.text(version.id.as_str());
                    let previous = stmt.int(number - 1);
                    format!(
                        "(resource_type = {resource_type} AND id = {id} AND version_id = {previous})"
                    )
                })
                .collect();
            // OR-ed equalities: each is one lookup in the (type, id, version) key on both
            // databases.
            stmt.sql = format!(
                "UPDATE resource_version SET is_current = FALSE WHERE is_current AND ({}) \
                 RETURNING seq, resource_type, id",
                alternatives.join(" OR ")
            );
            stmt
        })
        .collect()
}

/// Deletes the index rows of the version rows `rids` (retired versions): one statement per
/// index table and chunk.
pub(crate) fn delete_index(rids: &[i64]) -> Vec<Statement> {
    let mut statements = Vec::new();
    for chunk in power_of_two_chunks(rids) {
        for table in INDEX_TABLES {
            let mut stmt = Statement::default();
            let list = chunk
                .iter()
                .map(|rid| stmt.int(*rid))
                .collect::<Vec<_>>()
                .join(", ");
            stmt.sql = format!("DELETE FROM {table} WHERE rid IN ({list})");
            statements.push(stmt);
        }
    }
    statements
}

/// Multi-row inserts of new current versions; each statement returns the [`InsertedRow`]s
/// it wrote. `DO NOTHING` turns a collision with either unique index (an existing id written
/// as version 1, or the same version twice) into a missing row, which the caller reports as
/// a conflict, instead of an error, which in PostgreSQL would poison the rest of the
/// transaction.
pub(crate) fn insert_versions(versions: &[(&NewVersion, i64)]) -> Vec<Statement> {
    power_of_two_chunks(versions)
        .into_iter()
        .map(|chunk| {
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
            stmt
        })
        .collect()
}

/// The inserts of all index rows of the versions whose rows are `rid`: one multi-row
/// statement per index table that has rows (more only past a few hundred rows of one kind),
/// however many versions there are. `ON CONFLICT DO NOTHING` drops a value a resource holds
/// twice (SQLite keys on it).
pub(crate) fn insert_index(versions: &[(i64, ResourceType, &[IndexRow])]) -> Vec<Statement> {
    let mut by_table: [Vec<(i64, ResourceType, &IndexRow)>; 6] = Default::default();
    for (rid, resource_type, index) in versions {
        for row in *index {
            let table = match row.value {
                IndexValue::Token { .. } => 0,
                IndexValue::String { .. } => 1,
                IndexValue::Reference { .. } => 2,
                IndexValue::Date(_) => 3,
                IndexValue::Uri(_) => 4,
                IndexValue::Quantity { .. } => 5,
            };
            by_table[table].push((*rid, *resource_type, row));
        }
    }
    let columns = [
        "system, code, text",
        "normalized, exact",
        "target_type, target_id, url",
        "start_us, end_us",
        "value",
        "value, system, code",
    ];
    let mut statements = Vec::new();
    for (table, rows) in by_table.iter().enumerate() {
        for chunk in power_of_two_chunks(rows) {
            let mut stmt = Statement::default();
            let mut values = Vec::with_capacity(chunk.len());
            for (rid, resource_type, row) in chunk {
                let rid = stmt.int(*rid);
                let resource_type = stmt.text(resource_type.as_str());
                let param = stmt.text(row.param);
                let rest = index_values(&mut stmt, &row.value);
                values.push(format!("({rid}, {resource_type}, {param}, {rest})"));
            }
            stmt.sql = format!(
                "INSERT INTO {} (rid, resource_type, param, {}) VALUES {} ON CONFLICT DO NOTHING",
                INDEX_TABLES[table],
                columns[table],
                values.join(", ")
            );
            statements.push(stmt);
        }
    }
    statements
}

/// The placeholders of one row's value columns, in the order of `insert_index`'s columns.
fn index_values(stmt: &mut Statement, value: &IndexValue) -> String {
    let text = |stmt: &mut Statement, v: &Option<String>| stmt.text(v.as_deref().unwrap_or(""));
    match value {
        IndexValue::Token {
            system,
            code,
            text: display,
        } => {
            let system = text(stmt, system);
            let code = text(stmt, code);
            let display = stmt.bind(Bind::NullableText(display.clone()));
            format!("{system}, {code}, {display}")
        }
        IndexValue::String { normalized, exact } => {
            format!("{}, {}", stmt.text(normalized), stmt.text(exact))
        }
        IndexValue::Reference {
            target_type,
            target_id,
            url,
        } => {
            let target_type = target_type.map_or("", ResourceType::as_str);
            let target_id = target_id.as_deref().unwrap_or("");
            // The plain relative form is implied by type and id; storing it again would
            // double the size of the most frequent reference rows.
            let implied = !target_id.is_empty()
                && url.len() == target_type.len() + 1 + target_id.len()
                && url.starts_with(target_type)
                && url.ends_with(target_id)
                && url.as_bytes().get(target_type.len()) == Some(&b'/');
            let url = if implied { "" } else { url.as_str() };
            format!(
                "{}, {}, {}",
                stmt.text(target_type),
                stmt.text(target_id),
                stmt.text(url)
            )
        }
        IndexValue::Date(range) => format!("{}, {}", stmt.int(range.start), stmt.int(range.end)),
        IndexValue::Uri(uri) => stmt.text(uri),
        IndexValue::Quantity {
            value,
            system,
            code,
        } => {
            let value = stmt.bind(Bind::Real(*value));
            format!("{value}, {}, {}", text(stmt, system), text(stmt, code))
        }
    }
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

fn from_micros(micros: i64) -> Result<OffsetDateTime, StoreError> {
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
    fn index_inserts_use_few_distinct_statement_sizes() {
        let rows: Vec<u32> = (0..45).collect();
        let sizes: Vec<usize> = power_of_two_chunks(&rows).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [32, 8, 4, 1]);
        assert!(power_of_two_chunks::<u32>(&[]).is_empty());
        let many: Vec<u32> = (0..600).collect();
        assert!(
            power_of_two_chunks(&many)
                .iter()
                .all(|c| c.len() <= INSERT_CHUNK)
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
