//! The storage interface: a versioned resource store with transactions, history and
//! typed search, plus the one conformance suite ([`conformance`]) every backend runs.
//!
//! This crate owns no SQL and no HTTP. It stores already-validated JSON text exactly as
//! given and hands it back untouched, so reads never pay for parsing.

mod access_log;
pub mod conformance;
mod export;
mod facts;
mod maintenance;
mod outbox;
mod sessions;

use async_trait::async_trait;
use futures::stream::BoxStream;
use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::{IndexRow, PageCursor, Restriction, SearchQuery, SortValue};
use time::OffsetDateTime;

pub use access_log::{
    AccessLogCondition, AccessLogEntry, AccessLogFilter, AccessLogOrder, AccessLogPage,
    AccessLogQuery, AccessLogRow, AccessLogTerm, BrokenLink, ChainAnchor, ChainSummary,
    GENESIS_HASH, LinkContent, Purge, TermKey, Verification, link_hash, micros,
};
pub use export::{ExportJob, ExportLines, ExportSelection, ExportStore, NewExportJob};
pub use facts::{Fact, FactPage};
pub use maintenance::{CurrentVersion, IndexMaintenance, RecordedDefinition};
pub use outbox::{
    DeliveryClaim, NewNotification, Notification, NotificationKind, OutboxStore, QueuedChange,
};
pub use sessions::{PendingLogin, Session, SessionStore};

/// One stored version of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResource {
    pub resource_type: ResourceType,
    pub id: ResourceId,
    pub version_id: VersionId,
    /// Server time of the write, microsecond precision.
    pub last_updated: OffsetDateTime,
    /// The JSON text of this version; `None` when this version is a deletion.
    pub body: Option<String>,
}

impl StoredResource {
    pub fn is_deleted(&self) -> bool {
        self.body.is_none()
    }
}

/// A new version to write. The caller read the current version first and asks the store to
/// write `version_id` only if the current version is still `version_id - 1` (or, for
/// version 1, if the resource does not exist at all): the database decides, so two writers
/// racing for the same version cannot both win.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVersion {
    pub resource_type: ResourceType,
    pub id: ResourceId,
    pub version_id: VersionId,
    pub last_updated: OffsetDateTime,
    /// The JSON text (with `id` and `meta` already set); `None` writes a deletion.
    pub body: Option<String>,
    /// Search index rows of this version; they replace the previous version's rows in the
    /// same transaction (a deletion has none).
    pub index: Vec<IndexRow>,
}

/// Which history to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryScope {
    System,
    Type(ResourceType),
    Instance(ResourceType, ResourceId),
}

/// A page of history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    pub scope: HistoryScope,
    /// Only versions written at or after this instant (`_since`).
    pub since: Option<OffsetDateTime>,
    /// Page size.
    pub count: u32,
    /// Continue after this cursor (from [`HistoryPage::next`]).
    pub after: Option<HistoryCursor>,
}

/// An opaque position in the history; stable under concurrent writes because history only
/// ever grows at the new end and pages walk towards the old end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor(pub i64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub entries: Vec<StoredResource>,
    /// Where the next (older) page starts, if there are more versions.
    pub next: Option<HistoryCursor>,
    /// How many versions match in total.
    pub total: u64,
}

/// One search match with the values it sorted by (for the next page's cursor).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchMatch {
    pub resource: StoredResource,
    /// One value per sort key of the query, in order.
    pub sort_values: Vec<SortValue>,
    /// Where the store wrote this version in its write order (higher is later): the order
    /// without `_sort` and the final tie-breaker of every order (see [`PageCursor`]).
    pub seq: i64,
}

impl SearchMatch {
    /// The cursor of the page after this match or, `backwards`, of the page before it.
    pub fn cursor(&self, backwards: bool) -> PageCursor {
        PageCursor {
            values: self.sort_values.clone(),
            seq: self.seq,
            backwards,
        }
    }
}

/// A page of a search: current, non-deleted matches in the query's order.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    pub matches: Vec<SearchMatch>,
    /// Resources found by `_include`/`_revinclude` (each once, none that is also a match).
    pub included: Vec<StoredResource>,
    /// How many resources match in all: always with [`Total::Accurate`], never with
    /// [`Total::None`], and with [`Total::IfFree`] only when this is a first page that holds
    /// every match.
    ///
    /// [`Total::Accurate`]: paraply_search::Total::Accurate
    /// [`Total::None`]: paraply_search::Total::None
    /// [`Total::IfFree`]: paraply_search::Total::IfFree
    pub total: Option<u64>,
    /// Whether more matches lie beyond this page in the direction it was read (after it,
    /// or before it for a backwards cursor).
    pub more: bool,
}

/// Connections of one database pool, for the `/metrics` gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub name: &'static str,
    pub size: u32,
    pub idle: u32,
}

/// Errors in storage words; the HTTP edge maps them to OperationOutcomes. Cloneable: a
/// failed group commit gives every transaction in it the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The version to write is not the successor of the current one (someone else wrote
    /// first, or a create hit an existing id).
    #[error("version conflict on {resource_type}/{id}")]
    VersionConflict {
        resource_type: ResourceType,
        id: ResourceId,
    },
    /// The database is unreachable, busy beyond its timeout, or failed.
    #[error("database error: {0}")]
    Database(String),
    /// No room for more data: the disk is full, or the database reached its configured size.
    /// Nothing of the write was stored; reads go on.
    #[error("the database is full: {0}")]
    Full(String),
    /// Stored data that cannot be read back (a corrupted row).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// The store: cheap to clone behind an `Arc`, shared by all request handlers.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Starts a read-write transaction. Writes become visible only on commit; dropping the
    /// transaction without commit rolls everything back. What it reads stays current until
    /// it ends: nobody else writes those resources meanwhile (a single writer, or locks).
    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError>;

    /// [`Store::begin`] for a writer that retries: reads of single resources may be served
    /// before the transaction holds any lock, so another writer may commit a newer version
    /// of a resource in between. Every version written is still checked against the one it
    /// replaces, so such a write fails with [`StoreError::VersionConflict`] (at the latest on
    /// commit) instead of overwriting; the caller retries, with [`Store::begin`]. In return
    /// the work between reading and writing does not hold up other writers where the
    /// database has only one. Searches see the transaction's writes as with `begin`.
    async fn begin_optimistic(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        self.begin().await
    }

    /// The current version of a resource (a deletion marker if it was deleted last).
    async fn read(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<StoredResource>, StoreError>;

    /// One specific version.
    async fn vread(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        version_id: VersionId,
    ) -> Result<Option<StoredResource>, StoreError>;

    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, StoreError>;

    /// One page of current, non-deleted resources matching `query` (its `count`, sort,
    /// cursor, includes and total), in a fixed number of queries whatever the matches.
    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, StoreError>;

    /// Whether the current, non-deleted `resource_type/id` passes `restriction` — the same
    /// rules a restricted search applies, asked of one resource in one cheap statement.
    async fn visible(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        restriction: &Restriction,
    ) -> Result<bool, StoreError>;

    /// Cheap liveness check of the database, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Waits for this database's turn at index maintenance (several nodes starting at once
    /// take turns) and returns it; the turn ends when the value is dropped.
    async fn maintain_index(&self) -> Result<Box<dyn IndexMaintenance>, StoreError>;

    /// Open and idle connections of each pool.
    fn pool_status(&self) -> Vec<PoolStatus>;

    /// One page of access-log entries matching `query`, in a fixed number of statements.
    async fn search_access_log(&self, query: &AccessLogQuery) -> Result<AccessLogPage, StoreError>;

    /// Walks every chain of the access log from its anchor to its head and reports the
    /// first link that does not hold.
    async fn verify_access_log(&self) -> Result<Verification, StoreError>;

    /// Deletes, in one transaction, each chain's entries from its start up to the first
    /// one recorded at or after `cutoff`, records the purge and where each chain now
    /// starts, and appends `entry` (the purge's own access-log entry).
    async fn purge_access_log(
        &self,
        cutoff: OffsetDateTime,
        entry: AccessLogEntry,
    ) -> Result<Purge, StoreError>;

    /// The body of every fact of `kind` that was current at `at` (see
    /// [`StoreTx::record_fact`]), streamed from the database in pages, in no particular
    /// order.
    fn facts_at(
        &self,
        kind: &'static str,
        at: OffsetDateTime,
    ) -> BoxStream<'_, Result<FactPage, StoreError>>;
}

/// A database transaction. Reads inside it see its own writes.
///
/// A backend may keep writes back and send them together (see [`StoreTx::write`]); every
/// read, search and visibility check still sees them.
#[async_trait]
pub trait StoreTx: Send {
    async fn read(
        &mut self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<StoredResource>, StoreError>;

    /// The current versions of several resources, in the order asked, in one round trip;
    /// later reads of them in this transaction cost nothing. A write transaction that knows
    /// what it will write reads it all first: a transaction Bundle reads its entries'
    /// targets together.
    async fn read_many(
        &mut self,
        keys: &[(ResourceType, ResourceId)],
    ) -> Result<Vec<Option<StoredResource>>, StoreError>;

    async fn search(&mut self, query: &SearchQuery) -> Result<SearchPage, StoreError>;

    /// [`Store::visible`], seeing this transaction's own writes.
    async fn visible(
        &mut self,
        resource_type: ResourceType,
        id: &ResourceId,
        restriction: &Restriction,
    ) -> Result<bool, StoreError>;

    /// Writes one version (see [`NewVersion`]). The backend may send it to the database
    /// later, together with the transaction's other writes (the next search, visibility
    /// check or the commit), so a [`StoreError::VersionConflict`] — the current version is
    /// not `version_id - 1` — may come from that later call; it names the resource.
    async fn write(&mut self, version: NewVersion) -> Result<(), StoreError>;
    /// Waits until no other transaction serialized on `key` is running, and keeps others
    /// waiting until this one ends. Rules across resources take it before they read (keyed
    /// by the patient): two transactions that each check "no other active fast
    /// läkarkontakt" and each write one would otherwise both pass, as under READ COMMITTED
    /// neither sees the other's row.
    async fn serialize_on(&mut self, key: &str) -> Result<(), StoreError>;

    /// Appends access-log entries, hash-chained, when the transaction commits: they commit
    /// or roll back with its writes. Appending late keeps a chain's lock (where the
    /// database has several writers) held only for the insert.
    async fn append_access_log(&mut self, entries: Vec<AccessLogEntry>) -> Result<(), StoreError>;

    /// Records, when the transaction commits, that `fact` holds from its `at` on: the
    /// subject's current fact of that kind (if different) ends at `at`. Facts are what a
    /// domain derives from its resources for reports (the follow-up measures): kept with
    /// their validity in the same transaction as the writes they follow, so a report reads
    /// a past instant without re-reading the versions. The last fact a transaction records
    /// for a subject and kind is the one kept.
    async fn record_fact(&mut self, fact: Fact) -> Result<(), StoreError>;

    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
