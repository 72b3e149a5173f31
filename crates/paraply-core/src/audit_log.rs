//! The access-log writer: AuditEvents are durable before the response leaves, yet an audited
//! read does not cost a database transaction of its own.
//!
//! [`AuditLog`] is a group commit. Requests hand their record to one writer task and wait;
//! the task takes everything queued (up to [`MAX_BATCH`]), writes it in one store
//! transaction, commits, and only then answers every waiter — with success, or with the
//! same error for all of them, so that no request whose access was not logged answers 200.
//! While one batch commits, the next one queues up, so under load a transaction carries
//! many events and with no load an event waits for nobody.
//!
//! A write is logged inside the write's own transaction instead ([`stage_audit_event`]):
//! the data and its log then commit or roll back together.
//!
//! Each event is a compact access-log entry ([`crate::audit_row`]) — a narrow row and a
//! few search terms, hash-chained by the store — not an AuditEvent resource with index rows:
//! the writer's time per event is what bounds the audited read rate.

use std::sync::Arc;

use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::index_rows;
use paraply_store::{AccessLogEntry, NewVersion, Purge, Store, StoreError, StoreTx};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::audit::AuditRecord;
use crate::audit_row::log_entry;
use crate::error::CoreError;
use crate::stamp::{now, stamp};

/// Most events in one transaction: large enough to absorb a burst of reads, small enough
/// that one transaction stays short for the single SQLite writer (an entry is one narrow
/// row and a few term rows, appended in four statements per batch).
pub const MAX_BATCH: usize = 1024;

/// Records waiting for the writer; beyond this, `record` waits for room (back-pressure on
/// the requests rather than unbounded memory).
const QUEUE_CAPACITY: usize = 4 * MAX_BATCH;

struct Pending {
    entry: AccessLogEntry,
    done: oneshot::Sender<Result<(), String>>,
}

/// The group-committing AuditEvent writer; cheap to clone, shared by all requests.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Pending>,
}

impl AuditLog {
    /// Starts the writer task on the current tokio runtime. It ends when the last clone of
    /// the returned `AuditLog` is dropped, after writing what is queued.
    pub fn start(store: Arc<dyn Store>) -> AuditLog {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_batches(store, receiver));
        AuditLog { queue }
    }

    /// Writes the AuditEvent for `record` and returns once it is committed. An error means
    /// the event is not stored: the caller must not answer as if the access succeeded.
    pub async fn record(&self, record: AuditRecord) -> Result<(), CoreError> {
        // Built here, on the request's task, so that requests build in parallel and the one
        // writer task only writes.
        self.append(log_entry(&record)).await
    }

    /// Writes `entry` and returns once it is committed.
    pub(crate) async fn append(&self, entry: AccessLogEntry) -> Result<(), CoreError> {
        let (done, committed) = oneshot::channel();
        self.queue
            .send(Pending { entry, done })
            .await
            .map_err(|_| stopped())?;
        committed
            .await
            .map_err(|_| stopped())?
            .map_err(|message| CoreError::Store(StoreError::Database(message)))
    }
}

fn stopped() -> CoreError {
    CoreError::Store(StoreError::Database(
        "the audit log writer has stopped".into(),
    ))
}

async fn write_batches(store: Arc<dyn Store>, mut receiver: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (entries, waiters): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|p| (p.entry, p.done)).unzip();
        let events = entries.len();
        let started = std::time::Instant::now();
        let result = write_batch(store.as_ref(), entries).await;
        // Batch sizes and times show whether the one writer bounds the audited read rate.
        tracing::debug!(
            events,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "audit batch written"
        );
        if let Err(message) = &result {
            // Only the count and the storage error: records hold patient ids.
            tracing::error!(events, error = %message, "audit log write failed");
        }
        for done in waiters {
            // A waiter that gave up (its request was cancelled) needs no answer.
            let _ = done.send(result.clone());
        }
    }
}

async fn write_batch(store: &dyn Store, entries: Vec<AccessLogEntry>) -> Result<(), String> {
    let mut tx = store.begin().await.map_err(|e| e.to_string())?;
    // The store appends all entries at commit, in a few multi-row statements.
    tx.append_access_log(entries)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())
}

/// The access-log entry of an access whose work ends after its request (a bulk export):
/// made when the request is accepted, kept with the work, and appended once the work is
/// done, with what it yielded ([`crate::Fhir::record_deferred`]) — so the one entry can say
/// what was exported. Its AuditEvent id is fixed from the start: a finish that is retried
/// (another node taking the work over) appends it at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredAudit {
    pub(crate) id: ResourceId,
    pub(crate) recorded: OffsetDateTime,
    /// The compact record ([`crate::audit_row`]), personal values already masked.
    pub(crate) body: String,
}

impl DeferredAudit {
    /// As text, to be kept with the work.
    pub fn to_text(&self) -> String {
        serde_json::json!({
            "id": self.id.as_str(),
            "recorded": paraply_store::micros(self.recorded),
            "body": self.body,
        })
        .to_string()
    }

    /// Back from [`DeferredAudit::to_text`]; `None` if it is not such a text.
    pub fn from_text(text: &str) -> Option<DeferredAudit> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let recorded = OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(value["recorded"].as_i64()?) * 1_000,
        )
        .ok()?;
        Some(DeferredAudit {
            id: value["id"].as_str()?.parse().ok()?,
            recorded,
            body: value["body"].as_str()?.to_owned(),
        })
    }
}

/// The least retention the law allows (Patientdatalagen: the access log is kept at least
/// five years), and the default of `[audit] retention_years`.
pub const MIN_RETENTION_YEARS: u32 = 5;

/// `paraply audit purge`: deletes the access-log entries recorded more than `years` years
/// ago (each chain's entries up to the first newer one), records the purge, and logs it as
/// an access of its own (a `delete` by the system client `paraply audit purge`, whose
/// query entity says what was deleted), all in one transaction.
pub async fn purge_access_log(store: &dyn Store, years: u32) -> Result<Purge, CoreError> {
    if years < MIN_RETENTION_YEARS {
        return Err(CoreError::bad_request(format!(
            "the access log is kept at least {MIN_RETENTION_YEARS} years"
        )));
    }
    let now = now();
    let year = now.year() - i32::try_from(years).unwrap_or(i32::MAX);
    // 29 February of a leap year has no counterpart in most years: the day before.
    let cutoff = now
        .replace_year(year)
        .or_else(|_| (now - time::Duration::days(1)).replace_year(year))
        .map_err(|_| CoreError::bad_request("the retention reaches before year 1"))?;
    let record = AuditRecord {
        recorded: now,
        action: crate::audit::AuditAction::Delete,
        agent: crate::audit::AuditAgent::System {
            client_id: "paraply audit purge".into(),
        },
        issuer: String::new(),
        purpose: crate::context::Purpose::Treatment,
        outcome: crate::audit::AuditOutcome::Success,
        patients: Vec::new(),
        entity: None,
        query: Some(format!(
            "AuditEvent?date=lt{}",
            crate::stamp::format_instant(cutoff)
        )),
        detail: Vec::new(),
        request_id: ResourceId::generate().to_string(),
    };
    Ok(store.purge_access_log(cutoff, log_entry(&record)).await?)
}

/// Writes the AuditEvent for `record` inside the caller's transaction (a write and its log
/// commit together).
pub async fn stage_audit_event(
    tx: &mut dyn StoreTx,
    record: &AuditRecord,
) -> Result<(), CoreError> {
    tx.append_access_log(vec![log_entry(record)]).await?;
    Ok(())
}

/// Stamps a server-built resource as version 1 under `id`, with its index rows. Not
/// validated at run time: the builders' output is fixed in shape and validated by their
/// tests, and a parse per audited read would cost more than the read itself.
pub(crate) fn first_version(
    resource_type: ResourceType,
    id: ResourceId,
    resource: Value,
) -> Result<NewVersion, CoreError> {
    let Value::Object(map) = resource else {
        return Err(CoreError::bad_request(
            "a built resource must be a JSON object",
        ));
    };
    let last_updated = now();
    let stamped = stamp(map, &id, VersionId::FIRST, last_updated);
    let index = index_rows(resource_type, &stamped);
    let body = serde_json::to_string(&stamped)
        .map_err(|e| CoreError::Store(StoreError::Corrupt(e.to_string())))?;
    Ok(NewVersion {
        resource_type,
        id,
        version_id: VersionId::FIRST,
        last_updated,
        body: Some(body),
        index,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;
    use paraply_search::SearchQuery;
    use paraply_store::{
        AccessLogPage, AccessLogQuery, HistoryPage, HistoryQuery, PoolStatus, Purge, SearchPage,
        StoredResource, Verification,
    };
    use paraply_store_sql::{SqliteOptions, SqliteStore};
    use time::OffsetDateTime;

    use super::*;
    use crate::audit::tests::record;

    /// A fresh SQLite database in a folder of its own; the folder is removed on drop.
    pub(crate) struct TempDb {
        pub(crate) store: Arc<dyn Store>,
        dir: PathBuf,
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    pub(crate) async fn sqlite() -> TempDb {
        let dir =
            std::env::temp_dir().join(format!("paraply-core-audit-{}", ResourceId::generate()));
        let url = format!("sqlite://{}", dir.join("paraply.db").display());
        let store = SqliteStore::open(&url, SqliteOptions::default())
            .await
            .unwrap();
        TempDb {
            store: Arc::new(store),
            dir,
        }
    }

    /// Counts transactions; begins slowly (like a busy disk) so concurrent records queue
    /// up, or fails every transaction.
    struct Probe {
        inner: Arc<dyn Store>,
        transactions: AtomicUsize,
        fail: bool,
    }

    #[async_trait]
    impl Store for Probe {
        async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
            self.transactions.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                return Err(StoreError::Database("disk full".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.inner.begin().await
        }
        async fn read(
            &self,
            resource_type: ResourceType,
            id: &ResourceId,
        ) -> Result<Option<StoredResource>, StoreError> {
            self.inner.read(resource_type, id).await
        }
        async fn vread(
            &self,
            resource_type: ResourceType,
            id: &ResourceId,
            version_id: VersionId,
        ) -> Result<Option<StoredResource>, StoreError> {
            self.inner.vread(resource_type, id, version_id).await
        }
        async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, StoreError> {
            self.inner.history(query).await
        }
        async fn search(&self, query: &SearchQuery) -> Result<SearchPage, StoreError> {
            self.inner.search(query).await
        }
        async fn visible(
            &self,
            resource_type: ResourceType,
            id: &ResourceId,
            restriction: &paraply_search::Restriction,
        ) -> Result<bool, StoreError> {
            self.inner.visible(resource_type, id, restriction).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.inner.ping().await
        }
        async fn maintain_index(
            &self,
        ) -> Result<Box<dyn paraply_store::IndexMaintenance>, StoreError> {
            self.inner.maintain_index().await
        }
        fn pool_status(&self) -> Vec<PoolStatus> {
            self.inner.pool_status()
        }
        async fn search_access_log(
            &self,
            query: &AccessLogQuery,
        ) -> Result<AccessLogPage, StoreError> {
            self.inner.search_access_log(query).await
        }
        async fn verify_access_log(&self) -> Result<Verification, StoreError> {
            self.inner.verify_access_log().await
        }
        async fn purge_access_log(
            &self,
            cutoff: OffsetDateTime,
            entry: AccessLogEntry,
        ) -> Result<Purge, StoreError> {
            self.inner.purge_access_log(cutoff, entry).await
        }
        fn facts_at(
            &self,
            kind: &'static str,
            at: OffsetDateTime,
        ) -> futures::stream::BoxStream<'_, Result<paraply_store::FactPage, StoreError>> {
            self.inner.facts_at(kind, at)
        }
    }

    async fn events_of(store: &dyn Store, patient: &str) -> Vec<Value> {
        let reference = format!("Patient/{patient}");
        let mut query = SearchQuery::parse(
            ResourceType::AuditEvent,
            [("patient", reference.as_str()), ("date", "ge2020-01-01")],
        )
        .unwrap();
        query.count = 1000;
        let page = crate::audit_search::search(store, &query).await.unwrap();
        page.matches
            .iter()
            .map(|m| serde_json::from_str(m.resource.body.as_deref().unwrap()).unwrap())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_records_share_transactions_and_are_all_findable_once_answered() {
        let db = sqlite().await;
        let probe = Arc::new(Probe {
            inner: db.store.clone(),
            transactions: AtomicUsize::new(0),
            fail: false,
        });
        let log = AuditLog::start(probe.clone());
        const N: usize = 100;
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut r = record(&format!("p{}", i % 10), OffsetDateTime::now_utc());
                    r.request_id = format!("req-{i}");
                    log.record(r).await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let transactions = probe.transactions.load(Ordering::SeqCst);
        assert!(
            transactions < N / 4,
            "{transactions} transactions for {N} events"
        );
        // Answered means committed: every event is found by AuditEvent?patient=&date=.
        let mut request_ids = Vec::new();
        for p in 0..10 {
            let events = events_of(db.store.as_ref(), &format!("p{p}")).await;
            assert_eq!(events.len(), N / 10);
            for event in events {
                paraply_fhir::validate(&event).unwrap();
                assert_eq!(event["meta"]["versionId"], "1");
                request_ids.push(event["entity"][2]["what"]["identifier"]["value"].clone());
            }
        }
        request_ids.sort_by_key(|v| v.to_string());
        request_ids.dedup();
        assert_eq!(request_ids.len(), N);
    }

    #[tokio::test]
    async fn when_the_store_fails_every_waiter_gets_an_error() {
        let db = sqlite().await;
        let probe = Arc::new(Probe {
            inner: db.store.clone(),
            transactions: AtomicUsize::new(0),
            fail: true,
        });
        let log = AuditLog::start(probe);
        let results = futures_join(&log, 5).await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(CoreError::Store(_))))
        );
        assert!(events_of(db.store.as_ref(), "p1").await.is_empty());
    }

    async fn futures_join(log: &AuditLog, n: usize) -> Vec<Result<(), CoreError>> {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let log = log.clone();
                tokio::spawn(
                    async move { log.record(record("p1", OffsetDateTime::now_utc())).await },
                )
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    }

    #[tokio::test]
    async fn staged_events_and_provenance_commit_or_roll_back_with_the_write() {
        let db = sqlite().await;
        let r = record("p7", OffsetDateTime::now_utc());
        let mut tx = db.store.begin().await.unwrap();
        stage_audit_event(tx.as_mut(), &r).await.unwrap();
        drop(tx);
        assert!(events_of(db.store.as_ref(), "p7").await.is_empty());

        let mut tx = db.store.begin().await.unwrap();
        stage_audit_event(tx.as_mut(), &r).await.unwrap();
        crate::provenance::stage_provenance(
            tx.as_mut(),
            (
                ResourceType::CarePlan,
                &"plan-1".parse().unwrap(),
                VersionId::FIRST,
            ),
            crate::provenance::ProvenanceActivity::Create,
            &r.agent,
            r.recorded,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(events_of(db.store.as_ref(), "p7").await.len(), 1);
        let query =
            SearchQuery::parse(ResourceType::Provenance, [("target", "CarePlan/plan-1")]).unwrap();
        let provenances = db.store.search(&query).await.unwrap();
        assert_eq!(provenances.matches.len(), 1);
    }
}
