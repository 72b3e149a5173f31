//! The export worker: claims an unfinished job by lease, records the members of its filtered
//! files (a `_typeFilter`'s matches, a Group's member patients and their compartments),
//! counts every file and finishes the job. Every step can be repeated: a node that takes
//! over a job from one that died starts it again, and members recorded twice are kept once.

use std::sync::Arc;

use paraply_core::{CoreError, DeferredAudit, Fhir};
use paraply_fhir::{ResourceId, ResourceType};
use paraply_search::{PatientLink, SearchQuery, patient_link};
use paraply_store::{ExportJob, ExportSelection, StoreError};
use time::OffsetDateTime;

use crate::spec::{ExportSpec, search};
use crate::{Exports, Output, outputs_of, spec_of};

/// Search page size while recording members.
const PAGE: u32 = 1_000;
/// Group members named in one search of a compartment type.
const MEMBERS_PER_SEARCH: usize = 100;

#[derive(Debug, thiserror::Error)]
enum WorkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The job was cancelled, or another node took it over: stop quietly.
    #[error("the job's lease was lost")]
    LeaseLost,
}

pub(crate) struct Worker {
    exports: Exports,
    /// The engine, for the export's access-log entry.
    fhir: Fhir,
    /// This process's name in the leases.
    node: Arc<str>,
}

impl Worker {
    pub(crate) fn new(exports: Exports, fhir: Fhir) -> Self {
        Worker {
            exports,
            fhir,
            node: Arc::from(uuid::Uuid::new_v4().to_string()),
        }
    }

    /// Works jobs until the task is dropped: at once while there is work, after the poll
    /// interval when there is none.
    pub(crate) async fn run(&self) {
        let poll = self.exports.settings.poll_interval;
        loop {
            match self.round().await {
                Ok(true) => {}
                Ok(false) => tokio::time::sleep(poll).await,
                Err(error) => {
                    tracing::warn!(%error, "export round failed; trying again");
                    tokio::time::sleep(poll * 10).await;
                }
            }
        }
    }

    /// One round: expired jobs removed, one job worked if there is one (`true`).
    async fn round(&self) -> Result<bool, WorkError> {
        let now = OffsetDateTime::now_utc();
        self.exports.exports.delete_expired_exports(now).await?;
        let Some(job) = self
            .exports
            .exports
            .claim_export(&self.node, now, now + self.exports.settings.lease)
            .await?
        else {
            return Ok(false);
        };
        match self.work(&job).await {
            Ok(()) | Err(WorkError::LeaseLost) => Ok(true),
            Err(error) => Err(error),
        }
    }

    async fn renew(&self, job: &ExportJob, progress: &str) -> Result<(), WorkError> {
        let now = OffsetDateTime::now_utc();
        if self
            .exports
            .exports
            .renew_export(
                &job.id,
                &self.node,
                now,
                now + self.exports.settings.lease,
                progress,
            )
            .await?
        {
            Ok(())
        } else {
            Err(WorkError::LeaseLost)
        }
    }

    async fn work(&self, job: &ExportJob) -> Result<(), WorkError> {
        // Counted only once nothing more can appear below the cutoff, so that the files
        // hold what the manifest counts.
        while !self.exports.exports.writers_settled(&job.id).await? {
            self.renew(job, "waiting for writes in flight at the kick-off")
                .await?;
            tokio::time::sleep(self.exports.settings.poll_interval).await;
        }
        let spec = spec_of(job)?;
        let types = spec.resource_types();
        let members = match spec.group() {
            Some(group) => Some(self.group_members(&group).await?),
            None => None,
        };
        let mut outputs = Vec::with_capacity(types.len());
        for (done, resource_type) in types.iter().enumerate() {
            self.renew(job, &format!("{done} of {} files counted", types.len()))
                .await?;
            let members_only = self
                .record_members(job, &spec, *resource_type, members.as_deref())
                .await?;
            let count = self
                .exports
                .exports
                .count_export(&ExportSelection {
                    job_id: job.id.clone(),
                    resource_type: *resource_type,
                    cutoff: job.cutoff,
                    since: spec.since(),
                    members_only,
                })
                .await?;
            outputs.push(Output {
                resource_type: resource_type.as_str().to_owned(),
                count,
                members_only,
            });
        }
        let result = serde_json::to_string(&outputs)
            .map_err(|e| StoreError::Corrupt(format!("export result: {e}")))?;
        // Checked here so that a result that could not be read back is never stored.
        outputs_of(&result)?;
        // The entry before the files are served: a node dying in between leaves the job to
        // another, whose finish finds the entry already there.
        if let Some(deferred) = spec.audit.as_deref().and_then(DeferredAudit::from_text) {
            let detail = outputs
                .iter()
                .map(|o| (o.resource_type.clone(), o.count.to_string()))
                .collect();
            self.fhir.record_deferred(&deferred, detail).await?;
        }
        let finished = self
            .exports
            .exports
            .finish_export(&job.id, &self.node, OffsetDateTime::now_utc(), &result)
            .await?;
        if finished {
            tracing::info!(files = outputs.len(), "export job finished");
        }
        Ok(())
    }

    /// The member patients of the group (references `Patient/{id}` in `member.entity`), as
    /// the group stands now.
    async fn group_members(&self, group: &ResourceId) -> Result<Vec<ResourceId>, WorkError> {
        let stored = self
            .exports
            .store
            .read(ResourceType::Group, group)
            .await?
            .and_then(|g| g.body);
        let Some(body) = stored else {
            return Ok(Vec::new());
        };
        let json: serde_json::Value = serde_json::from_str(&body)
            .map_err(|_| StoreError::Corrupt(format!("Group/{group} is not JSON")))?;
        Ok(json["member"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["entity"]["reference"].as_str())
            .filter_map(|r| r.strip_prefix("Patient/"))
            .filter_map(|id| id.parse().ok())
            .collect())
    }

    /// Records the members of the file of `resource_type` when it is filtered, and says
    /// whether it is. A file is filtered by its `_typeFilter`s (any of them matching) and, at
    /// Group level, by the member patients' compartments; both hold when both are given.
    async fn record_members(
        &self,
        job: &ExportJob,
        spec: &ExportSpec,
        resource_type: ResourceType,
        patients: Option<&[ResourceId]>,
    ) -> Result<bool, WorkError> {
        let filters = spec.filters_of(resource_type);
        if filters.is_empty() && patients.is_none() {
            return Ok(false);
        }
        let filters = if filters.is_empty() {
            vec![Vec::new()]
        } else {
            filters
        };
        for filter in filters {
            match patients {
                None => {
                    self.record_matches(job, search(resource_type, &filter)?)
                        .await?;
                }
                Some(patients) => {
                    for chunk in patients.chunks(MEMBERS_PER_SEARCH) {
                        let mut pairs = filter.clone();
                        let ids: Vec<String> = chunk.iter().map(ToString::to_string).collect();
                        let (name, value) = match patient_link(resource_type) {
                            PatientLink::Itself => ("_id", ids.join(",")),
                            PatientLink::Param(param) => (
                                param,
                                ids.iter()
                                    .map(|id| format!("Patient/{id}"))
                                    .collect::<Vec<_>>()
                                    .join(","),
                            ),
                            PatientLink::None => continue,
                        };
                        pairs.push((name.to_owned(), value));
                        self.record_matches(job, search(resource_type, &pairs)?)
                            .await?;
                    }
                }
            }
        }
        Ok(true)
    }

    /// Pages through `query` (no restriction: the worker acts for a system client whose
    /// scopes were checked at the kick-off) and records every match as a member.
    async fn record_matches(
        &self,
        job: &ExportJob,
        mut query: SearchQuery,
    ) -> Result<(), WorkError> {
        query.count = PAGE;
        query.include.clear();
        query.revinclude.clear();
        loop {
            let page = self.exports.store.search(&query).await?;
            let ids: Vec<ResourceId> = page.matches.iter().map(|m| m.resource.id.clone()).collect();
            self.exports
                .exports
                .add_export_members(&job.id, query.resource_type, &ids)
                .await?;
            match page.matches.last() {
                Some(last) if page.more => query.page = Some(last.cursor(false)),
                _ => return Ok(()),
            }
            self.renew(job, "recording the members of filtered files")
                .await?;
        }
    }
}
