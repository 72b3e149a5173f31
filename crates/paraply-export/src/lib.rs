//! FHIR Bulk Data Access (R4) `$export`: what this crate owns.
//!
//! - [`operations`]: the kick-off at system, `Patient` and `Group` level, three rows of the
//!   engine's operations table. Only system clients (SMART Backend Services) may export; a
//!   kick-off needs `Prefer: respond-async`, is checked ([`spec`]: `_type`, `_since`,
//!   `_typeFilter` parsed with the search grammar, `_outputFormat`), stored as a job in the
//!   database and answered `202` with the job's status URL. Each export is one access-log
//!   entry: a refused kick-off is logged by the engine at once; an accepted one's entry is
//!   deferred (`OperationContext::defer_audit`) and appended by the worker when it is done,
//!   with the resources per type.
//! - [`Exports`]: the status URL (`202` + progress while the worker runs, the manifest when
//!   done, `DELETE` cancels) and the files, streamed line by line from the store.
//! - [`run`]: the worker every node runs. It claims unfinished jobs by lease (a node that dies
//!   hands over when its lease runs out), records the members of filtered files, counts each
//!   file and finishes the job; it also removes expired jobs.
//!
//! A job's files are views over the stored versions at its kick-off (see
//! `paraply_store::ExportStore`): the lines are the stored JSON text, never parsed, and a
//! write after the kick-off changes nothing in them. Job state lives in the database, so
//! any node answers any job. Not here: HTTP (paraply-api renders and streams), SQL.

mod kickoff;
mod spec;
mod worker;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use paraply_auth::{Context, Permission, Principal};
use paraply_core::{Caller, CoreError, Fhir, Operation, RequestContext, format_instant};
use paraply_fhir::ResourceType;
use paraply_store::{ExportJob, ExportLines, ExportSelection, ExportStore, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use spec::ExportSpec;

/// How exports behave.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// How long a job and its files stay after the kick-off.
    pub expire: Duration,
    /// How often an idle worker looks for work.
    pub poll_interval: Duration,
    /// How long a worker's claim on a job lasts without renewal.
    pub lease: Duration,
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings {
            expire: Duration::from_secs(60 * 60),
            poll_interval: Duration::from_millis(200),
            lease: Duration::from_secs(30),
        }
    }
}

/// The seconds a client is asked to wait between polls (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The `$export` kick-off operations (system, `Patient` and `Group` level), for the engine's
/// table.
pub fn operations(exports: &Exports) -> Vec<Arc<dyn Operation>> {
    kickoff::operations(exports)
}

/// One file of a finished job, as the worker counted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Output {
    #[serde(rename = "type")]
    resource_type: String,
    count: u64,
    /// Whether the file holds only the members the worker recorded.
    members_only: bool,
}

/// A job's status, as its status URL answers it.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportStatus {
    /// Still counting: `202` with `X-Progress`.
    InProgress { progress: String },
    /// Done: `200` with the manifest.
    Complete { manifest: Value },
}

/// The jobs, their status and files: what any node answers for any job.
#[derive(Clone)]
pub struct Exports {
    exports: Arc<dyn ExportStore>,
    store: Arc<dyn Store>,
    settings: Arc<ExportSettings>,
    /// The public FHIR base URL (from settings, never from a request).
    base_url: Arc<str>,
}

impl Exports {
    pub fn new(
        exports: Arc<dyn ExportStore>,
        store: Arc<dyn Store>,
        settings: ExportSettings,
        base_url: &str,
    ) -> Self {
        Exports {
            exports,
            store,
            settings: Arc::new(settings),
            base_url: Arc::from(base_url.trim_end_matches('/')),
        }
    }

    /// The status URL of job `id`.
    fn status_url(&self, id: &str) -> String {
        format!("{}/$export-status/{id}", self.base_url)
    }

    fn file_url(&self, id: &str, resource_type: &str) -> String {
        format!("{}/$export-file/{id}/{resource_type}.ndjson", self.base_url)
    }

    /// Job `id`, if it exists, has not expired and belongs to the caller.
    async fn job_of(&self, context: &RequestContext, id: &str) -> Result<ExportJob, CoreError> {
        let client = client_of(context)?;
        let unknown = || CoreError::Absent(format!("there is no export job {id}"));
        let job = self.exports.export_job(id).await?.ok_or_else(unknown)?;
        // Another client's job is none of this one's business, not even that it exists.
        if job.expires < OffsetDateTime::now_utc() || client.is_some_and(|c| c != job.client_id) {
            return Err(unknown());
        }
        Ok(job)
    }

    /// What the status URL of job `id` answers.
    pub async fn status(
        &self,
        context: &RequestContext,
        id: &str,
    ) -> Result<ExportStatus, CoreError> {
        let job = self.job_of(context, id).await?;
        let Some(result) = job.result.as_deref() else {
            return Ok(ExportStatus::InProgress {
                progress: job
                    .progress
                    .clone()
                    .unwrap_or_else(|| "waiting for a worker".into()),
            });
        };
        let spec = spec_of(&job)?;
        let outputs = outputs_of(result)?;
        let output: Vec<Value> = outputs
            .iter()
            .filter(|o| o.count > 0)
            .map(|o| {
                json!({
                    "type": o.resource_type,
                    "url": self.file_url(&job.id, &o.resource_type),
                    "count": o.count,
                })
            })
            .collect();
        Ok(ExportStatus::Complete {
            manifest: json!({
                "transactionTime": format_instant(job.transaction_time),
                "request": spec.request,
                "requiresAccessToken": true,
                "output": output,
                "error": [],
            }),
        })
    }

    /// `DELETE` on the status URL: the job and its files are gone (a worker counting it
    /// loses its lease at its next renewal).
    pub async fn cancel(&self, context: &RequestContext, id: &str) -> Result<(), CoreError> {
        self.job_of(context, id).await?;
        self.exports.delete_export(id).await?;
        Ok(())
    }

    /// The lines of one file of a finished job (`file` is `<Type>.ndjson`).
    pub async fn file(
        &self,
        context: &RequestContext,
        id: &str,
        file: &str,
    ) -> Result<ExportLines, CoreError> {
        let job = self.job_of(context, id).await?;
        let no_file = || CoreError::Absent(format!("export job {id} has no file {file}"));
        let result = job.result.as_deref().ok_or_else(no_file)?;
        let name = file.strip_suffix(".ndjson").ok_or_else(no_file)?;
        let output = outputs_of(result)?
            .into_iter()
            .find(|o| o.resource_type == name)
            .ok_or_else(no_file)?;
        let resource_type: ResourceType = name.parse().map_err(|_| no_file())?;
        // The token that downloads must still allow reading what it downloads.
        if let Caller::Authenticated(principal) = &context.caller
            && !principal
                .scopes()
                .allows(Some(Context::System), resource_type, Permission::Read)
        {
            return Err(CoreError::Forbidden {
                reason: format!("the token's scopes do not allow reading {name}"),
            });
        }
        let spec = spec_of(&job)?;
        Ok(self.exports.export_lines(ExportSelection {
            job_id: job.id,
            resource_type,
            cutoff: job.cutoff,
            since: spec.since(),
            members_only: output.members_only,
        }))
    }
}

/// The system client calling (`None` without logins, where the server itself exports);
/// anyone else is refused.
fn client_of(context: &RequestContext) -> Result<Option<&str>, CoreError> {
    match &context.caller {
        Caller::Unrestricted => Ok(None),
        Caller::Authenticated(Principal::System { client_id, .. }) => Ok(Some(client_id)),
        Caller::Authenticated(_) => Err(CoreError::Forbidden {
            reason: "bulk export is for system clients (SMART Backend Services) only".into(),
        }),
    }
}

fn spec_of(job: &ExportJob) -> Result<ExportSpec, CoreError> {
    serde_json::from_str(&job.spec).map_err(|_| {
        CoreError::Store(paraply_store::StoreError::Corrupt(format!(
            "export job {} has an unreadable request",
            job.id
        )))
    })
}

fn outputs_of(result: &str) -> Result<Vec<Output>, CoreError> {
    serde_json::from_str(result).map_err(|_| {
        CoreError::Store(paraply_store::StoreError::Corrupt(
            "an export job has an unreadable result".into(),
        ))
    })
}

/// Runs this node's export worker until `shutdown` completes; `fhir` writes each export's
/// access-log entry.
pub async fn run(exports: Exports, fhir: Fhir, shutdown: impl Future<Output = ()> + Send) {
    let worker = worker::Worker::new(exports, fhir);
    tokio::select! {
        () = shutdown => {}
        () = worker.run() => {}
    }
}
