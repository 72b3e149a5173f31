//! The reads, searches and writes both backends run: every statement is the same text on
//! SQLite and PostgreSQL (see [`crate::sql`]), so only the sqlx database type differs.

// Why generic code rather than a macro that stamps out a copy per backend: the compiler
// checks this code once, errors and the debugger point at real lines, and a third backend
// needs only a `Backend` impl. The price is the list of sqlx bounds below, spelled out on
// both impl blocks because Rust does not carry an impl's where clause over to its callers;
// every bound is one a `$N` placeholder or a decoded column of `sql` needs.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::{MAX_INCLUDE_DEPTH, Restriction, SearchQuery, SortValue, Total};
use paraply_store::{
    AccessLogEntry, Fact, HistoryPage, HistoryQuery, NewVersion, SearchMatch, SearchPage,
    StoreError, StoreTx, StoredResource,
};
use sqlx::query::{Query, QueryAs};
use sqlx::{
    Arguments, AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, FromRow,
    IntoArguments, Pool, Row, Transaction, Type,
};
use time::OffsetDateTime;

use crate::error::db_error;
use crate::group::{GroupTx, GroupWriter};
use crate::search::{self, SortType};
use crate::sql::{
    self, Bind, HistoryRow, InsertedRow, JsonRows, ResourceKey, Statement, VersionRow,
};
use crate::sqlite::SizeLimit;

/// What a write transaction does differently on each database.
pub(crate) trait Backend: Database {
    /// Whether a write transaction locks resources ([`sql::lock_resources`]) before reading
    /// them: a database with several writers needs it, one with a single writer does not.
    const LOCKS_RESOURCES: bool;
    /// Whether `$1, $2, …` placeholders that appear in bind order are better sent as plain
    /// `?` (see [`sql::positional`]).
    const POSITIONAL_PLACEHOLDERS: bool;
    /// How the database reads rows bound as one JSON array.
    const JSON_ROWS: JsonRows;
    /// The statement that starts a write transaction.
    const BEGIN_WRITE: &'static str;
    /// The statement that makes a transaction wait for others serialized on the same key
    /// (bound as `$1`) until they end; `None` where the transaction already holds the
    /// database's only writer once it has begun.
    const SERIALIZE_ON: Option<&'static str>;
    /// How many hash chains the access log spreads its appends over (see
    /// [`crate::access_log`]): one where there is one writer.
    const ACCESS_LOG_CHAINS: i64;
    /// The statement that takes the lock of the access-log chain bound as `$1` until the
    /// transaction ends; `None` where the transaction holds the only writer.
    const LOCK_CHAIN: Option<&'static str>;
    /// What a claim of outbox rows appends to its row-locking subquery so that nodes
    /// claiming at once skip each other's rows instead of waiting (empty where there is one
    /// writer).
    const SKIP_LOCKED: &'static str;

    /// Runs `statement`, which takes no arguments, on `connection`: the group-commit
    /// protocol ([`crate::group`]) needs it where the generic sqlx bounds cannot be spelled
    /// (a `Drop`).
    fn execute<'c>(
        connection: &'c mut Self::Connection,
        statement: &'static str,
    ) -> Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;
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

    /// The current versions of `keys` (after locking them, where the database needs it), in
    /// the order asked.
    async fn read_many(
        conn: &mut DB::Connection,
        keys: &[ResourceKey],
    ) -> Result<Vec<Option<StoredResource>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if DB::LOCKS_RESOURCES {
            Self::bind(sql::lock_resources(DB::JSON_ROWS, keys))?
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
        }
        let rows: Vec<VersionRow> = Self::bind_as(sql::read_current(DB::JSON_ROWS, keys))?
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        let mut found: HashMap<ResourceKey, StoredResource> = HashMap::with_capacity(rows.len());
        for row in rows {
            let stored = sql::stored(row)?;
            found.insert((stored.resource_type, stored.id.clone()), stored);
        }
        Ok(keys.iter().map(|key| found.remove(key)).collect())
    }

    /// A [`SqlTx`]'s begun transaction (beginning it if it was deferred) with every pending
    /// write sent. After a failure the transaction can only be dropped, which rolls it back.
    async fn flushed<'c>(
        connection: &'c mut TxConnection<DB>,
        pending: &mut Vec<NewVersion>,
    ) -> Result<&'c mut DB::Connection, StoreError> {
        if let TxConnection::Deferred { writer, .. } = connection {
            *connection = TxConnection::Grouped(writer.join().await?);
        }
        let tx: &mut DB::Connection = match connection {
            TxConnection::Begun(tx) => tx,
            TxConnection::Grouped(member) => member.connection()?,
            TxConnection::Deferred { .. } => {
                return Err(StoreError::Database(
                    "the write transaction did not begin".into(),
                ));
            }
        };
        if !pending.is_empty() {
            let versions = std::mem::take(pending);
            Self::write_versions(tx, &versions).await?;
        }
        Ok(tx)
    }

    /// Writes `versions` (at most one per resource) in a few multi-row statements whatever
    /// their number: retire the versions they replace, drop those versions' index rows,
    /// insert the new versions and their index rows. [`StoreError::VersionConflict`] names a
    /// resource whose current version is not the one before the version written.
    async fn write_versions(
        conn: &mut DB::Connection,
        versions: &[NewVersion],
    ) -> Result<(), StoreError> {
        let mut numbered = Vec::with_capacity(versions.len());
        for version in versions {
            let number =
                sql::version_to_db(version.resource_type, &version.id, version.version_id)?;
            numbered.push((version, number));
        }
        let successors: Vec<(&NewVersion, i64)> =
            numbered.iter().copied().filter(|(_, n)| *n > 1).collect();
        if !successors.is_empty() {
            let retired =
                Self::returning(conn, sql::retire_current(DB::JSON_ROWS, &successors)).await?;
            if let Some(conflict) = first_missing(&retired, successors.iter().map(|(v, _)| *v)) {
                return Err(conflict);
            }
            let rids: Vec<i64> = retired.into_values().collect();
            for delete in sql::delete_index(DB::JSON_ROWS, &rids) {
                Self::bind(delete)?
                    .execute(&mut *conn)
                    .await
                    .map_err(db_error)?;
            }
        }

        let mut inserted = HashMap::with_capacity(versions.len());
        for insert in sql::insert_versions(&numbered) {
            inserted.extend(Self::returning(conn, insert).await?);
        }
        if let Some(conflict) = first_missing(&inserted, versions.iter()) {
            return Err(conflict);
        }
        // The subscription outbox: queued in this transaction, so what commits is notified
        // even if the node dies right after the commit (see `crate::outbox`).
        let queued: Vec<[i64; 1]> = inserted.values().map(|rid| [*rid]).collect();
        Self::bind(DB::JSON_ROWS.statement(&queued, |rids| {
            format!(
                "INSERT INTO subscription_change (version_seq) \
                 SELECT CAST(value ->> 0 AS BIGINT) FROM {rids}"
            )
        }))?
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
        // A deletion has no index rows: rows exist only for current, non-deleted versions,
        // which lets searches skip re-checking the versions their rows point at.
        let mut index = Vec::with_capacity(versions.len());
        for version in versions.iter().filter(|v| v.body.is_some()) {
            let key = (
                version.resource_type.as_str().to_owned(),
                version.id.as_str().to_owned(),
            );
            if let Some(rid) = inserted.get(&key) {
                index.push((*rid, version.resource_type, version.index.as_slice()));
            }
        }
        for insert in sql::insert_index(DB::JSON_ROWS, &index) {
            Self::bind(insert)?
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    /// Runs a statement that returns [`InsertedRow`]s: `seq` by resource type and id.
    async fn returning(
        conn: &mut DB::Connection,
        statement: Statement,
    ) -> Result<HashMap<(String, String), i64>, StoreError> {
        let rows: Vec<InsertedRow> = Self::bind_as(statement)?
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|(seq, t, id)| ((t, id), seq))
            .collect())
    }

    /// A run-time built statement with its values bound. `AssertSqlSafe` holds because
    /// [`Statement`] text contains only placeholders, never values.
    pub(crate) fn bind(stmt: Statement) -> Result<Query<'static, DB, DB::Arguments>, StoreError> {
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
    pub(crate) fn bind_as<O>(
        stmt: Statement,
    ) -> Result<QueryAs<'static, DB, O, DB::Arguments>, StoreError>
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

/// The conflict of the first of `versions` that a statement returning [`InsertedRow`]s did
/// not touch.
fn first_missing<'a>(
    touched: &HashMap<(String, String), i64>,
    mut versions: impl Iterator<Item = &'a NewVersion>,
) -> Option<StoreError> {
    versions
        .find(|v| {
            !touched.contains_key(&(
                v.resource_type.as_str().to_owned(),
                v.id.as_str().to_owned(),
            ))
        })
        .map(|v| StoreError::VersionConflict {
            resource_type: v.resource_type,
            id: v.id.clone(),
        })
}

/// A write transaction on one pooled connection; the backend decides how it begins.
///
/// Writes are kept back and sent together, in a few multi-row statements, when the
/// transaction next asks the database something their rows could change — a search, a
/// visibility check — or commits: a transaction Bundle of thirty resources costs a handful
/// of statements instead of two hundred, and a database has one writer at a time (SQLite)
/// or one per resource (PostgreSQL), so statements inside a write transaction are what
/// bounds the write rate. Reads of single resources need no such flush: the transaction
/// remembers the current version of everything it has read or written.
///
/// Begun by [`paraply_store::Store::begin_optimistic`] on a database with a single writer
/// (SQLite), the transaction also begins late: until it searches, checks visibility or
/// commits its writes, it reads single resources through a reader and holds no writer, so
/// the work between its reads and its writes (stamping, index rows, serializing) runs while
/// another transaction writes. What it read is then checked when it writes: the
/// compare-and-swap of every version written refuses one whose predecessor is no longer
/// current, and the engine retries. Searches always run inside the begun transaction: a
/// conditional create must not race another.
pub(crate) struct SqlTx<DB: Backend> {
    connection: TxConnection<DB>,
    /// Versions written and not yet sent, at most one per resource, in write order.
    pending: Vec<NewVersion>,
    /// Access-log entries to append at commit.
    log: Vec<AccessLogEntry>,
    /// Facts to record at commit, the last one per kind and subject.
    facts: HashMap<(&'static str, String), Fact>,
    /// The current version (or its absence) of every resource this transaction has read or
    /// written; the database holds the same, apart from what is still pending and what
    /// others committed since (which the compare-and-swap catches).
    known: HashMap<ResourceKey, Option<StoredResource>>,
    /// SQLite's configured size: checked before each resource write, never for the access
    /// log (so audited reads go on when writes are refused).
    size_limit: Option<Arc<SizeLimit>>,
}

/// Where a [`SqlTx`] stands with the database.
enum TxConnection<DB: Backend> {
    /// Not begun: reads by id go to `readers`; the transaction joins `writer`'s group when
    /// it first needs the writer.
    Deferred {
        writer: GroupWriter<DB>,
        readers: Pool<DB>,
    },
    /// A transaction of its own (a database with several writers).
    Begun(Transaction<'static, DB>),
    /// A member of the single writer's group commit ([`crate::group`]).
    Grouped(GroupTx<DB>),
}

impl<DB: Backend> SqlTx<DB> {
    /// A transaction already begun (a database with several writers, which lock resources
    /// inside it before reading them).
    pub(crate) fn begun(tx: Transaction<'static, DB>) -> Self {
        SqlTx {
            connection: TxConnection::Begun(tx),
            pending: Vec::new(),
            log: Vec::new(),
            facts: HashMap::new(),
            known: HashMap::new(),
            size_limit: None,
        }
    }

    /// A member of a single writer's group commit, already holding the writer.
    pub(crate) fn grouped(member: GroupTx<DB>) -> Self {
        SqlTx {
            connection: TxConnection::Grouped(member),
            pending: Vec::new(),
            log: Vec::new(),
            facts: HashMap::new(),
            known: HashMap::new(),
            size_limit: None,
        }
    }

    /// Refuses resource writes once the database reaches `limit` (SQLite).
    pub(crate) fn with_size_limit(mut self, limit: Option<Arc<SizeLimit>>) -> Self {
        self.size_limit = limit;
        self
    }

    /// A transaction that joins `writer`'s group when it first needs to (see [`SqlTx`]).
    pub(crate) fn deferred(writer: GroupWriter<DB>, readers: Pool<DB>) -> Self {
        SqlTx {
            connection: TxConnection::Deferred { writer, readers },
            pending: Vec::new(),
            log: Vec::new(),
            facts: HashMap::new(),
            known: HashMap::new(),
            size_limit: None,
        }
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
        let key = (resource_type, id.clone());
        if let Some(known) = self.known.get(&key) {
            return Ok(known.clone());
        }
        let mut found = self.read_many(&[key]).await?;
        Ok(found.pop().flatten())
    }

    async fn read_many(
        &mut self,
        keys: &[(ResourceType, ResourceId)],
    ) -> Result<Vec<Option<StoredResource>>, StoreError> {
        let unknown: Vec<ResourceKey> = keys
            .iter()
            .filter(|key| !self.known.contains_key(*key))
            .cloned()
            .collect();
        let found = match &mut self.connection {
            TxConnection::Deferred { readers, .. } => {
                let mut reader = readers.acquire().await.map_err(db_error)?;
                Sql::<DB>::read_many(&mut reader, &unknown).await?
            }
            TxConnection::Begun(tx) => Sql::<DB>::read_many(tx, &unknown).await?,
            TxConnection::Grouped(member) => {
                Sql::<DB>::read_many(member.connection()?, &unknown).await?
            }
        };
        self.known.extend(unknown.into_iter().zip(found));
        Ok(keys
            .iter()
            .map(|key| self.known.get(key).cloned().flatten())
            .collect())
    }

    async fn search(&mut self, query: &SearchQuery) -> Result<SearchPage, StoreError> {
        let tx = Sql::<DB>::flushed(&mut self.connection, &mut self.pending).await?;
        Sql::<DB>::search_on(tx, query).await
    }

    async fn serialize_on(&mut self, key: &str) -> Result<(), StoreError> {
        // Beginning is enough where the transaction then holds the only writer (SQLite);
        // elsewhere it waits for the key's lock, held until commit or rollback.
        let tx = Sql::<DB>::flushed(&mut self.connection, &mut self.pending).await?;
        if let Some(statement) = DB::SERIALIZE_ON {
            sqlx::query(AssertSqlSafe(statement))
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    async fn visible(
        &mut self,
        resource_type: ResourceType,
        id: &ResourceId,
        restriction: &Restriction,
    ) -> Result<bool, StoreError> {
        let tx = Sql::<DB>::flushed(&mut self.connection, &mut self.pending).await?;
        Sql::<DB>::visible_on(tx, resource_type, id, restriction).await
    }

    async fn write(&mut self, version: NewVersion) -> Result<(), StoreError> {
        if let Some(limit) = &self.size_limit {
            limit.check()?;
        }
        let key = (version.resource_type, version.id.clone());
        // One statement cannot retire a version and write its successor, so a second write
        // of the same resource sends the first.
        if self
            .pending
            .iter()
            .any(|p| p.resource_type == key.0 && p.id == key.1)
        {
            Sql::<DB>::flushed(&mut self.connection, &mut self.pending).await?;
        }
        let stored = StoredResource {
            resource_type: version.resource_type,
            id: version.id.clone(),
            version_id: version.version_id,
            last_updated: version.last_updated,
            body: version.body.clone(),
        };
        self.known.insert(key, Some(stored));
        self.pending.push(version);
        Ok(())
    }

    async fn append_access_log(&mut self, entries: Vec<AccessLogEntry>) -> Result<(), StoreError> {
        self.log.extend(entries);
        Ok(())
    }

    async fn record_fact(&mut self, fact: Fact) -> Result<(), StoreError> {
        // Facts are read back a page of lines at a time.
        if fact.body.contains('\n') {
            return Err(StoreError::Corrupt(format!(
                "the {} fact of {} is not one line",
                fact.kind, fact.subject
            )));
        }
        self.facts.insert((fact.kind, fact.subject.clone()), fact);
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        // A transaction that never began and wrote nothing has nothing to commit.
        if self.pending.is_empty()
            && self.log.is_empty()
            && self.facts.is_empty()
            && matches!(self.connection, TxConnection::Deferred { .. })
        {
            return Ok(());
        }
        let tx = Sql::<DB>::flushed(&mut self.connection, &mut self.pending).await?;
        Sql::<DB>::append_access_log(tx, &self.log).await?;
        let facts: Vec<Fact> = self.facts.into_values().collect();
        Sql::<DB>::record_facts(tx, &facts).await?;
        match self.connection {
            TxConnection::Begun(tx) => tx.commit().await.map_err(db_error),
            TxConnection::Grouped(member) => member.commit().await,
            TxConnection::Deferred { .. } => Ok(()),
        }
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
