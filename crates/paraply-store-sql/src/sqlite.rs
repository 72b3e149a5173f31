//! The SQLite backend: one database file in WAL mode, one writer connection, many readers.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::{Restriction, SearchQuery};
use paraply_store::{
    HistoryPage, HistoryQuery, PoolStatus, SearchPage, Store, StoreError, StoreTx, StoredResource,
};
use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::common::{Backend, Sql, SqlTx};
use crate::error::db_error;

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
    pub(crate) writer: SqlitePool,
    pub(crate) readers: SqlitePool,
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
            // Searches sort and materialise small intermediate results; in temporary files
            // (SQLite's default) that costs syscalls per query, in memory nothing.
            .pragma("temp_store", "memory")
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
        Ok(Box::new(SqlTx::new(tx)))
    }

    async fn read(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<StoredResource>, StoreError> {
        Sql::read(&self.readers, resource_type, id).await
    }

    async fn vread(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        version_id: VersionId,
    ) -> Result<Option<StoredResource>, StoreError> {
        Sql::vread(&self.readers, resource_type, id, version_id).await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, StoreError> {
        Sql::history(&self.readers, query).await
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, StoreError> {
        Sql::search(&self.readers, query).await
    }

    async fn visible(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        restriction: &Restriction,
    ) -> Result<bool, StoreError> {
        Sql::visible(&self.readers, resource_type, id, restriction).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Sql::ping(&self.readers).await
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

/// SQLite needs no lock before reading: a write transaction holds the only writer connection.
impl Backend for Sqlite {
    const POSITIONAL_PLACEHOLDERS: bool = true;
    const LOCK_RESOURCE: Option<&'static str> = None;
}
