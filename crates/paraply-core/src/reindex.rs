//! Brings a database's search index up to date with the parameter registry, before a server
//! answers requests: a search must never miss a resource because its rows were extracted
//! by an older registry (a parameter added since, removed, or defined differently).
//!
//! The store records the definition each type's rows follow ([`param_definitions`]). For
//! every type whose recorded definitions differ from the registry's, the rows of the
//! differing parameters only are re-extracted from the current versions, in batches, and the
//! type's new definitions are recorded once its walk is done: a reindex interrupted halfway
//! starts that type again on the next start. One node at a time holds the store's
//! maintenance turn, so nodes starting together find the work done by the first.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use paraply_fhir::ResourceType;
use paraply_search::{IndexRow, ParamDefinition, param_definitions, param_rows};
use paraply_store::{CurrentVersion, IndexMaintenance, Store, StoreError};
use serde_json::Value;

use crate::CoreError;

/// Versions per batch: each batch is one transaction, short enough not to hold up writers
/// (SQLite has one) and large enough that statements, not round trips, dominate.
const BATCH: u32 = 1000;

/// Progress lines of a long walk come at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// One resource type whose index rows were brought up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reindexed {
    pub resource_type: ResourceType,
    /// The parameters whose rows were replaced: added, removed or changed since.
    pub params: Vec<String>,
    /// How many current resources were walked.
    pub resources: u64,
}

/// Re-extracts every stale parameter's rows, waiting first for any other node doing the
/// same. Returns the types it brought up to date (none when the database already was).
pub async fn reindex(store: &dyn Store) -> Result<Vec<Reindexed>, CoreError> {
    reindex_in_batches(store, BATCH).await
}

async fn reindex_in_batches(store: &dyn Store, batch: u32) -> Result<Vec<Reindexed>, CoreError> {
    let mut turn = store.maintain_index().await?;
    let mut recorded: HashMap<ResourceType, HashMap<String, String>> = HashMap::new();
    for row in turn.recorded_definitions().await? {
        recorded
            .entry(row.resource_type)
            .or_default()
            .insert(row.param, row.definition);
    }
    let mut done = Vec::new();
    // The access log is not stored as AuditEvent resources and has no index rows
    // (`paraply_store::AccessLogEntry` keeps its own search keys).
    let indexed = ResourceType::ALL
        .iter()
        .filter(|t| **t != ResourceType::AuditEvent);
    for &resource_type in indexed {
        let wanted = param_definitions(resource_type);
        let stale = stale_params(&wanted, recorded.get(&resource_type));
        if stale.is_empty() {
            continue;
        }
        let resources = reindex_type(&mut *turn, resource_type, &stale, batch).await?;
        turn.record_definitions(resource_type, &wanted).await?;
        done.push(Reindexed {
            resource_type,
            params: stale.into_iter().collect(),
            resources,
        });
    }
    if done.is_empty() {
        tracing::debug!("search index is up to date");
    }
    Ok(done)
}

/// The parameters whose rows may not match `wanted`: added, removed or defined differently
/// since `recorded`.
fn stale_params(
    wanted: &[ParamDefinition],
    recorded: Option<&HashMap<String, String>>,
) -> BTreeSet<String> {
    let empty = HashMap::new();
    let recorded = recorded.unwrap_or(&empty);
    let changed = wanted
        .iter()
        .filter(|def| recorded.get(def.param) != Some(&def.definition))
        .map(|def| def.param.to_owned());
    let removed = recorded
        .keys()
        .filter(|param| !wanted.iter().any(|def| def.param == param.as_str()))
        .cloned();
    changed.chain(removed).collect()
}

/// Replaces the rows of `params` of every current resource of `resource_type`, batch by
/// batch in `seq` order; returns how many resources it walked.
async fn reindex_type(
    turn: &mut dyn IndexMaintenance,
    resource_type: ResourceType,
    params: &BTreeSet<String>,
    batch_size: u32,
) -> Result<u64, CoreError> {
    let total = turn.count_current(resource_type).await?;
    if total == 0 {
        // Nothing to walk (but a resource written meanwhile was indexed by its writer).
        return Ok(0);
    }
    let names: Vec<&str> = params.iter().map(String::as_str).collect();
    let listed = names.join(",");
    tracing::info!(%resource_type, params = %listed, total, "reindexing");
    let started = Instant::now();
    let mut logged = started;
    let mut walked: u64 = 0;
    let mut after = None;
    loop {
        let batch = turn
            .current_versions(resource_type, after, batch_size)
            .await?;
        let Some(last) = batch.last() else {
            break;
        };
        after = Some(last.seq);
        let rows = extract(resource_type, &names, &batch)?;
        turn.replace_rows(resource_type, &names, &rows).await?;
        walked += batch.len() as u64;
        if logged.elapsed() >= PROGRESS_EVERY {
            logged = Instant::now();
            progress(resource_type, walked, total, started, "reindexing");
        }
    }
    progress(resource_type, walked, total, started, "reindexed");
    Ok(walked)
}

fn progress(resource_type: ResourceType, done: u64, total: u64, started: Instant, message: &str) {
    let seconds = started.elapsed().as_secs_f64();
    let per_second = if seconds > 0.0 {
        (done as f64 / seconds).round()
    } else {
        0.0
    };
    tracing::info!(%resource_type, done, total, per_second, "{message}");
}

/// The rows of `params` of each version of the batch.
fn extract(
    resource_type: ResourceType,
    params: &[&str],
    batch: &[CurrentVersion],
) -> Result<Vec<(i64, Vec<IndexRow>)>, StoreError> {
    batch
        .iter()
        .map(|version| {
            // Stored bodies were validated on write; one that is not JSON is damage.
            let json: Value = serde_json::from_str(&version.body)
                .map_err(|_| StoreError::Corrupt("a stored resource body is not JSON".into()))?;
            Ok((version.seq, param_rows(resource_type, params, &json)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use paraply_search::SearchQuery;
    use serde_json::json;

    use super::*;
    use crate::audit_log::tests::sqlite;
    use crate::{Fhir, FhirRequest, Method};

    /// How many Patients `gender=<gender>` finds.
    async fn by_gender(store: &dyn Store, gender: &str) -> usize {
        let mut query = SearchQuery::parse(ResourceType::Patient, [("gender", gender)]).unwrap();
        query.count = 100;
        store.search(&query).await.unwrap().matches.len()
    }

    async fn create_patients(store: Arc<dyn Store>, count: usize) {
        let fhir = Fhir::new(store);
        for _ in 0..count {
            let mut request = FhirRequest::new(Method::Post, "Patient");
            request.body = Some(json!({"resourceType": "Patient", "gender": "male"}));
            fhir.handle(request).await.unwrap();
        }
    }

    /// Makes the database look as if `gender` had been added to the registry after its
    /// Patients were written: no rows, and recorded definitions without it.
    async fn forget_gender(store: &dyn Store, rows: Vec<IndexRow>) {
        let mut turn = store.maintain_index().await.unwrap();
        let versions = turn
            .current_versions(ResourceType::Patient, None, 100)
            .await
            .unwrap();
        let rows: Vec<_> = versions.iter().map(|v| (v.seq, rows.clone())).collect();
        turn.replace_rows(ResourceType::Patient, &["gender"], &rows)
            .await
            .unwrap();
        let mut definitions = param_definitions(ResourceType::Patient);
        definitions.retain(|d| d.param != "gender");
        turn.record_definitions(ResourceType::Patient, &definitions)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_new_database_is_recorded_once_and_then_kept_up_to_date_by_writes() {
        let db = sqlite().await;
        let first = reindex(&*db.store).await.unwrap();
        assert_eq!(first.len(), ResourceType::ALL.len() - 1);
        assert!(first.iter().all(|r| r.resources == 0));
        create_patients(db.store.clone(), 3).await;
        assert_eq!(reindex(&*db.store).await.unwrap(), Vec::new());
        assert_eq!(by_gender(&*db.store, "male").await, 3);
    }

    #[tokio::test]
    async fn missing_rows_of_an_added_parameter_are_extracted_in_batches_once() {
        let db = sqlite().await;
        reindex(&*db.store).await.unwrap();
        create_patients(db.store.clone(), 5).await;
        forget_gender(&*db.store, Vec::new()).await;
        assert_eq!(
            by_gender(&*db.store, "male").await,
            0,
            "the bug being fixed"
        );

        let done = reindex_in_batches(&*db.store, 2).await.unwrap();
        assert_eq!(
            done,
            [Reindexed {
                resource_type: ResourceType::Patient,
                params: vec!["gender".into()],
                resources: 5,
            }]
        );
        assert_eq!(by_gender(&*db.store, "male").await, 5);
        assert_eq!(reindex(&*db.store).await.unwrap(), Vec::new());
    }

    #[tokio::test]
    async fn stale_rows_of_a_changed_parameter_are_replaced() {
        let db = sqlite().await;
        reindex(&*db.store).await.unwrap();
        create_patients(db.store.clone(), 2).await;
        // Rows from a definition that read another element, recorded under an old text.
        let female = json!({"resourceType": "Patient", "gender": "female"});
        forget_gender(
            &*db.store,
            param_rows(ResourceType::Patient, &["gender"], &female),
        )
        .await;
        let mut turn = db.store.maintain_index().await.unwrap();
        let mut definitions = param_definitions(ResourceType::Patient);
        definitions.retain(|d| d.param != "gender");
        definitions.push(ParamDefinition {
            param: "gender",
            definition: "0;token;sex".into(),
        });
        turn.record_definitions(ResourceType::Patient, &definitions)
            .await
            .unwrap();
        drop(turn);
        assert_eq!(by_gender(&*db.store, "female").await, 2);

        let done = reindex(&*db.store).await.unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].params, ["gender"]);
        assert_eq!(by_gender(&*db.store, "female").await, 0);
        assert_eq!(by_gender(&*db.store, "male").await, 2);
    }

    fn def(param: &'static str, definition: &str) -> ParamDefinition {
        ParamDefinition {
            param,
            definition: definition.to_owned(),
        }
    }

    #[test]
    fn added_removed_and_changed_parameters_are_stale_and_others_not() {
        let wanted = [def("same", "1"), def("changed", "2"), def("added", "1")];
        let recorded: HashMap<String, String> = [("same", "1"), ("changed", "1"), ("gone", "1")]
            .into_iter()
            .map(|(p, d)| (p.to_owned(), d.to_owned()))
            .collect();
        let stale: Vec<String> = stale_params(&wanted, Some(&recorded)).into_iter().collect();
        assert_eq!(stale, ["added", "changed", "gone"]);
        // Nothing recorded: every parameter.
        assert_eq!(stale_params(&wanted, None).len(), 3);
        let current: HashMap<String, String> = wanted
            .iter()
            .map(|d| (d.param.to_owned(), d.definition.clone()))
            .collect();
        assert!(stale_params(&wanted, Some(&current)).is_empty());
    }
}
