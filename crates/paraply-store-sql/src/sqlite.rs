//! The SQLite backend: one database file in WAL mode, one writer connection, many readers.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::{Restriction, SearchQuery};
use paraply_store::{
    AccessLogEntry, AccessLogPage, AccessLogQuery, HistoryPage, HistoryQuery, IndexMaintenance,
    PoolStatus, Purge, SearchPage, Store, StoreError, StoreTx, StoredResource, Verification,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
};
use sqlx::{AssertSqlSafe, Connection, Sqlite};
use time::OffsetDateTime;

use crate::common::{Backend, Sql, SqlTx};
use crate::error::db_error;
use crate::group::GroupWriter;
use crate::maintenance::SqlMaintenance;
use crate::sql::JsonRows;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Settings of a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Connections of the read pool (reads, history and search outside transactions).
    pub read_connections: u32,
    /// How long a statement waits for a lock held by another process before failing.
    pub busy_timeout: Duration,
    /// When a commit reaches the disk: [`Synchronous::Full`] (the default) before it is
    /// acknowledged.
    pub synchronous: Synchronous,
    /// Resource writes are refused ([`StoreError::Full`]) once the database file and its
    /// write-ahead log together reach this size; the access log may still grow, so audited
    /// reads go on. `None`: only the disk limits it.
    pub max_size_bytes: Option<u64>,
}

/// SQLite's `PRAGMA synchronous` in WAL mode: whether a commit that has been acknowledged
/// survives power loss or an operating-system crash.
///
/// In WAL mode a commit appends to the WAL file. With `NORMAL` the WAL is synced only at
/// checkpoints, so the commits since the last checkpoint live in the OS page cache: a killed
/// process loses nothing, but power loss or a kernel crash can lose them although the client
/// was told `201 Created`. With `FULL` the WAL is synced at every commit, so an acknowledged
/// write is on disk. The cost is one fsync per commit, kept down by group commit: the access
/// log batches its events into one transaction, and the write path commits once per request
/// or Bundle transaction, not per resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Sync the WAL at every commit: acknowledged writes survive power loss.
    #[default]
    Full,
    /// Sync only at checkpoints: faster, and the last commits may be lost on power loss
    /// (never consistency: the database stays a state it was in after some commit).
    Normal,
}

impl Synchronous {
    fn pragma(self) -> sqlx::sqlite::SqliteSynchronous {
        match self {
            Synchronous::Full => sqlx::sqlite::SqliteSynchronous::Full,
            Synchronous::Normal => sqlx::sqlite::SqliteSynchronous::Normal,
        }
    }
}

impl FromStr for Synchronous {
    type Err = String;

    /// `full` or `normal` (SQLite's `off` and `extra` are not offered: the first can corrupt
    /// the database, the second buys nothing in WAL mode).
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "full" => Ok(Synchronous::Full),
            "normal" => Ok(Synchronous::Normal),
            other => Err(format!("'{other}' is not \"full\" or \"normal\"")),
        }
    }
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            read_connections: 8,
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::default(),
            max_size_bytes: None,
        }
    }
}

/// The size a database may reach before resource writes are refused (see
/// [`SqliteOptions::max_size_bytes`]).
#[derive(Debug)]
pub(crate) struct SizeLimit {
    file: std::path::PathBuf,
    max_bytes: u64,
}

impl SizeLimit {
    /// Room for another resource write: the file and its write-ahead log are below the limit.
    /// Two `stat`s, no SQL: cheap beside the write itself.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        let size = |path: &std::path::Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.file.clone().into_os_string();
        wal.push("-wal");
        let used = size(&self.file) + size(std::path::Path::new(&wal));
        if used >= self.max_bytes {
            return Err(StoreError::Full(format!(
                "the database has reached its configured size of {} bytes",
                self.max_bytes
            )));
        }
        Ok(())
    }
}

/// A [`Store`] on one SQLite file.
///
/// SQLite allows one writer at a time, so write transactions share a pool of exactly one
/// connection and start with `BEGIN IMMEDIATE`: they queue for it instead of failing with
/// `SQLITE_BUSY` halfway through, and those that queue together commit together
/// ([`crate::group`]). WAL mode lets the separate read pool run alongside.
/// A task holding a [`StoreTx`] must not call [`Store::begin`] again before finishing it:
/// the second call waits for the only writer connection.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The one writer connection, for what writes outside the FHIR write transactions
    /// (sessions, index maintenance): it waits while a group holds the connection.
    pub(crate) writer: SqlitePool,
    /// FHIR write transactions on `writer`, committed in groups (see [`crate::group`]).
    pub(crate) group: GroupWriter<Sqlite>,
    pub(crate) readers: SqlitePool,
    _checkpointer: Arc<Checkpointer>,
    size_limit: Option<Arc<SizeLimit>>,
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
        let size_limit = options.max_size_bytes.map(|max_bytes| {
            Arc::new(SizeLimit {
                file: file.to_path_buf(),
                max_bytes,
            })
        });
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Blocking IO is fine here: this runs once, at startup.
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Database(format!("cannot create the database folder: {e}"))
            })?;
        }
        let connect = connect
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Every connection, not only the writer: the setting also decides whether the
            // checkpointer syncs, and every commit (resources, sessions, the access log)
            // goes through the writer. See `Synchronous` for why FULL is the default.
            .synchronous(options.synchronous.pragma())
            .busy_timeout(options.busy_timeout)
            // Searches sort and materialise small intermediate results; in temporary files
            // (SQLite's default) that costs syscalls per query, in memory nothing.
            .pragma("temp_store", "memory")
            // Pages read through a memory map cost no read() call and no copy (SQLite maps
            // at most its compile-time limit, 2 GB, of the file; the rest is read as usual).
            .pragma("mmap_size", MMAP_BYTES)
            .foreign_keys(true);

        // The writer keeps its page cache between transactions (a reader's is dropped
        // whenever someone else has written), so a large one holds the upper levels of
        // every index; and it leaves checkpoints to the background task below, except as
        // a backstop should that task fall far behind.
        let writer_connect = connect
            .clone()
            .pragma("cache_size", WRITER_CACHE_KIB)
            .pragma("wal_autocheckpoint", BACKSTOP_CHECKPOINT_PAGES);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(writer_connect)
            .await
            .map_err(db_error)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| db_error(e.into()))?;
        let checkpointer = Checkpointer::start(
            SqliteConnection::connect_with(&connect)
                .await
                .map_err(db_error)?,
        );
        let readers = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .connect_with(connect)
            .await
            .map_err(db_error)?;
        Ok(SqliteStore {
            group: GroupWriter::new(writer.clone(), Sqlite::BEGIN_WRITE),
            writer,
            readers,
            _checkpointer: Arc::new(checkpointer),
            size_limit,
        })
    }
}

/// `PRAGMA mmap_size`: more than SQLite's compile-time cap, which it then uses.
const MMAP_BYTES: &str = "17179869184";

/// `PRAGMA cache_size` of the writer connection, in KiB (negative: a size, not pages).
const WRITER_CACHE_KIB: &str = "-131072";

/// The writer checkpoints by itself only when the WAL holds this many pages (256 MiB):
/// normally the background task has long done it.
const BACKSTOP_CHECKPOINT_PAGES: &str = "65536";

/// How often the background task checkpoints.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// Moves committed pages from the WAL into the database file, on its own connection and so
/// on its own thread. Left to the writer (SQLite's default, every 1000 pages), a checkpoint
/// runs inside whichever commit crosses the threshold, with two fsyncs, while every other
/// write waits for the one writer; here it overlaps with the writes. `PASSIVE` never waits
/// for readers or the writer.
#[derive(Debug)]
struct Checkpointer(tokio::task::AbortHandle);

impl Checkpointer {
    fn start(mut connection: SqliteConnection) -> Self {
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(CHECKPOINT_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&mut connection)
                    .await
                {
                    // The writer's backstop checkpoint still bounds the WAL.
                    tracing::warn!(error = %db_error(error), "background WAL checkpoint failed");
                }
            }
        });
        Checkpointer(task.abort_handle())
    }
}

/// The task ends with the last clone of the store.
impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        Ok(Box::new(
            SqlTx::grouped(self.group.join().await?).with_size_limit(self.size_limit.clone()),
        ))
    }

    async fn begin_optimistic(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        // Joins the writer's group once it has to (see `SqlTx`).
        Ok(Box::new(
            SqlTx::deferred(self.group.clone(), self.readers.clone())
                .with_size_limit(self.size_limit.clone()),
        ))
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

    async fn maintain_index(&self) -> Result<Box<dyn IndexMaintenance>, StoreError> {
        Ok(Box::new(SqlMaintenance::<Sqlite>::new(
            self.readers.clone(),
            self.writer.clone(),
            None,
        )))
    }

    fn facts_at(
        &self,
        kind: &'static str,
        at: OffsetDateTime,
    ) -> BoxStream<'_, Result<paraply_store::FactPage, StoreError>> {
        Sql::facts_at(&self.readers, kind, at)
    }

    async fn search_access_log(&self, query: &AccessLogQuery) -> Result<AccessLogPage, StoreError> {
        Sql::search_access_log(&self.readers, query).await
    }

    async fn verify_access_log(&self) -> Result<Verification, StoreError> {
        Sql::verify_access_log(&self.readers).await
    }

    async fn purge_access_log(
        &self,
        cutoff: OffsetDateTime,
        entry: AccessLogEntry,
    ) -> Result<Purge, StoreError> {
        Sql::purge_access_log(&self.writer, cutoff, entry).await
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
    const LOCKS_RESOURCES: bool = false;
    const JSON_ROWS: JsonRows = JsonRows::Sqlite;
    // IMMEDIATE takes the write lock now, so a transaction never has to upgrade a read lock
    // later (which SQLite can refuse with SQLITE_BUSY without waiting).
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const SERIALIZE_ON: Option<&'static str> = None;
    const ACCESS_LOG_CHAINS: i64 = 1;
    const LOCK_CHAIN: Option<&'static str> = None;
    const SKIP_LOCKED: &'static str = "";

    fn execute<'c>(
        connection: &'c mut Self::Connection,
        statement: &'static str,
    ) -> Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + 'c>> {
        Box::pin(async move {
            sqlx::query(AssertSqlSafe(statement))
                .execute(connection)
                .await
                .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `PRAGMA synchronous` as the writer connection reports it: 1 is NORMAL, 2 is FULL.
    async fn writer_synchronous(options: SqliteOptions) -> i64 {
        let dir = std::env::temp_dir().join(format!("paraply-sync-test-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}", dir.join("p.db").display());
        let store = SqliteStore::open(&url, options).await.unwrap();
        let (level,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        level
    }

    #[tokio::test]
    async fn commits_are_synced_unless_normal_is_chosen() {
        assert_eq!(writer_synchronous(SqliteOptions::default()).await, 2);
        let normal = SqliteOptions {
            synchronous: Synchronous::Normal,
            ..SqliteOptions::default()
        };
        assert_eq!(writer_synchronous(normal).await, 1);
    }

    #[test]
    fn only_full_and_normal_are_accepted() {
        assert_eq!("full".parse(), Ok(Synchronous::Full));
        assert_eq!("normal".parse(), Ok(Synchronous::Normal));
        for refused in ["off", "extra", "FULL", ""] {
            assert!(refused.parse::<Synchronous>().is_err(), "{refused}");
        }
    }
}
