//! Bulk export jobs (`$export`, FHIR Bulk Data Access): what `paraply-export` reads and
//! writes. A job is a row in the database, not a node's memory, so any node answers its
//! status and its downloads, and the worker that counts its files holds a lease a dying node
//! hands over.
//!
//! A job's files are views over the stored versions at the job's cutoff — the highest
//! version row (`seq`) committed when it was kicked off: each resource as it stood at that
//! instant, so writes after the kick-off neither leak in nor make a resource vanish. The
//! lines are the stored JSON text of those versions, never parsed.

use async_trait::async_trait;
use futures::stream::BoxStream;
use paraply_fhir::{ResourceId, ResourceType};
use time::OffsetDateTime;

use crate::StoreError;

/// A job as kicked off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExportJob {
    pub id: String,
    /// The system client that kicked it off: only it polls, cancels and downloads.
    pub client_id: String,
    /// What was asked (types, `_since`, filters, level), in the export crate's own JSON;
    /// storage keeps it as text.
    pub spec: String,
    pub transaction_time: OffsetDateTime,
    pub expires: OffsetDateTime,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJob {
    pub id: String,
    pub client_id: String,
    pub spec: String,
    /// The highest version row committed at the kick-off: the files show each resource's
    /// last version at or below it.
    pub cutoff: i64,
    pub transaction_time: OffsetDateTime,
    pub expires: OffsetDateTime,
    /// The outputs (the export crate's JSON) once the worker finished; `None` while running.
    pub result: Option<String>,
    /// How far the worker got, for `X-Progress`.
    pub progress: Option<String>,
}

/// Which versions one file of a job holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSelection {
    pub job_id: String,
    pub resource_type: ResourceType,
    /// See [`ExportJob::cutoff`].
    pub cutoff: i64,
    /// Only resources whose version at the cutoff was written after this instant (`_since`).
    pub since: Option<OffsetDateTime>,
    /// Only the resources the worker recorded as members of this job and type (a
    /// `_typeFilter`, a patient compartment); otherwise every resource of the type.
    pub members_only: bool,
}

/// The JSON text of a file's versions, oldest row first.
pub type ExportLines = BoxStream<'static, Result<String, StoreError>>;

#[async_trait]
pub trait ExportStore: Send + Sync + 'static {
    /// Stores a new job; its cutoff is the highest version row committed now.
    async fn create_export(&self, job: &NewExportJob) -> Result<ExportJob, StoreError>;

    async fn export_job(&self, id: &str) -> Result<Option<ExportJob>, StoreError>;

    /// Whether every write transaction that was in flight at job `id`'s kick-off has ended,
    /// so that nothing more can appear at or below its cutoff: where several writers take
    /// row numbers at insert and commit out of order, one may still commit a row below it.
    /// Always `true` where the database has one writer. `false` for an unknown job.
    async fn writers_settled(&self, id: &str) -> Result<bool, StoreError>;

    /// Removes a job and what the worker recorded for it; `false` if there was none.
    async fn delete_export(&self, id: &str) -> Result<bool, StoreError>;

    /// Removes every job that expired before `now`; how many.
    async fn delete_expired_exports(&self, now: OffsetDateTime) -> Result<u64, StoreError>;

    /// Claims for `node` until `until` the oldest unfinished job that no other node holds a
    /// live lease on (or renews `node`'s own).
    async fn claim_export(
        &self,
        node: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<ExportJob>, StoreError>;

    /// Renews `node`'s lease on job `id` and records its progress; `false` when the lease
    /// is lost or the job was cancelled.
    async fn renew_export(
        &self,
        id: &str,
        node: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        progress: &str,
    ) -> Result<bool, StoreError>;

    /// Records `ids` as members of job `id` for `resource_type` (repeats are kept once).
    async fn add_export_members(
        &self,
        id: &str,
        resource_type: ResourceType,
        ids: &[ResourceId],
    ) -> Result<(), StoreError>;

    /// How many lines the file of `selection` has.
    async fn count_export(&self, selection: &ExportSelection) -> Result<u64, StoreError>;

    /// Finishes job `id` with `result`, only while `node` holds its lease (else `false`).
    async fn finish_export(
        &self,
        id: &str,
        node: &str,
        now: OffsetDateTime,
        result: &str,
    ) -> Result<bool, StoreError>;

    /// The lines of the file of `selection`, read in pages by version row so that neither
    /// memory nor a database snapshot grows with the file.
    fn export_lines(&self, selection: ExportSelection) -> ExportLines;
}
