//! The SQLite backend: one database file in WAL mode, one writer connection, many readers.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::SearchQuery;
use paraply_store::{
    HistoryPage, HistoryQuery, NewVersion, PoolStatus, SearchPage, Store, StoreError, StoreTx,
    StoredResource,
};
use sqlx::query::{Query, QueryAs};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, FromRow, Sqlite, SqliteConnection, Transaction};

use crate::error::{db_error, write_error};
use crate::sql::{self, Bind, HistoryRow, Statement, VersionRow};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Settings of a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Connections of the read pool (reads, history and search outside transactions).
    pub read_connections: u32,
    /// How long a statement waits for a lock held by another process before failing.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            read_connections: 8,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// A [`Store`] on one SQLite file.
///
/// SQLite allows one writer at a time, so write transactions share a pool of exactly one
/// connection and start with `BEGIN IMMEDIATE`: they queue in the pool instead of failing
/// with `SQLITE_BUSY` halfway through. WAL mode lets the separate read pool run alongside.
/// A task holding a [`StoreTx`] must not call [`Store::begin`] again before finishing it:
/// the second call waits for the only writer connection.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating the folder and file if needed) the database at `url_or_path`, either
    /// a `sqlite:` URL or a plain file path, and applies pending migrations.
    pub async fn open(url_or_path: &str, options: SqliteOptions) -> Result<Self, StoreError> {
        // Each pool of an in-memory database would see its own empty database.
        if url_or_path.contains(":memory:") || url_or_path.contains("mode=memory") {
            return Err(StoreError::Database(
                "in-memory SQLite is not supported; give a file path".into(),
            ));
        }
        let connect = if url_or_path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url_or_path).map_err(db_error)?
        } else {
            SqliteConnectOptions::new().filename(url_or_path)
        };
        let file = connect.get_filename();
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Blocking IO is fine here: this runs once, at startup.
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Database(format!("cannot create the database folder: {e}"))
            })?;
        }
        let connect = connect
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses at most the last commits on power loss, never
            // consistency, and avoids an fsync per commit.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true);

        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect.clone())
            .await
            .map_err(db_error)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| db_error(e.into()))?;
        let readers = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .connect_with(connect)
            .await
            .map_err(db_error)?;
        Ok(SqliteStore { writer, readers })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        // IMMEDIATE takes the write lock now, so a transaction never has to upgrade a read
        // lock later (which SQLite can refuse with SQLITE_BUSY without waiting).
        let tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        Ok(Box::new(SqliteTx { tx }))
    }

    async fn read(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<StoredResource>, StoreError> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
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
            .fetch_optional(&self.readers)
            .await
            .map_err(db_error)?
            .map(sql::stored)
            .transpose()
    }

    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, StoreError> {
        let (page, total) = sql::history(query);
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
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
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        search(&mut conn, query, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(sql::PING)
            .execute(&self.readers)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    fn pool_status(&self) -> Vec<PoolStatus> {
        [
            ("sqlite-writer", &self.writer),
            ("sqlite-readers", &self.readers),
        ]
        .into_iter()
        .map(|(name, pool)| PoolStatus {
            name,
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
        })
        .collect()
    }
}

/// A write transaction on the single writer connection.
struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
}

#[async_trait]
impl StoreTx for SqliteTx {
    async fn read(
        &mut self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<StoredResource>, StoreError> {
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
    conn: &mut SqliteConnection,
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
    conn: &mut SqliteConnection,
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
fn bind(stmt: Statement) -> Query<'static, Sqlite, SqliteArguments> {
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
fn bind_as<O>(stmt: Statement) -> QueryAs<'static, Sqlite, O, SqliteArguments>
where
    O: for<'r> FromRow<'r, SqliteRow>,
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
