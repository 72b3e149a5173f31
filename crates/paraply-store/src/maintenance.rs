//! Index maintenance: what a reindex needs of storage when the parameter registry has changed
//! since a database's index rows were extracted. Storage records which parameter definitions
//! the rows follow, lists current versions and replaces chosen parameters' rows; deciding
//! what is stale and extracting rows from bodies is the engine's job (`paraply-core`).

use async_trait::async_trait;
use paraply_fhir::ResourceType;
use paraply_search::{IndexRow, ParamDefinition};

use crate::StoreError;

/// A parameter definition the database's index rows of that type were extracted by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedDefinition {
    pub resource_type: ResourceType,
    pub param: String,
    /// The text of [`ParamDefinition::definition`] at the time of extraction.
    pub definition: String,
}

/// A current, non-deleted version, as a reindex reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentVersion {
    /// The version row (`SearchMatch::seq`): what index rows point at, and the walk's
    /// position.
    pub seq: i64,
    /// The stored JSON text.
    pub body: String,
}

/// A turn at maintaining one database's index, from [`crate::Store::maintain_index`]. Only
/// one process holds a turn at a time; dropping the value ends it. Each call is its own
/// database transaction, so a reindex interrupted between calls leaves every resource with
/// either its old or its new rows, never half of them.
#[async_trait]
pub trait IndexMaintenance: Send {
    /// Every recorded definition, of every type (none before the first reindex).
    async fn recorded_definitions(&mut self) -> Result<Vec<RecordedDefinition>, StoreError>;

    /// How many current, non-deleted resources of `resource_type` there are.
    async fn count_current(&mut self, resource_type: ResourceType) -> Result<u64, StoreError>;

    /// Up to `limit` current, non-deleted versions of `resource_type` with `seq` above
    /// `after` (all, without it), in `seq` order: the next batch of a walk over the type.
    async fn current_versions(
        &mut self,
        resource_type: ResourceType,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<CurrentVersion>, StoreError>;

    /// In one transaction: deletes the rows of `params` of the version rows in `rows` and
    /// inserts the rows given for them, which must belong to `params`. A write of one of
    /// these resources in progress is waited for (or waits), and a version no longer current
    /// by then (written or deleted meanwhile, whose writer replaced its rows) gets no rows:
    /// rows exist only for current versions.
    async fn replace_rows(
        &mut self,
        resource_type: ResourceType,
        params: &[&str],
        rows: &[(i64, Vec<IndexRow>)],
    ) -> Result<(), StoreError>;

    /// Replaces the recorded definitions of `resource_type` with `definitions`, once its
    /// rows follow them.
    async fn record_definitions(
        &mut self,
        resource_type: ResourceType,
        definitions: &[ParamDefinition],
    ) -> Result<(), StoreError>;
}
