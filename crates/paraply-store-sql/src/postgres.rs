//! The PostgreSQL backend: one pool per process; several processes may share the database.
//!
//! Correctness never relies on this process being alone: version conflicts are decided by
//! the row lock of the compare-and-swap `UPDATE` and the unique indexes, and migrations run
//! under sqlx's advisory lock, so nodes starting together apply each migration once.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::{Restriction, SearchQuery};
use paraply_store::{
    AccessLogEntry, AccessLogPage, AccessLogQuery, HistoryPage, HistoryQuery, IndexMaintenance,
    PoolStatus, Purge, SearchPage, Store, StoreError, StoreTx, StoredResource, Verification,
};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Postgres};
use time::OffsetDateTime;

use crate::common::{Backend, Sql, SqlTx};
use crate::error::db_error;
use crate::maintenance::{SqlMaintenance, TAKE_TURN};
use crate::sql::JsonRows;

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
    pub(crate) pool: PgPool,
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
        let tx = self
            .pool
            .begin_with(Postgres::BEGIN_WRITE)
            .await
            .map_err(db_error)?;
        Ok(Box::new(SqlTx::begun(tx)))
    }

    async fn read(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<StoredResource>, StoreError> {
        Sql::read(&self.pool, resource_type, id).await
    }

    async fn vread(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        version_id: VersionId,
    ) -> Result<Option<StoredResource>, StoreError> {
        Sql::vread(&self.pool, resource_type, id, version_id).await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, StoreError> {
        Sql::history(&self.pool, query).await
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, StoreError> {
        Sql::search(&self.pool, query).await
    }

    async fn visible(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        restriction: &Restriction,
    ) -> Result<bool, StoreError> {
        Sql::visible(&self.pool, resource_type, id, restriction).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Sql::ping(&self.pool).await
    }

    async fn maintain_index(&self) -> Result<Box<dyn IndexMaintenance>, StoreError> {
        // Outside the pool: the lock belongs to the connection's session, and a pooled
        // connection would carry it back into the pool if the turn ended by an error.
        let mut turn = PgConnection::connect_with(&self.pool.connect_options())
            .await
            .map_err(db_error)?;
        sqlx::query(TAKE_TURN)
            .execute(&mut turn)
            .await
            .map_err(db_error)?;
        Ok(Box::new(SqlMaintenance::<Postgres>::new(
            self.pool.clone(),
            self.pool.clone(),
            Some(turn),
        )))
    }

    fn facts_at(
        &self,
        kind: &'static str,
        at: OffsetDateTime,
    ) -> BoxStream<'_, Result<paraply_store::FactPage, StoreError>> {
        Sql::facts_at(&self.pool, kind, at)
    }

    async fn search_access_log(&self, query: &AccessLogQuery) -> Result<AccessLogPage, StoreError> {
        Sql::search_access_log(&self.pool, query).await
    }

    async fn verify_access_log(&self) -> Result<Verification, StoreError> {
        Sql::verify_access_log(&self.pool).await
    }

    async fn purge_access_log(
        &self,
        cutoff: OffsetDateTime,
        entry: AccessLogEntry,
    ) -> Result<Purge, StoreError> {
        Sql::purge_access_log(&self.pool, cutoff, entry).await
    }

    fn pool_status(&self) -> Vec<PoolStatus> {
        vec![PoolStatus {
            name: "postgres",
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
        }]
    }
}

/// Concurrent writers of one resource queue on an advisory lock; see [`sql::lock_resources`].
impl Backend for Postgres {
    const POSITIONAL_PLACEHOLDERS: bool = false;
    const LOCKS_RESOURCES: bool = true;
    const JSON_ROWS: JsonRows = JsonRows::Postgres;
    const BEGIN_WRITE: &'static str = "BEGIN";
    /// Seed 1 keeps these keys apart from the per-resource locks (seed 0).
    const SERIALIZE_ON: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))");
    const ACCESS_LOG_CHAINS: i64 = 16;
    /// The two-key form (`2`, chain): a key space apart from the one-key locks above.
    const LOCK_CHAIN: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(2, CAST($1 AS INTEGER))");
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

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
