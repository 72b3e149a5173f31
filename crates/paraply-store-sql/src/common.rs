//! The reads, searches and writes both backends run: every statement is the same text on
//! SQLite and PostgreSQL (see [`crate::sql`]), so only the sqlx database type differs.

// Why generic code rather than a macro that stamps out a copy per backend: the compiler
// checks this code once, errors and the debugger point at real lines, and a third backend
// needs only a `Backend` impl. The price is the list of sqlx bounds below, spelled out on
// both impl blocks because Rust does not carry an impl's where clause over to its callers;
// every bound is one a `$N` placeholder or a decoded column of `sql` needs.

use std::marker::PhantomData;

use async_trait::async_trait;
use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::SearchQuery;
use paraply_store::{
    HistoryPage, HistoryQuery, NewVersion, SearchPage, StoreError, StoreTx, StoredResource,
};
use sqlx::query::{Query, QueryAs};
use sqlx::{
    Arguments, AssertSqlSafe, Database, Encode, Executor, FromRow, IntoArguments, Pool,
    Transaction, Type,
};

use crate::error::{db_error, write_error};
use crate::sql::{self, Bind, HistoryRow, Statement, VersionRow};

/// What a write transaction does differently on each database.
pub(crate) trait Backend: Database {
    /// Run, bound to the resource type and id, before a write transaction reads a resource
    /// (`None`: the database needs no lock there).
    const LOCK_RESOURCE: Option<&'static str>;

    /// Rows an `INSERT`, `UPDATE` or `DELETE` touched (sqlx has no trait method for it).
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

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
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> VersionRow: FromRow<'r, DB::Row>,
    for<'r> HistoryRow: FromRow<'r, DB::Row>,
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
        limit: u32,
    ) -> Result<SearchPage, StoreError> {
        let mut conn = pool.acquire().await.map_err(db_error)?;
        Self::search_on(&mut conn, query, limit).await
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

    async fn search_on(
        conn: &mut DB::Connection,
        query: &SearchQuery,
        limit: u32,
    ) -> Result<SearchPage, StoreError> {
        let (page, total) = sql::search(query, limit);
        let rows: Vec<VersionRow> = Self::bind_as(page)?
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        let (total,): (i64,) = Self::bind_as(total)?
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error)?;
        Ok(SearchPage {
            matches: rows
                .into_iter()
                .map(sql::stored)
                .collect::<Result<_, _>>()?,
            total: sql::count_from(total)?,
        })
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
        if number > 1 {
            let retired = sqlx::query(sql::RETIRE_CURRENT)
                .bind(resource_type.as_str())
                .bind(id.as_str())
                .bind(number - 1)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            if DB::rows_affected(&retired) != 1 {
                return Err(conflict());
            }
        }
        let inserted = sqlx::query(sql::INSERT_VERSION)
            .bind(resource_type.as_str())
            .bind(id.as_str())
            .bind(number)
            .bind(sql::to_micros(version.last_updated))
            .bind(version.body.as_deref())
            .execute(&mut *conn)
            .await
            .map_err(|e| write_error(e, resource_type, id))?;
        if DB::rows_affected(&inserted) != 1 {
            return Err(conflict());
        }
        // A successful version 1 proves the id had no version at all, hence no index rows.
        if number > 1 {
            Self::execute_for(conn, sql::DELETE_INDEX, resource_type, id).await?;
        }
        if let Some(insert) = sql::insert_index(&version) {
            Self::bind(insert)?
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
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
        let arguments = Self::arguments(stmt.binds)?;
        Ok(sqlx::query_with(AssertSqlSafe(stmt.sql), arguments))
    }

    /// [`Self::bind`] for statements returning rows.
    fn bind_as<O>(stmt: Statement) -> Result<QueryAs<'static, DB, O, DB::Arguments>, StoreError>
    where
        O: for<'r> FromRow<'r, DB::Row>,
    {
        let arguments = Self::arguments(stmt.binds)?;
        Ok(sqlx::query_as_with(AssertSqlSafe(stmt.sql), arguments))
    }

    fn arguments(binds: Vec<Bind>) -> Result<DB::Arguments, StoreError> {
        let mut arguments = DB::Arguments::default();
        for value in binds {
            match value {
                Bind::Text(text) => arguments.add(text),
                Bind::NullableText(text) => arguments.add(text),
                Bind::Int(int) => arguments.add(int),
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
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> VersionRow: FromRow<'r, DB::Row>,
    for<'r> HistoryRow: FromRow<'r, DB::Row>,
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

    async fn search(&mut self, query: &SearchQuery, limit: u32) -> Result<SearchPage, StoreError> {
        Sql::<DB>::search_on(&mut self.tx, query, limit).await
    }

    async fn write(&mut self, version: NewVersion) -> Result<(), StoreError> {
        Sql::<DB>::write(&mut self.tx, version).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(db_error)
    }
}
