//! SQL text and row conversions shared by both backends.
//!
//! Both SQLite and PostgreSQL accept `$N` placeholders, `TRUE`/`FALSE` and
//! `ON CONFLICT DO NOTHING`, so every statement is written once, here; the backends only bind
//! and run them.

use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::{Clause, IndexValue, SearchQuery, TokenSystem, TokenValue};
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

pub(crate) const READ_CURRENT: &str = "SELECT resource_type, id, version_id, last_updated, body \
     FROM resource_version WHERE resource_type = $1 AND id = $2 AND is_current";

/// Taken inside a PostgreSQL write transaction before reading a resource: concurrent
/// writers of the same resource queue here until the holder commits, then read the version
/// it wrote, instead of all losing their compare-and-swap. (A row lock would not do: the
/// row it waited for is no longer current once the holder commits. SQLite needs no lock:
/// it has one writer.) A hash collision only makes two unrelated writes wait in turn.
pub(crate) const LOCK_RESOURCE: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))";

pub(crate) const READ_VERSION: &str = "SELECT resource_type, id, version_id, last_updated, body \
     FROM resource_version WHERE resource_type = $1 AND id = $2 AND version_id = $3";

/// Compare-and-swap step of a write of version N > 1: touches exactly one row when version
/// N-1 is still current. Row locking (PostgreSQL) or the single writer (SQLite) makes a
/// second writer of the same version see zero rows.
pub(crate) const RETIRE_CURRENT: &str = "UPDATE resource_version SET is_current = FALSE \
     WHERE resource_type = $1 AND id = $2 AND is_current AND version_id = $3";

/// Inserts the new current version. `DO NOTHING` turns a collision with either unique index
/// (an existing id on create, or the same version twice) into zero affected rows instead of
/// an error, which in PostgreSQL would poison the rest of the transaction.
pub(crate) const INSERT_VERSION: &str = "INSERT INTO resource_version \
     (resource_type, id, version_id, last_updated, is_current, body) \
     VALUES ($1, $2, $3, $4, TRUE, $5) ON CONFLICT DO NOTHING";

pub(crate) const DELETE_INDEX: &str =
    "DELETE FROM index_token WHERE resource_type = $1 AND id = $2";

pub(crate) const PING: &str = "SELECT 1";

/// A value bound to a `$N` placeholder of a [`Statement`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bind {
    Text(String),
    NullableText(Option<String>),
    Int(i64),
}

/// SQL text built at run time plus the values of its placeholders, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) binds: Vec<Bind>,
}

impl Statement {
    /// Binds `value` and returns its placeholder. Values are never spliced into the text.
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }
}

/// The insert of all index rows of `version` in one statement (one round trip).
/// `None` when the version has no index rows.
pub(crate) fn insert_index(version: &NewVersion) -> Option<Statement> {
    if version.index.is_empty() {
        return None;
    }
    let mut stmt = Statement::default();
    let resource_type = stmt.bind(Bind::Text(version.resource_type.as_str().to_owned()));
    let id = stmt.bind(Bind::Text(version.id.as_str().to_owned()));
    let mut values = Vec::with_capacity(version.index.len());
    for row in &version.index {
        let param = stmt.bind(Bind::Text(row.param.to_owned()));
        match &row.value {
            IndexValue::Token { system, code } => {
                let system = stmt.bind(Bind::NullableText(system.clone()));
                let code = stmt.bind(Bind::Text(code.clone()));
                values.push(format!(
                    "({resource_type}, {id}, {param}, {system}, {code})"
                ));
            }
        }
    }
    stmt.sql = format!(
        "INSERT INTO index_token (resource_type, id, param, system, code) VALUES {}",
        values.join(", ")
    );
    Some(stmt)
}

/// The page and the total count of a search, as two statements over the same filter.
pub(crate) fn search(query: &SearchQuery, limit: u32) -> (Statement, Statement) {
    let mut filter = Statement::default();
    let resource_type = filter.bind(Bind::Text(query.resource_type.as_str().to_owned()));
    // Index rows exist only for current versions, but the version row still has to be the
    // current, non-deleted one to be returned.
    let mut sql = format!(
        "FROM resource_version r WHERE r.resource_type = {resource_type} \
         AND r.is_current AND r.body IS NOT NULL"
    );
    for clause in &query.clauses {
        let condition = match clause {
            Clause::Id(ids) if ids.is_empty() => "FALSE".to_owned(),
            Clause::Id(ids) => {
                let ids: Vec<String> = ids
                    .iter()
                    .map(|id| filter.bind(Bind::Text(id.as_str().to_owned())))
                    .collect();
                format!("r.id IN ({})", ids.join(", "))
            }
            Clause::Token { values, .. } if values.is_empty() => "FALSE".to_owned(),
            Clause::Token { param, values } => {
                let param = filter.bind(Bind::Text((*param).to_owned()));
                let mut codes = Vec::with_capacity(values.len());
                let mut alternatives = Vec::with_capacity(values.len());
                for value in values {
                    let code = value
                        .code
                        .as_ref()
                        .map(|code| filter.bind(Bind::Text(code.clone())));
                    alternatives.push(token_condition(&mut filter, value, code.as_deref()));
                    codes.extend(code);
                }
                // When every alternative names a code, listing the codes lets the index seek
                // each one; SQLite would otherwise scan every value of the parameter, as it
                // does not split an OR of ANDs into index lookups.
                let seek = if codes.len() == values.len() {
                    format!(" AND t.code IN ({})", codes.join(", "))
                } else {
                    String::new()
                };
                format!(
                    "r.id IN (SELECT t.id FROM index_token t \
                     WHERE t.resource_type = {resource_type} AND t.param = {param}{seek} \
                     AND ({}))",
                    alternatives.join(" OR ")
                )
            }
        };
        sql.push_str(" AND ");
        sql.push_str(&condition);
    }

    let total = Statement {
        sql: format!("SELECT COUNT(*) {sql}"),
        binds: filter.binds.clone(),
    };
    let mut page = filter;
    let limit = page.bind(Bind::Int(i64::from(limit)));
    // The outer query reads only `resource_version r`, so the bare column names are its own.
    page.sql = format!("SELECT {COLUMNS} {sql} ORDER BY r.id LIMIT {limit}");
    (page, total)
}

/// One alternative of a token clause, over the `index_token t` row; `code` is the
/// placeholder already bound for `value.code`.
fn token_condition(stmt: &mut Statement, value: &TokenValue, code: Option<&str>) -> String {
    let mut parts = Vec::with_capacity(2);
    match &value.system {
        TokenSystem::Any => {}
        TokenSystem::Absent => parts.push("t.system IS NULL".to_owned()),
        TokenSystem::Is(system) => {
            parts.push(format!(
                "t.system = {}",
                stmt.bind(Bind::Text(system.clone()))
            ));
        }
    }
    if let Some(code) = code {
        parts.push(format!("t.code = {code}"));
    }
    if parts.is_empty() {
        // Only `Any` without a code, which the parser refuses: any value of the parameter.
        "TRUE".to_owned()
    } else {
        format!("({})", parts.join(" AND "))
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

    fn query(pairs: &[(&str, &str)]) -> SearchQuery {
        SearchQuery::parse(ResourceType::Patient, pairs.iter().copied()).unwrap()
    }

    #[test]
    fn search_values_are_bound_never_spliced_into_the_sql() {
        let (page, total) = search(&query(&[("identifier", "x'y|1,2"), ("_id", "a")]), 10);
        assert!(!page.sql.contains("x'y"));
        assert_eq!(
            page.binds,
            [
                Bind::Text("Patient".into()),
                Bind::Text("identifier".into()),
                Bind::Text("1".into()),
                Bind::Text("x'y".into()),
                Bind::Text("2".into()),
                Bind::Text("a".into()),
                Bind::Int(10),
            ]
        );
        assert_eq!(total.binds.len(), page.binds.len() - 1);
        assert!(
            total
                .sql
                .starts_with("SELECT COUNT(*) FROM resource_version r WHERE")
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
