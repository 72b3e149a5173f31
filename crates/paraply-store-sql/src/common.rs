//! The reads, searches and writes both backends run: every statement is the same text on
//! SQLite and PostgreSQL (see [`crate::sql`]), so only the sqlx database type differs.

// Why generic code rather than a macro that stamps out a copy per backend: the compiler
// checks this code once, errors and the debugger point at real lines, and a third backend
// needs only a `Backend` impl. The price is the list of sqlx bounds below, spelled out on
// both impl blocks because Rust does not carry an impl's where clause over to its callers;
// every bound is one a `$N` placeholder or a decoded column of `sql` needs.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;

use async_trait::async_trait;
use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::{MAX_INCLUDE_DEPTH, Restriction, SearchQuery, SortValue, Total};
use paraply_store::{
    HistoryPage, HistoryQuery, NewVersion, SearchMatch, SearchPage, StoreError, StoreTx,
    StoredResource,
};
use sqlx::query::{Query, QueryAs};
use sqlx::{
    Arguments, AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, FromRow,
    IntoArguments, Pool, Row, Transaction, Type,
};
use time::OffsetDateTime;

use crate::error::{db_error, write_error};
use crate::search::{self, SortType};
use crate::sql::{self, Bind, HistoryRow, InsertedRow, Statement, VersionRow};

/// What a write transaction does differently on each database.
pub(crate) trait Backend: Database {
    /// Run, bound to the resource type and id, before a write transaction reads a resource
    /// (`None`: the database needs no lock there).
    const LOCK_RESOURCE: Option<&'static str>;
    /// Whether `$1, $2, …` placeholders that appear in bind order are better sent as plain
    /// `?` (see [`sql::positional`]).
    const POSITIONAL_PLACEHOLDERS: bool;
}

/// Version rows per `_include`/`_revinclude` statement: a page of up to 1000 matches takes
/// a few statements per include spec, never one per match.
const INCLUDE_CHUNK: usize = 500;

/// The statements of both backends, run on a pool or on one connection of database `DB`.
pub(crate) struct Sql<DB>(PhantomData<DB>);

impl<DB> Sql<DB>
where
    DB: Backend,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> String: Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> VersionRow: FromRow<'r, DB::Row>,
    for<'r> HistoryRow: FromRow<'r, DB::Row>,
    for<'r> InsertedRow: FromRow<'r, DB::Row>,
{
    pub(crate) async fn read(
        pool: &Pool<DB>,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<StoredResource>, StoreError> {
        let mut conn = pool.acquire().await.map_err(db_error)?;
        Self::read_current(&mut conn, resource_type, id).await
    }

    pub(crate) async fn vread(
        pool: &Pool<DB>,
        resource_type: ResourceType,
        id: &ResourceId,
        version_id: VersionId,
    ) -> Result<Option<StoredResource>, StoreError> {
        let Ok(version) = i64::try_from(version_id.get()) else {
            return Ok(None);
        };
        sqlx::query_as::<_, VersionRow>(sql::READ_VERSION)
            .bind(resource_type.as_str())
            .bind(id.as_str())
            .bind(version)
            .fetch_optional(pool)
            .await
            .map_err(db_error)?
            .map(sql::stored)
            .transpose()
    }

    pub(crate) async fn history(
        pool: &Pool<DB>,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, StoreError> {
        let (page, total) = sql::history(query);
        let mut conn = pool.acquire().await.map_err(db_error)?;
        let rows: Vec<HistoryRow> = Self::bind_as(page)?
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        let (total,): (i64,) = Self::bind_as(total)?
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error)?;
        sql::history_page(rows, query.count, total)
    }

    pub(crate) async fn search(
        pool: &Pool<DB>,
        query: &SearchQuery,
    ) -> Result<SearchPage, StoreError> {
        let mut conn = pool.acquire().await.map_err(db_error)?;
        Self::search_on(&mut conn, query).await
    }

    pub(crate) async fn visible(
        pool: &Pool<DB>,
        resource_type: ResourceType,
        id: &ResourceId,
        restriction: &Restriction,
    ) -> Result<bool, StoreError> {
        let mut conn = pool.acquire().await.map_err(db_error)?;
        Self::visible_on(&mut conn, resource_type, id, restriction).await
    }

    async fn visible_on(
        conn: &mut DB::Connection,
        resource_type: ResourceType,
        id: &ResourceId,
        restriction: &Restriction,
    ) -> Result<bool, StoreError> {
        let statement = search::visible(resource_type, id.as_str(), restriction);
        let row: Option<(i64,)> = Self::bind_as(statement)?
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?;
        Ok(row.is_some())
    }

    pub(crate) async fn ping(pool: &Pool<DB>) -> Result<(), StoreError> {
        sqlx::query(sql::PING)
            .execute(pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn read_current(
        conn: &mut DB::Connection,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<StoredResource>, StoreError> {
        sqlx::query_as::<_, VersionRow>(sql::READ_CURRENT)
            .bind(resource_type.as_str())
            .bind(id.as_str())
            .fetch_optional(conn)
            .await
            .map_err(db_error)?
            .map(sql::stored)
            .transpose()
    }

    /// The page (one statement), the total (one, only with `_total=accurate` and only when
    /// the page does not already tell it) and the includes (a few per include spec and
    /// round, whatever the number of matches).
    async fn search_on(
        conn: &mut DB::Connection,
        query: &SearchQuery,
    ) -> Result<SearchPage, StoreError> {
        let plan = search::search(query, sql::to_micros(OffsetDateTime::now_utc()));
        let rows: Vec<DB::Row> = Self::bind(plan.page)?
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        let count = usize::try_from(query.count).unwrap_or(usize::MAX);
        let more = rows.len() > count;
        let mut found = rows
            .iter()
            .take(count)
            .map(|row| decode_match::<DB>(row, &plan.sort))
            .collect::<Result<Vec<_>, _>>()?;
        if plan.backwards {
            found.reverse();
        }
        let total = if query.total == Total::None {
            None
        } else if query.page.is_none() && !more && count > 0 {
            // A first page that holds every match is its own count: no second query.
            Some(u64::try_from(found.len()).unwrap_or(u64::MAX))
        } else if let Some(total) = plan.total {
            let (total,): (i64,) = Self::bind_as(total)?
                .fetch_one(&mut *conn)
                .await
                .map_err(db_error)?;
            Some(sql::count_from(total)?)
        } else {
            None
        };
        let included = Self::includes(conn, query, &found).await?;
        Ok(SearchPage {
            matches: found,
            included,
            total,
            more,
        })
    }

    /// `_include`/`_revinclude`: round 0 starts from the matches, each `:iterate` round from
    /// what the previous round added. Every resource appears once, never a match.
    async fn includes(
        conn: &mut DB::Connection,
        query: &SearchQuery,
        matches: &[SearchMatch],
    ) -> Result<Vec<StoredResource>, StoreError> {
        if query.include.is_empty() && query.revinclude.is_empty() {
            return Ok(Vec::new());
        }
        let mut seen: HashSet<(ResourceType, ResourceId)> = matches
            .iter()
            .map(|m| (m.resource.resource_type, m.resource.id.clone()))
            .collect();
        let mut frontier: Vec<(i64, ResourceType)> = matches
            .iter()
            .map(|m| (m.seq, m.resource.resource_type))
            .collect();
        let mut included = Vec::new();
        let specs: Vec<_> = (query.include.iter().map(|s| (s, false)))
            .chain(query.revinclude.iter().map(|s| (s, true)))
            .collect();
        for round in 0..=MAX_INCLUDE_DEPTH {
            if frontier.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for &(spec, reverse) in &specs {
                if round > 0 && !spec.iterate {
                    continue;
                }
                // _include follows references held by the source type; _revinclude finds
                // sources pointing at any resource (of the target type, if given).
                let seqs: Vec<i64> = frontier
                    .iter()
                    .filter(|(_, t)| {
                        if reverse {
                            spec.target_type.is_none_or(|wanted| wanted == *t)
                        } else {
                            *t == spec.source_type
                        }
                    })
                    .map(|(seq, _)| *seq)
                    .collect();
                for chunk in seqs.chunks(INCLUDE_CHUNK) {
                    let stmt = if reverse {
                        search::revinclude(spec, chunk, query.restriction.as_ref())
                    } else {
                        search::include(spec, chunk, query.restriction.as_ref())
                    };
                    let rows: Vec<HistoryRow> = Self::bind_as(stmt)?
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(db_error)?;
                    for (seq, t, id, version, at, body) in rows {
                        let resource = sql::stored((t, id, version, at, body))?;
                        if seen.insert((resource.resource_type, resource.id.clone())) {
                            next.push((seq, resource.resource_type));
                            included.push(resource);
                        }
                    }
                }
            }
            frontier = next;
        }
        Ok(included)
    }

    /// First versions of resources that do not exist yet, in a few multi-row statements
    /// (see [`paraply_store::StoreTx::write_new`]).
    async fn write_new(
        conn: &mut DB::Connection,
        versions: Vec<NewVersion>,
    ) -> Result<(), StoreError> {
        if let Some(wrong) = versions
            .iter()
            .find(|v| v.version_id != VersionId::FIRST || v.body.is_none())
        {
            return Err(StoreError::Database(format!(
                "write_new takes first versions with a body, not {}/{} version {}",
                wrong.resource_type, wrong.id, wrong.version_id
            )));
        }
        let refs: Vec<&NewVersion> = versions.iter().collect();
        let mut rids: HashMap<(String, String), i64> = HashMap::with_capacity(versions.len());
        for insert in sql::insert_first_versions(&refs) {
            let rows: Vec<InsertedRow> = Self::bind_as(insert)?
                .fetch_all(&mut *conn)
                .await
                .map_err(db_error)?;
            rids.extend(rows.into_iter().map(|(seq, t, id)| ((t, id), seq)));
        }
        let mut index = Vec::with_capacity(versions.len());
        for version in &versions {
            let key = (
                version.resource_type.as_str().to_owned(),
                version.id.as_str().to_owned(),
            );
            let Some(rid) = rids.get(&key) else {
                return Err(StoreError::VersionConflict {
                    resource_type: version.resource_type,
                    id: version.id.clone(),
                });
            };
            index.push((*rid, version.resource_type, version.index.as_slice()));
        }
        for insert in sql::insert_index(&index) {
            Self::bind(insert)?
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    async fn write(conn: &mut DB::Connection, version: NewVersion) -> Result<(), StoreError> {
        let NewVersion {
            resource_type,
            ref id,
            version_id,
            ..
        } = version;
        let conflict = || StoreError::VersionConflict {
            resource_type,
            id: id.clone(),
        };
        let number = sql::version_to_db(resource_type, id, version_id)?;
        let retired = if number > 1 {
            let retired: Option<(i64,)> = sqlx::query_as(sql::RETIRE_CURRENT)
                .bind(resource_type.as_str())
                .bind(id.as_str())
                .bind(number - 1)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_error)?;
            match retired {
                Some((seq,)) => Some(seq),
                None => return Err(conflict()),
            }
        } else {
            None
        };
        let inserted: Option<(i64,)> = sqlx::query_as(sql::INSERT_VERSION)
            .bind(resource_type.as_str())
            .bind(id.as_str())
            .bind(number)
            .bind(sql::to_micros(version.last_updated))
            .bind(version.body.as_deref())
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| write_error(e, resource_type, id))?;
        let Some((rid,)) = inserted else {
            return Err(conflict());
        };
        // A successful version 1 proves the id had no version at all, hence no index rows.
        if let Some(old) = retired {
            for statement in sql::DELETE_INDEX {
                sqlx::query(statement)
                    .bind(old)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_error)?;
            }
        }
        // A deletion has no index rows: rows exist only for current, non-deleted versions,
        // which lets searches skip re-checking the versions their rows point at.
        if version.body.is_some() {
            for insert in sql::insert_index(&[(rid, resource_type, &version.index)]) {
                Self::bind(insert)?
                    .execute(&mut *conn)
                    .await
                    .map_err(db_error)?;
            }
        }
        Ok(())
    }

    /// Runs a fixed statement whose `$1` and `$2` are a resource's type and id.
    async fn execute_for(
        conn: &mut DB::Connection,
        statement: &'static str,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<(), StoreError> {
        sqlx::query(statement)
            .bind(resource_type.as_str())
            .bind(id.as_str())
            .execute(conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// A run-time built statement with its values bound. `AssertSqlSafe` holds because
    /// [`Statement`] text contains only placeholders, never values.
    fn bind(stmt: Statement) -> Result<Query<'static, DB, DB::Arguments>, StoreError> {
        let sql = Self::text(&stmt);
        let arguments = Self::arguments(stmt.binds)?;
        Ok(sqlx::query_with(AssertSqlSafe(sql), arguments))
    }

    fn text(stmt: &Statement) -> String {
        if DB::POSITIONAL_PLACEHOLDERS {
            sql::positional(&stmt.sql, stmt.binds.len())
        } else {
            stmt.sql.clone()
        }
    }

    /// [`Self::bind`] for statements returning rows.
    fn bind_as<O>(stmt: Statement) -> Result<QueryAs<'static, DB, O, DB::Arguments>, StoreError>
    where
        O: for<'r> FromRow<'r, DB::Row>,
    {
        let sql = Self::text(&stmt);
        let arguments = Self::arguments(stmt.binds)?;
        Ok(sqlx::query_as_with(AssertSqlSafe(sql), arguments))
    }

    fn arguments(binds: Vec<Bind>) -> Result<DB::Arguments, StoreError> {
        let mut arguments = DB::Arguments::default();
        for value in binds {
            match value {
                Bind::Text(text) => arguments.add(text),
                Bind::NullableText(text) => arguments.add(text),
                Bind::Int(int) => arguments.add(int),
                Bind::Real(real) => arguments.add(real),
            }
            .map_err(|e| db_error(sqlx::Error::Encode(e)))?;
        }
        Ok(arguments)
    }
}

/// A write transaction on one pooled connection; the backend decides how it begins.
pub(crate) struct SqlTx<DB: Database> {
    tx: Transaction<'static, DB>,
}

impl<DB: Database> SqlTx<DB> {
    pub(crate) fn new(tx: Transaction<'static, DB>) -> Self {
        SqlTx { tx }
    }
}

#[async_trait]
impl<DB> StoreTx for SqlTx<DB>
where
    DB: Backend,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> String: Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> VersionRow: FromRow<'r, DB::Row>,
    for<'r> HistoryRow: FromRow<'r, DB::Row>,
    for<'r> InsertedRow: FromRow<'r, DB::Row>,
{
    async fn read(
        &mut self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<StoredResource>, StoreError> {
        if let Some(lock) = DB::LOCK_RESOURCE {
            Sql::<DB>::execute_for(&mut self.tx, lock, resource_type, id).await?;
        }
        Sql::<DB>::read_current(&mut self.tx, resource_type, id).await
    }

    async fn search(&mut self, query: &SearchQuery) -> Result<SearchPage, StoreError> {
        Sql::<DB>::search_on(&mut self.tx, query).await
    }

    async fn visible(
        &mut self,
        resource_type: ResourceType,
        id: &ResourceId,
        restriction: &Restriction,
    ) -> Result<bool, StoreError> {
        Sql::<DB>::visible_on(&mut self.tx, resource_type, id, restriction).await
    }

    async fn write(&mut self, version: NewVersion) -> Result<(), StoreError> {
        Sql::<DB>::write(&mut self.tx, version).await
    }

    async fn write_new(&mut self, versions: Vec<NewVersion>) -> Result<(), StoreError> {
        Sql::<DB>::write_new(&mut self.tx, versions).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(db_error)
    }
}

/// A page row: the match with its `seq` and one sort value per key.
fn decode_match<DB>(row: &DB::Row, sort: &[SortType]) -> Result<SearchMatch, StoreError>
where
    DB: Database,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let get_err = |e| db_error(e);
    let seq: i64 = row.try_get(0).map_err(get_err)?;
    let resource = sql::stored((
        row.try_get(1).map_err(get_err)?,
        row.try_get(2).map_err(get_err)?,
        row.try_get(3).map_err(get_err)?,
        row.try_get(4).map_err(get_err)?,
        row.try_get(5).map_err(get_err)?,
    ))?;
    let mut sort_values = Vec::with_capacity(sort.len());
    for (i, kind) in sort.iter().enumerate() {
        let value = match kind {
            SortType::Int => row
                .try_get::<Option<i64>, _>(6 + i)
                .map_err(get_err)?
                .map_or(SortValue::Null, SortValue::Int),
            SortType::Text => row
                .try_get::<Option<String>, _>(6 + i)
                .map_err(get_err)?
                .map_or(SortValue::Null, SortValue::Text),
        };
        sort_values.push(value);
    }
    Ok(SearchMatch {
        resource,
        sort_values,
        seq,
    })
}
