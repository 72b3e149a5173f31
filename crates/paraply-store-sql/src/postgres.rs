//! The PostgreSQL backend: one pool per process; several processes may share the database.
//!
//! Correctness never relies on this process being alone: version conflicts are decided by
//! the row lock of the compare-and-swap `UPDATE` and the unique indexes, and migrations run
//! under sqlx's advisory lock, so nodes starting together apply each migration once.

use std::time::Duration;

use async_trait::async_trait;
use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::SearchQuery;
use paraply_store::{
    HistoryPage, HistoryQuery, NewVersion, PoolStatus, SearchPage, Store, StoreError, StoreTx,
    StoredResource,
};
use sqlx::postgres::{PgArguments, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::query::{Query, QueryAs};
use sqlx::{AssertSqlSafe, FromRow, Postgres, Transaction};

use crate::error::{db_error, write_error};
use crate::sql::{self, Bind, HistoryRow, Statement, VersionRow};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Settings of a [`PostgresStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Most connections this process opens.
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing.
    pub acquire_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// A [`Store`] on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://` or `postgresql://`) and applies pending migrations.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await
            .map_err(db_error)?;
        MIGRATOR.run(&pool).await.map_err(|e| db_error(e.into()))?;
        Ok(PostgresStore { pool })
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        // READ COMMITTED is enough: the compare-and-swap UPDATE re-checks its row after
        // waiting for a concurrent writer, and the unique indexes are the backstop.
        let tx = self.pool.begin().await.map_err(db_error)?;
        Ok(Box::new(PostgresTx { tx }))
    }

    async fn read(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<StoredResource>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        read_current(&mut conn, resource_type, id).await
    }

    async fn vread(
        &self,
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
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .map(sql::stored)
            .transpose()
    }

    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, StoreError> {
        let (page, total) = sql::history(query);
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let rows: Vec<HistoryRow> = bind_as(page)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        let (total,): (i64,) = bind_as(total)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error)?;
        sql::history_page(rows, query.count, total)
    }

    async fn search(&self, query: &SearchQuery, limit: u32) -> Result<SearchPage, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        search(&mut conn, query, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(sql::PING)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    fn pool_status(&self) -> Vec<PoolStatus> {
        vec![PoolStatus {
            name: "postgres",
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
        }]
    }
}

/// A read-write transaction on one pooled connection.
struct PostgresTx {
    tx: Transaction<'static, Postgres>,
}

#[async_trait]
impl StoreTx for PostgresTx {
    async fn read(
        &mut self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<StoredResource>, StoreError> {
        sqlx::query(sql::LOCK_RESOURCE)
            .bind(resource_type.as_str())
            .bind(id.as_str())
            .execute(&mut *self.tx)
            .await
            .map_err(db_error)?;
        read_current(&mut self.tx, resource_type, id).await
    }

    async fn search(&mut self, query: &SearchQuery, limit: u32) -> Result<SearchPage, StoreError> {
        search(&mut self.tx, query, limit).await
    }

    async fn write(&mut self, version: NewVersion) -> Result<(), StoreError> {
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
                .execute(&mut *self.tx)
                .await
                .map_err(db_error)?
                .rows_affected();
            if retired != 1 {
                return Err(conflict());
            }
        }
        let inserted = sqlx::query(sql::INSERT_VERSION)
            .bind(resource_type.as_str())
            .bind(id.as_str())
            .bind(number)
            .bind(sql::to_micros(version.last_updated))
            .bind(version.body.as_deref())
            .execute(&mut *self.tx)
            .await
            .map_err(|e| write_error(e, resource_type, id))?
            .rows_affected();
        if inserted != 1 {
            return Err(conflict());
        }
        // A successful version 1 proves the id had no version at all, hence no index rows.
        if number > 1 {
            sqlx::query(sql::DELETE_INDEX)
                .bind(resource_type.as_str())
                .bind(id.as_str())
                .execute(&mut *self.tx)
                .await
                .map_err(db_error)?;
        }
        if let Some(insert) = sql::insert_index(&version) {
            bind(insert)
                .execute(&mut *self.tx)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(db_error)
    }
}

async fn read_current(
    conn: &mut PgConnection,
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

async fn search(
    conn: &mut PgConnection,
    query: &SearchQuery,
    limit: u32,
) -> Result<SearchPage, StoreError> {
    let (page, total) = sql::search(query, limit);
    let rows: Vec<VersionRow> = bind_as(page)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
    let (total,): (i64,) = bind_as(total)
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

/// A run-time built statement with its values bound. `AssertSqlSafe` holds because
/// [`Statement`] text contains only placeholders, never values.
fn bind(stmt: Statement) -> Query<'static, Postgres, PgArguments> {
    let query = sqlx::query(AssertSqlSafe(stmt.sql));
    stmt.binds
        .into_iter()
        .fold(query, |query, value| match value {
            Bind::Text(text) => query.bind(text),
            Bind::NullableText(text) => query.bind(text),
            Bind::Int(int) => query.bind(int),
        })
}

/// [`bind`] for statements returning rows.
fn bind_as<O>(stmt: Statement) -> QueryAs<'static, Postgres, O, PgArguments>
where
    O: for<'r> FromRow<'r, PgRow>,
{
    let query = sqlx::query_as(AssertSqlSafe(stmt.sql));
    stmt.binds
        .into_iter()
        .fold(query, |query, value| match value {
            Bind::Text(text) => query.bind(text),
            Bind::NullableText(text) => query.bind(text),
            Bind::Int(int) => query.bind(int),
        })
}
