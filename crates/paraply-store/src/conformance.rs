//! The storage conformance suite: the behaviour every [`Store`] backend must show.
//!
//! Each case is a `pub async fn` taking a fresh, empty store. A backend runs them all with
//! one macro call in its test file; `harness` is an async function that creates a fresh
//! store, runs the case it is given on it and cleans up:
//!
//! ```ignore
//! async fn harness<F, Fut>(case: F)
//! where
//!     F: FnOnce(Arc<dyn Store>) -> Fut,
//!     Fut: Future<Output = ()> + Send + 'static,
//! { /* create store, case(store).await, drop it */ }
//!
//! paraply_store::store_conformance_tests!(harness);
//! ```
//!
//! The test crate needs `tokio` (with `macros` and `rt-multi-thread`) as a dev-dependency.

mod access_log;

pub use access_log::*;

use std::collections::BTreeSet;
use std::sync::Arc;

use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::{
    ParamDefinition, Restriction, SearchQuery, SortValue, StaffScope, index_rows, param_rows,
};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::{
    CurrentVersion, Fact, HistoryCursor, HistoryQuery, HistoryScope, NewVersion,
    RecordedDefinition, SearchPage, Store, StoreError, StoredResource,
};

/// Expands to one `#[tokio::test]` per conformance case, each calling `$harness(case)`.
#[macro_export]
macro_rules! store_conformance_tests {
    ($harness:path) => {
        $crate::store_conformance_tests!(@cases $harness;
            created_resource_reads_back_byte_for_byte,
            unknown_resource_and_unknown_version_read_as_none,
            update_with_the_next_version_keeps_every_version_readable,
            second_writer_of_the_same_version_gets_a_conflict,
            create_of_an_existing_id_gets_a_conflict,
            write_that_skips_a_version_gets_a_conflict,
            deletion_reads_back_as_a_marker_and_history_keeps_every_version,
            recreate_after_delete_continues_the_version_sequence,
            dropped_transaction_leaves_nothing_behind,
            transaction_reads_and_searches_its_own_uncommitted_writes,
            several_writes_in_one_transaction_commit_together,
            many_writes_in_one_transaction_read_back_and_are_indexed,
            search_by_id_finds_only_current_resources_of_the_type,
            search_by_identifier_matches_every_token_form,
            search_clauses_are_combined_with_and,
            search_does_not_find_deleted_resources,
            update_replaces_the_index_rows,
            search_count_caps_matches_but_total_counts_all,
            search_tokens_strings_and_uris,
            search_token_not_matches_resources_without_the_element,
            search_missing_holds_for_every_kind,
            search_references_by_id_type_and_url,
            search_dates_with_every_prefix_on_ranges,
            search_last_updated_and_quantities_with_prefixes,
            search_chain_follows_references_to_current_targets,
            search_has_finds_resources_referenced_by_matching_sources,
            search_sorts_with_ties_missing_values_and_sort_values,
            search_pages_forward_and_backward_by_cursor,
            search_cursor_stays_correct_when_resources_are_written_between_pages,
            search_includes_and_revincludes_each_resource_once,
            search_iterate_follows_included_resources,
            search_total_is_counted_when_asked_and_free_otherwise,
            search_without_sort_pages_in_write_order_and_loses_nothing_to_updates,
            search_in_a_transaction_sees_its_writes_and_not_replaced_rows,
            consent_provision_type_is_searchable,
            restricted_patient_sees_only_own_data,
            restricted_relative_needs_an_active_permit_consent_naming_them,
            restricted_guardian_sees_a_child_until_its_13th_birthday,
            restricted_staff_needs_a_care_relationship_and_respects_a_sparr,
            restricted_staff_keep_to_their_care_provider_unless_named_or_consented,
            restricted_staff_in_an_emergency_see_every_patient,
            history_lists_versions_newest_first_for_instance_type_and_system,
            history_since_keeps_versions_written_at_or_after_the_instant,
            history_pages_by_cursor_with_count_and_total,
            history_cursor_stays_correct_when_versions_are_written_between_pages,
            concurrent_writers_get_one_winner_per_version_and_lose_no_update,
            index_maintenance_walks_current_versions_of_a_type_in_seq_batches,
            index_maintenance_replaces_only_the_given_parameters_rows_of_current_versions,
            index_maintenance_records_definitions_per_type,
            index_maintenance_waits_for_a_write_in_progress_and_skips_the_version_it_retired,
            serialize_on_the_same_key_waits_until_the_holder_commits_and_then_sees_its_writes,
            serialize_on_different_keys_waits_only_where_the_database_has_one_writer,
            ping_succeeds,
            access_log_entries_are_found_by_each_key_and_paged,
            access_log_searches_apply_the_access_restriction,
            access_log_entries_commit_or_roll_back_with_their_transaction,
            access_log_chains_verify_after_concurrent_appends,
            access_log_purge_deletes_old_entries_records_itself_and_verify_still_passes,
            facts_read_back_as_they_stood_at_each_instant_and_roll_back_with_their_transaction,
        );
    };
    (@cases $harness:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $harness($crate::conformance::$case).await;
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------
// Test data helpers

fn id(s: &str) -> ResourceId {
    s.parse().expect("valid test id")
}

fn v(n: u64) -> VersionId {
    VersionId::new(n).expect("valid test version")
}

/// A fixed start instant with a microsecond part, so precision loss would show.
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000).expect("valid instant")
}

fn at(seconds: i64) -> OffsetDateTime {
    t0() + Duration::seconds(seconds)
}

/// A Patient body with the given identifiers (`(system, value)`), in a fixed key order with a
/// decimal that JSON re-serialisation would change.
fn patient_body(id: &str, identifiers: &[(Option<&str>, &str)]) -> String {
    let identifiers: Vec<String> = identifiers
        .iter()
        .map(|(system, value)| match system {
            Some(system) => format!(r#"{{"system":"{system}","value":"{value}"}}"#),
            None => format!(r#"{{"value":"{value}"}}"#),
        })
        .collect();
    format!(
        r#"{{"resourceType":"Patient","id":"{id}","zeta":1.50,"identifier":[{}],"active":true}}"#,
        identifiers.join(",")
    )
}

/// A version of a Patient, indexed the way the domain layer indexes it.
fn patient(
    id_: &str,
    version: u64,
    written: OffsetDateTime,
    identifiers: &[(Option<&str>, &str)],
) -> NewVersion {
    let body = patient_body(id_, identifiers);
    let json: serde_json::Value = serde_json::from_str(&body).expect("valid test JSON");
    NewVersion {
        resource_type: ResourceType::Patient,
        id: id(id_),
        version_id: v(version),
        last_updated: written,
        body: Some(body),
        index: index_rows(ResourceType::Patient, &json),
    }
}

fn deletion(
    resource_type: ResourceType,
    id_: &str,
    version: u64,
    written: OffsetDateTime,
) -> NewVersion {
    NewVersion {
        resource_type,
        id: id(id_),
        version_id: v(version),
        last_updated: written,
        body: None,
        index: Vec::new(),
    }
}

fn organization(id_: &str, version: u64, written: OffsetDateTime) -> NewVersion {
    NewVersion {
        resource_type: ResourceType::Organization,
        id: id(id_),
        version_id: v(version),
        last_updated: written,
        body: Some(format!(r#"{{"resourceType":"Organization","id":"{id_}"}}"#)),
        index: Vec::new(),
    }
}

/// Writes one version in its own transaction.
async fn write(store: &dyn Store, version: NewVersion) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    tx.write(version).await?;
    tx.commit().await
}

async fn write_ok(store: &dyn Store, version: NewVersion) {
    write(store, version).await.expect("write succeeds");
}

fn assert_conflict(result: Result<(), StoreError>, id_: &str) {
    match result {
        Err(StoreError::VersionConflict {
            resource_type,
            id: got,
        }) => {
            assert_eq!(resource_type, ResourceType::Patient);
            assert_eq!(got.as_str(), id_);
        }
        other => panic!("expected a version conflict on {id_}, got {other:?}"),
    }
}

fn patient_query(pairs: &[(&str, &str)]) -> SearchQuery {
    SearchQuery::parse(ResourceType::Patient, pairs.iter().copied()).expect("valid test query")
}

/// The ids a search finds, in the order returned, after checking `total` agrees.
async fn search_ids(store: &dyn Store, pairs: &[(&str, &str)]) -> Vec<String> {
    let mut query = patient_query(pairs);
    query.count = 100;
    let page = store.search(&query).await.expect("search succeeds");
    assert_eq!(
        page.total,
        Some(page.matches.len() as u64),
        "total of {pairs:?}"
    );
    assert!(page.matches.iter().all(|m| !m.resource.is_deleted()));
    ids_of(&page)
}

/// The ids of a page's matches, in order.
fn ids_of(page: &SearchPage) -> Vec<String> {
    page.matches
        .iter()
        .map(|m| m.resource.id.to_string())
        .collect()
}

fn history_query(scope: HistoryScope) -> HistoryQuery {
    HistoryQuery {
        scope,
        since: None,
        count: 100,
        after: None,
    }
}

/// `(id, version)` of each entry, in order.
async fn history_of(store: &dyn Store, query: HistoryQuery) -> Vec<(String, u64)> {
    let page = store.history(&query).await.expect("history succeeds");
    page.entries
        .iter()
        .map(|e| (e.id.to_string(), e.version_id.get()))
        .collect()
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(i, n)| (i.to_string(), *n)).collect()
}

// ---------------------------------------------------------------------------------------
// Cases

pub async fn created_resource_reads_back_byte_for_byte(store: Arc<dyn Store>) {
    let version = patient("p1", 1, t0(), &[(Some("http://a"), "1")]);
    write_ok(&*store, version.clone()).await;

    let expected = StoredResource {
        resource_type: ResourceType::Patient,
        id: id("p1"),
        version_id: v(1),
        last_updated: t0(),
        body: version.body.clone(),
    };
    let read = store.read(ResourceType::Patient, &id("p1")).await.unwrap();
    assert_eq!(read.as_ref(), Some(&expected));
    let body = read.and_then(|r| r.body).unwrap();
    assert!(body.contains(r#""zeta":1.50,"identifier""#), "{body}");
    assert_eq!(
        store
            .vread(ResourceType::Patient, &id("p1"), v(1))
            .await
            .unwrap(),
        Some(expected)
    );
}

pub async fn unknown_resource_and_unknown_version_read_as_none(store: Arc<dyn Store>) {
    write_ok(&*store, patient("p1", 1, t0(), &[])).await;
    assert_eq!(
        store
            .read(ResourceType::Patient, &id("nope"))
            .await
            .unwrap(),
        None
    );
    // Same id, other type.
    assert_eq!(
        store
            .read(ResourceType::Organization, &id("p1"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .vread(ResourceType::Patient, &id("p1"), v(2))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .vread(ResourceType::Patient, &id("nope"), v(1))
            .await
            .unwrap(),
        None
    );
}

pub async fn update_with_the_next_version_keeps_every_version_readable(store: Arc<dyn Store>) {
    let v1 = patient("p1", 1, at(0), &[(Some("http://a"), "1")]);
    let v2 = patient("p1", 2, at(1), &[(Some("http://a"), "2")]);
    write_ok(&*store, v1.clone()).await;
    write_ok(&*store, v2.clone()).await;

    let current = store
        .read(ResourceType::Patient, &id("p1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.version_id, v(2));
    assert_eq!(current.body, v2.body);
    assert_eq!(current.last_updated, at(1));
    let old = store
        .vread(ResourceType::Patient, &id("p1"), v(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((old.body, old.last_updated), (v1.body, at(0)));
    let new = store
        .vread(ResourceType::Patient, &id("p1"), v(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.body, v2.body);
}

pub async fn second_writer_of_the_same_version_gets_a_conflict(store: Arc<dyn Store>) {
    write_ok(&*store, patient("p1", 1, at(0), &[])).await;
    write_ok(&*store, patient("p1", 2, at(1), &[(None, "first")])).await;
    let second = write(&*store, patient("p1", 2, at(2), &[(None, "second")])).await;
    assert_conflict(second, "p1");

    let current = store
        .read(ResourceType::Patient, &id("p1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.version_id, v(2));
    assert!(current.body.unwrap().contains("first"));
    assert_eq!(
        search_ids(&*store, &[("identifier", "second")]).await,
        Vec::<String>::new()
    );
}

pub async fn create_of_an_existing_id_gets_a_conflict(store: Arc<dyn Store>) {
    write_ok(&*store, patient("p1", 1, at(0), &[])).await;
    assert_conflict(write(&*store, patient("p1", 1, at(1), &[])).await, "p1");

    write_ok(&*store, patient("p1", 2, at(2), &[])).await;
    assert_conflict(write(&*store, patient("p1", 1, at(3), &[])).await, "p1");

    // A deleted id still exists: its next version is 4, not a new version 1.
    write_ok(&*store, deletion(ResourceType::Patient, "p1", 3, at(4))).await;
    assert_conflict(write(&*store, patient("p1", 1, at(5), &[])).await, "p1");
    let page = store
        .history(&history_query(HistoryScope::Instance(
            ResourceType::Patient,
            id("p1"),
        )))
        .await
        .unwrap();
    assert_eq!(page.total, 3);
}

pub async fn write_that_skips_a_version_gets_a_conflict(store: Arc<dyn Store>) {
    assert_conflict(write(&*store, patient("p1", 2, at(0), &[])).await, "p1");
    assert_eq!(
        store.read(ResourceType::Patient, &id("p1")).await.unwrap(),
        None
    );

    write_ok(&*store, patient("p1", 1, at(1), &[])).await;
    assert_conflict(write(&*store, patient("p1", 3, at(2), &[])).await, "p1");
    let current = store
        .read(ResourceType::Patient, &id("p1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.version_id, v(1));
}

pub async fn deletion_reads_back_as_a_marker_and_history_keeps_every_version(
    store: Arc<dyn Store>,
) {
    write_ok(&*store, patient("p1", 1, at(0), &[])).await;
    write_ok(&*store, patient("p1", 2, at(1), &[])).await;
    write_ok(&*store, deletion(ResourceType::Patient, "p1", 3, at(2))).await;

    let current = store
        .read(ResourceType::Patient, &id("p1"))
        .await
        .unwrap()
        .unwrap();
    assert!(current.is_deleted());
    assert_eq!((current.version_id, current.last_updated), (v(3), at(2)));
    let old = store
        .vread(ResourceType::Patient, &id("p1"), v(2))
        .await
        .unwrap()
        .unwrap();
    assert!(!old.is_deleted());

    let page = store
        .history(&history_query(HistoryScope::Instance(
            ResourceType::Patient,
            id("p1"),
        )))
        .await
        .unwrap();
    let deleted: Vec<bool> = page
        .entries
        .iter()
        .map(StoredResource::is_deleted)
        .collect();
    assert_eq!(deleted, [true, false, false]);
    assert_eq!(page.total, 3);
}

pub async fn recreate_after_delete_continues_the_version_sequence(store: Arc<dyn Store>) {
    write_ok(&*store, patient("p1", 1, at(0), &[(None, "x")])).await;
    write_ok(&*store, deletion(ResourceType::Patient, "p1", 2, at(1))).await;
    write_ok(&*store, patient("p1", 3, at(2), &[(None, "x")])).await;

    let current = store
        .read(ResourceType::Patient, &id("p1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.version_id, v(3));
    assert!(!current.is_deleted());
    assert_eq!(search_ids(&*store, &[("identifier", "x")]).await, ["p1"]);
}

pub async fn dropped_transaction_leaves_nothing_behind(store: Arc<dyn Store>) {
    write_ok(&*store, patient("p1", 1, at(0), &[(None, "old")])).await;
    {
        let mut tx = store.begin().await.unwrap();
        tx.write(patient("p2", 1, at(1), &[(None, "new")]))
            .await
            .unwrap();
        tx.write(patient("p1", 2, at(1), &[(None, "changed")]))
            .await
            .unwrap();
        // Dropped here without commit.
    }

    assert_eq!(
        store.read(ResourceType::Patient, &id("p2")).await.unwrap(),
        None
    );
    let p1 = store
        .read(ResourceType::Patient, &id("p1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p1.version_id, v(1));
    assert_eq!(
        search_ids(&*store, &[("identifier", "new")]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        search_ids(&*store, &[("identifier", "changed")]).await,
        Vec::<String>::new()
    );
    assert_eq!(search_ids(&*store, &[("identifier", "old")]).await, ["p1"]);
    let page = store
        .history(&history_query(HistoryScope::System))
        .await
        .unwrap();
    assert_eq!(page.total, 1);

    // Nothing is left locked: the same versions can be written now.
    write_ok(&*store, patient("p2", 1, at(2), &[])).await;
    write_ok(&*store, patient("p1", 2, at(2), &[])).await;
}

pub async fn transaction_reads_and_searches_its_own_uncommitted_writes(store: Arc<dyn Store>) {
    let mut tx = store.begin().await.unwrap();
    tx.write(patient("p1", 1, at(0), &[(Some("http://a"), "1")]))
        .await
        .unwrap();

    let own = tx
        .read(ResourceType::Patient, &id("p1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(own.version_id, v(1));
    let found = tx
        .search(&patient_query(&[("identifier", "http://a|1")]))
        .await
        .unwrap();
    assert_eq!(found.total, Some(1));
    assert_eq!(found.matches[0].resource.id, id("p1"));
    // Others do not see it before the commit.
    assert_eq!(
        store.read(ResourceType::Patient, &id("p1")).await.unwrap(),
        None
    );

    tx.commit().await.unwrap();
    assert!(
        store
            .read(ResourceType::Patient, &id("p1"))
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn several_writes_in_one_transaction_commit_together(store: Arc<dyn Store>) {
    let mut tx = store.begin().await.unwrap();
    tx.write(patient("p1", 1, at(0), &[(None, "a")]))
        .await
        .unwrap();
    tx.write(patient("p1", 2, at(0), &[(None, "b")]))
        .await
        .unwrap();
    tx.write(organization("o1", 1, at(0))).await.unwrap();
    tx.commit().await.unwrap();

    let p1 = store
        .read(ResourceType::Patient, &id("p1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p1.version_id, v(2));
    assert!(
        store
            .read(ResourceType::Organization, &id("o1"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(search_ids(&*store, &[("identifier", "b")]).await, ["p1"]);
    assert_eq!(
        search_ids(&*store, &[("identifier", "a")]).await,
        Vec::<String>::new()
    );
}

pub async fn many_writes_in_one_transaction_read_back_and_are_indexed(store: Arc<dyn Store>) {
    // More than one multi-row statement's worth, and two types, so every chunk path runs.
    let versions: Vec<NewVersion> = (0..300)
        .map(|n| {
            patient(
                &format!("n{n}"),
                1,
                at(n),
                &[(Some("http://batch"), &format!("{n}"))],
            )
        })
        .chain([organization("o-batch", 1, at(0))])
        .collect();
    let mut tx = store.begin().await.unwrap();
    for version in versions {
        tx.write(version).await.unwrap();
    }
    tx.commit().await.unwrap();
    let read = store
        .read(ResourceType::Patient, &id("n299"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.version_id, v(1));
    assert!(read.body.is_some_and(|b| b.contains("n299")));
    assert_eq!(
        search_ids(&*store, &[("identifier", "http://batch|257")]).await,
        ["n257"]
    );
    assert!(
        store
            .read(ResourceType::Organization, &id("o-batch"))
            .await
            .unwrap()
            .is_some()
    );

    // Updates, deletions and creations together: each replaces exactly its own index rows.
    let mut tx = store.begin().await.unwrap();
    let targets: Vec<(ResourceType, ResourceId)> = (0..200)
        .map(|n| (ResourceType::Patient, id(&format!("n{n}"))))
        .chain([(ResourceType::Patient, id("absent"))])
        .collect();
    let current = tx.read_many(&targets).await.unwrap();
    assert_eq!(current.len(), 201);
    assert!(
        current[..200]
            .iter()
            .all(|c| c.as_ref().is_some_and(|c| c.version_id == v(1)))
    );
    assert_eq!(current[200], None);
    for n in 0..200 {
        let name = format!("n{n}");
        let next = if n % 2 == 0 {
            patient(&name, 2, at(1), &[(Some("http://batch2"), &format!("{n}"))])
        } else {
            deletion(ResourceType::Patient, &name, 2, at(1))
        };
        tx.write(next).await.unwrap();
    }
    tx.write(patient(
        "absent",
        1,
        at(1),
        &[(Some("http://batch2"), "new")],
    ))
    .await
    .unwrap();
    // Reads in the transaction see the writes not yet sent; searches too.
    let own = tx
        .read(ResourceType::Patient, &id("n4"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(own.version_id, v(2));
    let found = tx
        .search(&patient_query(&[("identifier", "http://batch2|4")]))
        .await
        .unwrap();
    assert_eq!(ids_of(&found), ["n4"]);
    tx.commit().await.unwrap();
    assert_eq!(
        search_ids(&*store, &[("identifier", "http://batch|4")]).await,
        Vec::<String>::new(),
        "the replaced version's rows are gone"
    );
    assert_eq!(
        search_ids(&*store, &[("identifier", "http://batch|257")]).await,
        ["n257"],
        "rows of resources not written stay"
    );
    assert_eq!(
        search_ids(&*store, &[("identifier", "http://batch2|5")]).await,
        Vec::<String>::new(),
        "a deletion has no rows"
    );
    assert_eq!(
        search_ids(&*store, &[("identifier", "http://batch2|new")]).await,
        ["absent"]
    );
    let deleted = store
        .read(ResourceType::Patient, &id("n5"))
        .await
        .unwrap()
        .unwrap();
    assert!(deleted.is_deleted() && deleted.version_id == v(2));

    // A resource that exists already: a conflict naming it (when the writes are sent, at
    // the latest on commit), and nothing of the transaction stays.
    let mut tx = store.begin().await.unwrap();
    tx.write(patient("fresh", 1, at(0), &[])).await.unwrap();
    let result = match tx.write(patient("n7", 1, at(0), &[])).await {
        Ok(()) => tx.commit().await,
        Err(error) => Err(error),
    };
    assert_conflict(result, "n7");
    assert!(
        store
            .read(ResourceType::Patient, &id("fresh"))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn search_by_id_finds_only_current_resources_of_the_type(store: Arc<dyn Store>) {
    for name in ["c", "a", "b"] {
        write_ok(&*store, patient(name, 1, at(0), &[])).await;
    }
    write_ok(&*store, patient("a", 2, at(1), &[])).await;
    write_ok(&*store, organization("a", 1, at(0))).await;
    write_ok(&*store, organization("d", 1, at(0))).await;

    // In write order: the update of "a" wrote its current version last.
    assert_eq!(search_ids(&*store, &[("_id", "c,a,d")]).await, ["c", "a"]);
    let a = store.search(&patient_query(&[("_id", "a")])).await.unwrap();
    assert_eq!(a.matches[0].resource.version_id, v(2));
    assert_eq!(a.matches[0].resource.resource_type, ResourceType::Patient);
    // No clauses: every current Patient.
    assert_eq!(search_ids(&*store, &[]).await, ["c", "b", "a"]);
}

pub async fn search_by_identifier_matches_every_token_form(store: Arc<dyn Store>) {
    write_ok(&*store, patient("p1", 1, at(0), &[(Some("http://a"), "1")])).await;
    write_ok(&*store, patient("p2", 1, at(0), &[(None, "1")])).await;
    write_ok(
        &*store,
        patient(
            "p3",
            1,
            at(0),
            &[(Some("http://b"), "2"), (Some("http://a"), "3")],
        ),
    )
    .await;

    let cases: &[(&str, &[&str])] = &[
        ("http://a|1", &["p1"]),
        ("|1", &["p2"]),
        ("http://a|", &["p1", "p3"]),
        ("1", &["p1", "p2"]),
        ("http://b|1", &[]),
        ("http://a|1,http://b|2", &["p1", "p3"]),
        ("|1,http://a|3", &["p2", "p3"]),
        ("9", &[]),
    ];
    for (value, expected) in cases {
        assert_eq!(
            search_ids(&*store, &[("identifier", value)]).await,
            *expected,
            "identifier={value}"
        );
    }
}

pub async fn search_clauses_are_combined_with_and(store: Arc<dyn Store>) {
    write_ok(
        &*store,
        patient(
            "p1",
            1,
            at(0),
            &[(Some("http://a"), "1"), (Some("http://b"), "2")],
        ),
    )
    .await;
    write_ok(&*store, patient("p2", 1, at(0), &[(Some("http://a"), "1")])).await;

    let both = [("identifier", "http://a|1"), ("identifier", "http://b|")];
    assert_eq!(search_ids(&*store, &both).await, ["p1"]);
    let with_id = [("identifier", "1"), ("_id", "p2,p3")];
    assert_eq!(search_ids(&*store, &with_id).await, ["p2"]);
    let none = [("identifier", "http://a|1"), ("_id", "p3")];
    assert_eq!(search_ids(&*store, &none).await, Vec::<String>::new());
}

pub async fn search_does_not_find_deleted_resources(store: Arc<dyn Store>) {
    write_ok(&*store, patient("p1", 1, at(0), &[(None, "x")])).await;
    write_ok(&*store, patient("p2", 1, at(0), &[(None, "x")])).await;
    write_ok(&*store, deletion(ResourceType::Patient, "p1", 2, at(1))).await;

    assert_eq!(search_ids(&*store, &[("identifier", "x")]).await, ["p2"]);
    assert_eq!(search_ids(&*store, &[("_id", "p1,p2")]).await, ["p2"]);
    assert_eq!(search_ids(&*store, &[]).await, ["p2"]);
}

pub async fn update_replaces_the_index_rows(store: Arc<dyn Store>) {
    write_ok(
        &*store,
        patient("p1", 1, at(0), &[(Some("http://a"), "old")]),
    )
    .await;
    write_ok(
        &*store,
        patient("p1", 2, at(1), &[(Some("http://a"), "new")]),
    )
    .await;

    assert_eq!(
        search_ids(&*store, &[("identifier", "http://a|old")]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        search_ids(&*store, &[("identifier", "http://a|new")]).await,
        ["p1"]
    );
    // One index row per value, not one per version.
    assert_eq!(
        search_ids(&*store, &[("identifier", "http://a|")]).await,
        ["p1"]
    );
}

pub async fn search_count_caps_matches_but_total_counts_all(store: Arc<dyn Store>) {
    for name in ["p1", "p2", "p3", "p4", "p5"] {
        write_ok(&*store, patient(name, 1, at(0), &[(None, "x")])).await;
    }
    let page = store
        .search(&patient_query(&[
            ("identifier", "x"),
            ("_count", "2"),
            ("_total", "accurate"),
        ]))
        .await
        .unwrap();
    assert_eq!(ids_of(&page), ["p1", "p2"]);
    assert_eq!((page.total, page.more), (Some(5), true));
}

// ---------------------------------------------------------------------------------------
// Search helpers: resources of any type from JSON, indexed like the domain layer does.

/// Version 1 of `resource_type/id_` with `content` (its `resourceType` and `id` are set).
fn resource(resource_type: ResourceType, id_: &str, content: Value) -> NewVersion {
    versioned(resource_type, id_, 1, at(0), content)
}

fn versioned(
    resource_type: ResourceType,
    id_: &str,
    version: u64,
    written: OffsetDateTime,
    mut content: Value,
) -> NewVersion {
    content["resourceType"] = json!(resource_type.as_str());
    content["id"] = json!(id_);
    NewVersion {
        resource_type,
        id: id(id_),
        version_id: v(version),
        last_updated: written,
        body: Some(content.to_string()),
        index: index_rows(resource_type, &content),
    }
}

fn query_of(resource_type: ResourceType, pairs: &[(&str, &str)]) -> SearchQuery {
    SearchQuery::parse(resource_type, pairs.iter().copied())
        .unwrap_or_else(|e| panic!("valid test query {pairs:?}: {e}"))
}

/// The ids `resource_type?pairs` finds (in write order unless the query sorts), checking
/// that the total agrees and no match is deleted.
async fn find(
    store: &dyn Store,
    resource_type: ResourceType,
    pairs: &[(&str, &str)],
) -> Vec<String> {
    let mut query = query_of(resource_type, pairs);
    query.count = 100;
    let page = store
        .search(&query)
        .await
        .unwrap_or_else(|e| panic!("{resource_type}?{pairs:?}: {e}"));
    assert_eq!(
        page.total,
        Some(page.matches.len() as u64),
        "total of {resource_type}?{pairs:?}"
    );
    assert!(!page.more);
    assert!(page.matches.iter().all(|m| !m.resource.is_deleted()));
    ids_of(&page)
}

/// Asserts each `(query value, expected ids)` of one parameter.
async fn expect_each(
    store: &dyn Store,
    resource_type: ResourceType,
    param: &str,
    cases: &[(&str, &[&str])],
) {
    for (value, expected) in cases {
        assert_eq!(
            find(store, resource_type, &[(param, value)]).await,
            *expected,
            "{resource_type}?{param}={value}"
        );
    }
}

/// `(type, id)` of included resources, sorted.
fn included_of(page: &SearchPage) -> Vec<String> {
    let mut out: Vec<String> = page
        .included
        .iter()
        .map(|r| format!("{}/{}", r.resource_type, r.id))
        .collect();
    out.sort();
    out
}

async fn put_all(store: &dyn Store, versions: Vec<NewVersion>) {
    let mut tx = store.begin().await.expect("begin");
    for version in versions {
        tx.write(version).await.expect("write succeeds");
    }
    tx.commit().await.expect("commit");
}

use ResourceType::{CarePlan, CareTeam, Encounter, Organization, Patient};

// ---------------------------------------------------------------------------------------
// Search cases

pub async fn search_tokens_strings_and_uris(store: Arc<dyn Store>) {
    put_all(
        &*store,
        vec![
            resource(
                Patient,
                "p1",
                json!({"gender": "male", "name": [{"family": "Ågren", "given": ["Åsa"]}],
                    "meta": {"profile": ["http://x.se/fhir/p/patient"]},
                    "telecom": [{"system": "email", "value": "a@b.se"}]}),
            ),
            resource(
                Patient,
                "p2",
                json!({"gender": "female", "name": [{"family": "Andersson", "given": ["Per_Olof"]}],
                    "meta": {"profile": ["http://x.se/fhir/p"]}}),
            ),
            resource(Patient, "p3", json!({"name": [{"family": "agrenius"}]})),
            resource(
                CareTeam,
                "t1",
                json!({"category": [{"coding": [{"system": "http://s", "code": "fast-kontakt",
                    "display": "Fast Vårdkontakt"}]}]}),
            ),
            resource(
                CareTeam,
                "t2",
                json!({"category": [{"text": "Fastighetsteam"}]}),
            ),
        ],
    )
    .await;

    expect_each(
        &*store,
        Patient,
        "gender",
        &[
            ("male", &["p1"]),
            ("male,female", &["p1", "p2"]),
            ("other", &[]),
        ],
    )
    .await;
    expect_each(
        &*store,
        Patient,
        "email",
        &[("a@b.se", &["p1"]), ("|a@b.se", &["p1"])],
    )
    .await;
    // Strings: prefix on the normalized form (case and accents ignored), :contains, :exact.
    expect_each(
        &*store,
        Patient,
        "family",
        &[
            ("agren", &["p1", "p3"]),
            ("ÅGREN", &["p1", "p3"]),
            ("agrenius", &["p3"]),
            ("ers", &[]),
            ("x", &[]),
        ],
    )
    .await;
    expect_each(
        &*store,
        Patient,
        "family:contains",
        &[("ERS", &["p2"]), ("gren", &["p1", "p3"])],
    )
    .await;
    expect_each(
        &*store,
        Patient,
        "family:exact",
        &[("Ågren", &["p1"]), ("agren", &[]), ("Ågr", &[])],
    )
    .await;
    // LIKE wildcards in a value are literal.
    expect_each(
        &*store,
        Patient,
        "given:contains",
        &[("r_o", &["p2"]), ("%", &[]), ("_", &["p2"])],
    )
    .await;
    expect_each(
        &*store,
        Patient,
        "name",
        &[("asa", &["p1"]), ("per", &["p2"])],
    )
    .await;
    // :text: the normalized display or concept text starts with the value.
    expect_each(
        &*store,
        CareTeam,
        "category:text",
        &[("fast", &["t1", "t2"]), ("fast v", &["t1"]), ("vard", &[])],
    )
    .await;
    expect_each(
        &*store,
        CareTeam,
        "category",
        &[
            ("http://s|fast-kontakt", &["t1"]),
            ("http://s|", &["t1"]),
            ("|fast-kontakt", &[]),
        ],
    )
    .await;
    // URIs: exact, :below (stored starts with the value), :above (value starts with stored).
    expect_each(
        &*store,
        Patient,
        "_profile",
        &[
            ("http://x.se/fhir/p", &["p2"]),
            ("http://x.se/fhir/p/patient", &["p1"]),
        ],
    )
    .await;
    expect_each(
        &*store,
        Patient,
        "_profile:below",
        &[
            ("http://x.se/fhir/p", &["p1", "p2"]),
            ("http://x.se/fhir/p/", &["p1"]),
            ("http://y", &[]),
        ],
    )
    .await;
    expect_each(
        &*store,
        Patient,
        "_profile:above",
        &[
            ("http://x.se/fhir/p/patient/v2", &["p1", "p2"]),
            ("http://x.se/fhir/p", &["p2"]),
            ("http://x.se", &[]),
        ],
    )
    .await;
}

pub async fn search_token_not_matches_resources_without_the_element(store: Arc<dyn Store>) {
    put_all(
        &*store,
        vec![
            resource(Patient, "p1", json!({"gender": "male"})),
            resource(Patient, "p2", json!({"gender": "female"})),
            resource(Patient, "p3", json!({})),
        ],
    )
    .await;
    expect_each(
        &*store,
        Patient,
        "gender:not",
        &[
            ("male", &["p2", "p3"]),
            ("male,female", &["p3"]),
            ("other", &["p1", "p2", "p3"]),
        ],
    )
    .await;
    assert_eq!(
        find(
            &*store,
            Patient,
            &[("gender:not", "male"), ("gender", "female")]
        )
        .await,
        ["p2"]
    );
}

pub async fn search_missing_holds_for_every_kind(store: Arc<dyn Store>) {
    put_all(
        &*store,
        vec![
            resource(
                Patient,
                "full",
                json!({"gender": "male", "name": [{"family": "A"}], "birthDate": "2000-01-01",
                    "generalPractitioner": [{"reference": "Practitioner/x"}],
                    "meta": {"profile": ["http://p"]}}),
            ),
            resource(Patient, "empty", json!({})),
            resource(Encounter, "e1", json!({"length": {"value": 5}})),
            resource(Encounter, "e2", json!({})),
        ],
    )
    .await;
    for param in [
        "gender",
        "family",
        "birthdate",
        "general-practitioner",
        "_profile",
    ] {
        let missing = format!("{param}:missing");
        expect_each(
            &*store,
            Patient,
            &missing,
            &[("true", &["empty"]), ("false", &["full"])],
        )
        .await;
    }
    expect_each(
        &*store,
        Encounter,
        "length:missing",
        &[("true", &["e2"]), ("false", &["e1"])],
    )
    .await;
}

pub async fn search_references_by_id_type_and_url(store: Arc<dyn Store>) {
    put_all(
        &*store,
        vec![
            resource(
                CarePlan,
                "c1",
                json!({"subject": {"reference": "Patient/p1"}, "careTeam": [{"reference": "CareTeam/t1"}],
                    "instantiatesCanonical": ["http://x.se/PlanDefinition/pd"]}),
            ),
            resource(
                CarePlan,
                "c2",
                json!({"subject": {"reference": "https://other.se/fhir/Patient/p2/_history/4"}}),
            ),
            resource(
                CareTeam,
                "t1",
                json!({"participant": [{"member": {"reference": "Practitioner/x1"}},
                    {"member": {"reference": "Organization/x2"}}]}),
            ),
            resource(
                CareTeam,
                "t2",
                json!({"participant": [{"member": {"reference": "Organization/x1"}}]}),
            ),
            // Two index rows for one target: a match all the same, and only once.
            resource(
                CareTeam,
                "t3",
                json!({"participant": [{"member": {"reference": "Organization/x2"}},
                    {"member": {"reference": "https://x.se/fhir/Organization/x2"}}]}),
            ),
        ],
    )
    .await;
    expect_each(
        &*store,
        CarePlan,
        "patient",
        &[
            ("p1", &["c1"]),
            ("Patient/p1", &["c1"]),
            ("Patient/p2", &["c2"]),
            ("p1,p2", &["c1", "c2"]),
        ],
    )
    .await;
    expect_each(
        &*store,
        CarePlan,
        "subject",
        &[
            ("p1", &["c1"]),
            ("Patient/p9", &[]),
            ("https://x.se/fhir/Patient/p2", &["c2"]),
        ],
    )
    .await;
    // An id without a type matches a reference to any type.
    expect_each(
        &*store,
        CareTeam,
        "participant",
        &[
            ("x1", &["t1", "t2"]),
            ("Organization/x1", &["t2"]),
            ("x2", &["t1", "t3"]),
            ("Organization/x2", &["t1", "t3"]),
        ],
    )
    .await;
    expect_each(
        &*store,
        CareTeam,
        "participant:Practitioner",
        &[("x1", &["t1"])],
    )
    .await;
    expect_each(
        &*store,
        CarePlan,
        "care-team",
        &[("t1", &["c1"]), ("CareTeam/t1", &["c1"])],
    )
    .await;
    expect_each(
        &*store,
        CarePlan,
        "instantiates-canonical",
        &[
            ("http://x.se/PlanDefinition/pd", &["c1"]),
            ("http://x.se/PlanDefinition/other", &[]),
        ],
    )
    .await;
}

pub async fn search_dates_with_every_prefix_on_ranges(store: Arc<dyn Store>) {
    put_all(
        &*store,
        vec![
            // Whole days.
            resource(Patient, "d1", json!({"birthDate": "2020-01-01"})),
            resource(Patient, "d2", json!({"birthDate": "2020-01-02"})),
            resource(Patient, "d3", json!({"birthDate": "2020-01-03"})),
            // A month: overlaps the days above without lying within one.
            resource(Patient, "m1", json!({"birthDate": "2020-01"})),
            resource(Patient, "none", json!({})),
        ],
    )
    .await;
    expect_each(
        &*store,
        Patient,
        "birthdate",
        &[
            ("2020-01-02", &["d2"]),
            ("eq2020-01", &["d1", "d2", "d3", "m1"]),
            ("2020", &["d1", "d2", "d3", "m1"]),
            ("ne2020-01-02", &["d1", "d3", "m1"]),
            ("gt2020-01-02", &["d3", "m1"]),
            ("lt2020-01-02", &["d1", "m1"]),
            ("ge2020-01-02", &["d2", "d3", "m1"]),
            ("le2020-01-02", &["d1", "d2", "m1"]),
            ("sa2020-01-02", &["d3"]),
            ("eb2020-01-02", &["d1"]),
            ("sa2020-01", &[]),
            ("eb2020-02", &["d1", "d2", "d3", "m1"]),
            ("2020-01-02T10:00:00Z", &[]),
            ("ge2020-01-02T10:00:00Z", &["d2", "d3", "m1"]),
            // Within a day of the value (the dates are years from now, so 10% is more).
            ("ap2020-01-02", &["d1", "d2", "d3", "m1"]),
            ("ap1990-01-01", &[]),
        ],
    )
    .await;

    // Periods, with open ends.
    put_all(
        &*store,
        vec![
            resource(
                CarePlan,
                "closed",
                json!({"period": {"start": "2026-01-10", "end": "2026-01-20"}}),
            ),
            resource(
                CarePlan,
                "open-end",
                json!({"period": {"start": "2026-01-15"}}),
            ),
            resource(
                CarePlan,
                "open-start",
                json!({"period": {"end": "2026-01-05"}}),
            ),
        ],
    )
    .await;
    expect_each(
        &*store,
        CarePlan,
        "date",
        &[
            ("2026-01", &["closed"]),
            ("ge2026-01-18", &["closed", "open-end"]),
            ("gt2026-01-20", &["open-end"]),
            ("le2026-01-12", &["closed", "open-start"]),
            ("lt2026-01-01", &["open-start"]),
            ("sa2026-01-05", &["closed", "open-end"]),
            ("eb2026-01-15", &["open-start"]),
            ("ne2026-01", &["open-end", "open-start"]),
        ],
    )
    .await;
}

pub async fn search_last_updated_and_quantities_with_prefixes(store: Arc<dyn Store>) {
    // t0 is 2023-11-14T22:13:20.123456Z; "late" two hours later, on the next day.
    write_ok(&*store, versioned(Patient, "early", 1, at(0), json!({}))).await;
    write_ok(&*store, versioned(Patient, "late", 1, at(7200), json!({}))).await;
    expect_each(
        &*store,
        Patient,
        "_lastUpdated",
        &[
            ("2023-11-14", &["early"]),
            ("2023-11-14T22:13:20Z", &["early"]),
            ("2023-11-14T22:13:21Z", &[]),
            ("gt2023-11-14T22:13:20Z", &["late"]),
            ("ge2023-11-14T22:13:20Z", &["early", "late"]),
            ("lt2023-11-15", &["early"]),
            ("le2023-11-15", &["early", "late"]),
            ("ne2023-11-14", &["late"]),
            ("gt2023-11-15", &[]),
        ],
    )
    .await;

    let minutes = |value: f64| json!({"length": {"value": value, "system": "http://unitsofmeasure.org", "code": "min"}});
    put_all(
        &*store,
        vec![
            resource(Encounter, "e5", minutes(5.0)),
            resource(Encounter, "e10", minutes(10.0)),
            resource(Encounter, "e105", minutes(10.5)),
            resource(
                Encounter,
                "h",
                json!({"length": {"value": 10, "code": "h"}}),
            ),
        ],
    )
    .await;
    expect_each(
        &*store,
        Encounter,
        "length",
        &[
            ("10", &["e10", "h"]),
            ("10|http://unitsofmeasure.org|min", &["e10"]),
            ("10||h", &["h"]),
            ("gt5", &["e10", "e105", "h"]),
            ("ge10.5", &["e105"]),
            ("lt10", &["e5"]),
            ("le10|http://unitsofmeasure.org|min", &["e5", "e10"]),
            ("ne10||min", &["e5", "e105"]),
            ("ap10", &["e10", "e105", "h"]),
            ("sa5", &["e10", "e105", "h"]),
            ("eb5", &[]),
        ],
    )
    .await;
}

pub async fn search_chain_follows_references_to_current_targets(store: Arc<dyn Store>) {
    put_all(
        &*store,
        vec![
            resource(
                Patient,
                "p1",
                json!({"identifier": [{"system": "http://pnr", "value": "1"}], "name": [{"family": "Berg"}]}),
            ),
            resource(
                Patient,
                "p2",
                json!({"identifier": [{"system": "http://pnr", "value": "2"}], "name": [{"family": "Berg"}]}),
            ),
            resource(Organization, "o1", json!({"name": "Berg vårdcentral"})),
            resource(CareTeam, "t1", json!({"subject": {"reference": "Patient/p1"}, "status": "active"})),
            resource(CareTeam, "t2", json!({"subject": {"reference": "Patient/p2"}, "status": "active"})),
            resource(
                CareTeam,
                "t3",
                json!({"participant": [{"member": {"reference": "Organization/o1"}}]}),
            ),
        ],
    )
    .await;
    expect_each(
        &*store,
        CareTeam,
        "patient.identifier",
        &[
            ("http://pnr|1", &["t1"]),
            ("2", &["t2"]),
            ("1,2", &["t1", "t2"]),
            ("3", &[]),
        ],
    )
    .await;
    expect_each(
        &*store,
        CareTeam,
        "patient.family",
        &[("berg", &["t1", "t2"])],
    )
    .await;
    // The chained parameter is evaluated on each possible target type.
    expect_each(
        &*store,
        CareTeam,
        "participant:Organization.name",
        &[("berg", &["t3"])],
    )
    .await;
    assert_eq!(
        find(
            &*store,
            CareTeam,
            &[("patient.identifier", "1"), ("status", "active")]
        )
        .await,
        ["t1"]
    );
    // A deleted target no longer matches.
    write_ok(&*store, deletion(Patient, "p1", 2, at(1))).await;
    expect_each(&*store, CareTeam, "patient.family", &[("berg", &["t2"])]).await;
}

pub async fn search_has_finds_resources_referenced_by_matching_sources(store: Arc<dyn Store>) {
    put_all(
        &*store,
        vec![
            resource(Patient, "p1", json!({})),
            resource(Patient, "p2", json!({})),
            resource(Patient, "p3", json!({})),
            resource(
                CareTeam,
                "t1",
                json!({"subject": {"reference": "Patient/p1"}, "status": "active"}),
            ),
            resource(
                CareTeam,
                "t2",
                json!({"subject": {"reference": "Patient/p2"}, "status": "inactive"}),
            ),
            resource(
                CareTeam,
                "t3",
                json!({"subject": {"reference": "Patient/p3"}, "status": "active"}),
            ),
        ],
    )
    .await;
    expect_each(
        &*store,
        Patient,
        "_has:CareTeam:patient:status",
        &[
            ("active", &["p1", "p3"]),
            ("inactive", &["p2"]),
            ("active,inactive", &["p1", "p2", "p3"]),
        ],
    )
    .await;
    assert_eq!(
        find(
            &*store,
            Patient,
            &[("_has:CareTeam:patient:status", "active"), ("_id", "p3,p2")]
        )
        .await,
        ["p3"]
    );
    // A deleted source no longer counts; an updated one counts with its new values.
    write_ok(&*store, deletion(CareTeam, "t3", 2, at(1))).await;
    write_ok(
        &*store,
        versioned(
            CareTeam,
            "t2",
            2,
            at(1),
            json!({"subject": {"reference": "Patient/p2"}, "status": "active"}),
        ),
    )
    .await;
    expect_each(
        &*store,
        Patient,
        "_has:CareTeam:patient:status",
        &[("active", &["p1", "p2"]), ("inactive", &[])],
    )
    .await;
}

/// Patients for the sort and paging cases: family names with a tie and a missing one.
async fn sort_fixture(store: &dyn Store) {
    put_all(
        store,
        vec![
            versioned(Patient, "a", 1, at(5), json!({"name": [{"family": "Svensson"}], "birthDate": "1990"})),
            versioned(Patient, "b", 1, at(4), json!({"name": [{"family": "Berg"}, {"family": "Öberg"}], "birthDate": "1980-05-05"})),
            versioned(Patient, "c", 1, at(3), json!({"name": [{"family": "Svensson"}]})),
            versioned(Patient, "d", 1, at(2), json!({"birthDate": "2001-02-03"})),
            versioned(Patient, "e", 1, at(1), json!({"name": [{"family": "Holm"}], "birthDate": "1980-05-05"})),
        ],
    )
    .await;
}

pub async fn search_sorts_with_ties_missing_values_and_sort_values(store: Arc<dyn Store>) {
    sort_fixture(&*store).await;
    // Ascending by the smallest value, descending by the largest; ties in write order (which
    // is id order here); missing last.
    assert_eq!(
        find(&*store, Patient, &[("_sort", "family")]).await,
        ["b", "e", "a", "c", "d"]
    );
    assert_eq!(
        find(&*store, Patient, &[("_sort", "-family")]).await,
        ["a", "c", "b", "e", "d"]
    );
    assert_eq!(
        find(&*store, Patient, &[("_sort", "birthdate,-_id")]).await,
        ["e", "b", "a", "d", "c"]
    );
    assert_eq!(
        find(&*store, Patient, &[("_sort", "-birthdate")]).await,
        ["d", "a", "b", "e", "c"]
    );
    assert_eq!(
        find(&*store, Patient, &[("_sort", "-_lastUpdated")]).await,
        ["a", "b", "c", "d", "e"]
    );
    assert_eq!(
        find(&*store, Patient, &[("_sort", "-_id")]).await,
        ["e", "d", "c", "b", "a"]
    );
    assert_eq!(
        find(&*store, Patient, &[("_sort", "family"), ("family", "s")]).await,
        ["a", "c"]
    );

    let page = store
        .search(&query_of(Patient, &[("_sort", "-family,_lastUpdated")]))
        .await
        .unwrap();
    let values: Vec<&[SortValue]> = page.matches.iter().map(|m| &m.sort_values[..]).collect();
    let micros = |s: i64| {
        let at = at(s);
        SortValue::Int((at.unix_timestamp_nanos() / 1000) as i64)
    };
    assert_eq!(ids_of(&page), ["c", "a", "b", "e", "d"]);
    assert_eq!(values[0], [SortValue::Text("svensson".into()), micros(3)]);
    assert_eq!(values[1], [SortValue::Text("svensson".into()), micros(5)]);
    assert_eq!(values[2], [SortValue::Text("oberg".into()), micros(4)]);
    assert_eq!(values[4], [SortValue::Null, micros(2)]);
}

/// Reads every page of `pairs` with `count`, following cursors built from the last (or, for
/// backwards, the first) match; returns the ids per page.
async fn walk(
    store: &dyn Store,
    pairs: &[(&str, &str)],
    count: u32,
    backwards_from_end: bool,
) -> Vec<Vec<String>> {
    let mut query = query_of(Patient, pairs);
    query.count = count;
    let mut pages = Vec::new();
    let mut page = store.search(&query).await.unwrap();
    if backwards_from_end {
        // Go to the end first, then walk back to the first page.
        let mut moved = false;
        while page.more {
            query.page = Some(cursor_after(&page, false));
            page = store.search(&query).await.unwrap();
            moved = true;
        }
        pages.push(ids_of(&page));
        if moved {
            loop {
                query.page = Some(cursor_after(&page, true));
                page = store.search(&query).await.unwrap();
                pages.push(ids_of(&page));
                if !page.more {
                    break;
                }
            }
        }
        pages.reverse();
        return pages;
    }
    loop {
        pages.push(ids_of(&page));
        if !page.more {
            return pages;
        }
        query.page = Some(cursor_after(&page, false));
        page = store.search(&query).await.unwrap();
    }
}

/// The cursor of the next page (from the last match) or the previous one (from the first).
fn cursor_after(page: &SearchPage, backwards: bool) -> paraply_search::PageCursor {
    let boundary = if backwards {
        page.matches.first()
    } else {
        page.matches.last()
    };
    boundary.expect("a page with matches").cursor(backwards)
}

pub async fn search_pages_forward_and_backward_by_cursor(store: Arc<dyn Store>) {
    sort_fixture(&*store).await;
    for (sort, all) in [
        ("family", ["b", "e", "a", "c", "d"]),
        ("-family", ["a", "c", "b", "e", "d"]),
        ("birthdate,-_id", ["e", "b", "a", "d", "c"]),
        ("-birthdate,family", ["d", "a", "b", "e", "c"]),
        ("_id", ["a", "b", "c", "d", "e"]),
    ] {
        let pairs = [("_sort", sort)];
        for count in [1, 2, 3, 5] {
            let forward = walk(&*store, &pairs, count, false).await;
            let expected: Vec<Vec<String>> = all
                .chunks(count as usize)
                .map(|c| c.iter().map(|s| s.to_string()).collect())
                .collect();
            assert_eq!(forward, expected, "forward _sort={sort} _count={count}");
            let backward = walk(&*store, &pairs, count, true).await;
            let flat: Vec<String> = backward.concat();
            assert_eq!(flat, all, "backward _sort={sort} _count={count}");
            assert!(
                backward
                    .iter()
                    .all(|p| p.len() <= count as usize && !p.is_empty())
            );
        }
    }
    // Without a sort, pages follow the write order; an accurate total ignores the cursor.
    let mut query = query_of(Patient, &[("_count", "2"), ("_total", "accurate")]);
    let first = store.search(&query).await.unwrap();
    query.page = Some(cursor_after(&first, false));
    let page = store.search(&query).await.unwrap();
    assert_eq!(
        (ids_of(&page), page.total, page.more),
        (vec!["c".to_owned(), "d".to_owned()], Some(5), true)
    );
    query.page = Some(cursor_after(&page, true));
    let page = store.search(&query).await.unwrap();
    assert_eq!(
        (ids_of(&page), page.more),
        (vec!["a".to_owned(), "b".to_owned()], false)
    );
}

pub async fn search_cursor_stays_correct_when_resources_are_written_between_pages(
    store: Arc<dyn Store>,
) {
    sort_fixture(&*store).await;
    let mut query = query_of(
        Patient,
        &[("_sort", "family"), ("_count", "2"), ("_total", "accurate")],
    );
    let first = store.search(&query).await.unwrap();
    assert_eq!(ids_of(&first), ["b", "e"]);
    let next = cursor_after(&first, false);
    let previous_of_second = {
        query.page = Some(next.clone());
        let second = store.search(&query).await.unwrap();
        assert_eq!(ids_of(&second), ["a", "c"]);
        cursor_after(&second, true)
    };
    // New resources sort before and after the boundary ("Holm"/e); one resource moves.
    put_all(
        &*store,
        vec![
            versioned(
                Patient,
                "aa",
                1,
                at(9),
                json!({"name": [{"family": "Adams"}]}),
            ),
            versioned(
                Patient,
                "f",
                1,
                at(9),
                json!({"name": [{"family": "Holm"}]}),
            ),
            versioned(
                Patient,
                "zz",
                1,
                at(9),
                json!({"name": [{"family": "Ziegler"}]}),
            ),
            versioned(
                Patient,
                "d",
                2,
                at(9),
                json!({"name": [{"family": "Aaberg"}]}),
            ),
        ],
    )
    .await;
    query.page = Some(next);
    let second = store.search(&query).await.unwrap();
    assert_eq!(ids_of(&second), ["f", "a"]);
    assert!(second.more);
    assert_eq!(second.total, Some(8));
    query.page = Some(previous_of_second);
    let back = store.search(&query).await.unwrap();
    // The page before "a" now ends with the new "f" (a tie on Holm, after "e").
    assert_eq!(ids_of(&back), ["e", "f"]);
    assert!(back.more);
}

/// Two patients, each with a care plan that references a care team, plus a team nobody
/// references.
async fn include_fixture(store: &dyn Store) {
    put_all(
        store,
        vec![
            resource(Patient, "p1", json!({"generalPractitioner": [{"reference": "Organization/o1"}]})),
            resource(Patient, "p2", json!({"generalPractitioner": [{"reference": "Organization/o1"}]})),
            resource(Organization, "o1", json!({})),
            resource(CareTeam, "t1", json!({"subject": {"reference": "Patient/p1"}})),
            resource(CareTeam, "t2", json!({"subject": {"reference": "Patient/p2"}})),
            resource(CareTeam, "t-none", json!({})),
            resource(
                CarePlan,
                "c1",
                json!({"subject": {"reference": "Patient/p1"},
                    "careTeam": [{"reference": "CareTeam/t1"}, {"reference": "CareTeam/t2"}]}),
            ),
            resource(
                CarePlan,
                "c2",
                json!({"subject": {"reference": "Patient/p2"}, "careTeam": [{"reference": "CareTeam/t2"},
                    {"reference": "CareTeam/gone"}]}),
            ),
            resource(CareTeam, "gone", json!({})),
        ],
    )
    .await;
    write_ok(store, deletion(CareTeam, "gone", 2, at(1))).await;
}

async fn search_page(
    store: &dyn Store,
    resource_type: ResourceType,
    pairs: &[(&str, &str)],
) -> SearchPage {
    store.search(&query_of(resource_type, pairs)).await.unwrap()
}

pub async fn search_includes_and_revincludes_each_resource_once(store: Arc<dyn Store>) {
    include_fixture(&*store).await;
    let page = search_page(&*store, CarePlan, &[("_include", "CarePlan:care-team")]).await;
    assert_eq!(ids_of(&page), ["c1", "c2"]);
    // t2 is referenced twice, the deleted team not at all.
    assert_eq!(included_of(&page), ["CareTeam/t1", "CareTeam/t2"]);

    let page = search_page(
        &*store,
        CarePlan,
        &[
            ("_id", "c2"),
            ("_include", "CarePlan:care-team"),
            ("_include", "CarePlan:patient"),
        ],
    )
    .await;
    assert_eq!(included_of(&page), ["CareTeam/t2", "Patient/p2"]);
    let page = search_page(
        &*store,
        CarePlan,
        &[("_include", "CarePlan:care-team:Patient")],
    )
    .await;
    assert_eq!(included_of(&page), Vec::<String>::new());

    let page = search_page(
        &*store,
        Patient,
        &[
            ("_revinclude", "CareTeam:patient"),
            ("_revinclude", "CarePlan:patient"),
        ],
    )
    .await;
    assert_eq!(ids_of(&page), ["p1", "p2"]);
    assert_eq!(
        included_of(&page),
        ["CarePlan/c1", "CarePlan/c2", "CareTeam/t1", "CareTeam/t2"]
    );
    // A match is never repeated as included.
    let page = search_page(
        &*store,
        CareTeam,
        &[
            ("_id", "t1,t2"),
            ("_revinclude", "CarePlan:care-team"),
            ("_include", "CareTeam:patient"),
        ],
    )
    .await;
    assert_eq!(ids_of(&page), ["t1", "t2"]);
    assert_eq!(
        included_of(&page),
        ["CarePlan/c1", "CarePlan/c2", "Patient/p1", "Patient/p2"]
    );
    // Includes follow the page only.
    let page = search_page(
        &*store,
        CarePlan,
        &[("_include", "CarePlan:care-team"), ("_count", "1")],
    )
    .await;
    assert_eq!(included_of(&page), ["CareTeam/t1", "CareTeam/t2"]);
    let page = search_page(
        &*store,
        Patient,
        &[("_id", "p2"), ("_revinclude", "CareTeam:patient")],
    )
    .await;
    assert_eq!(included_of(&page), ["CareTeam/t2"]);
}

pub async fn search_iterate_follows_included_resources(store: Arc<dyn Store>) {
    include_fixture(&*store).await;
    let pairs = [
        ("_id", "p1"),
        ("_revinclude", "CarePlan:patient"),
        ("_include:iterate", "CarePlan:care-team"),
    ];
    let page = search_page(&*store, Patient, &pairs).await;
    assert_eq!(
        included_of(&page),
        ["CarePlan/c1", "CareTeam/t1", "CareTeam/t2"]
    );
    // Without :iterate the care teams of the included plans are not followed.
    let page = search_page(
        &*store,
        Patient,
        &[
            ("_id", "p1"),
            ("_revinclude", "CarePlan:patient"),
            ("_include", "CarePlan:care-team"),
        ],
    )
    .await;
    assert_eq!(included_of(&page), ["CarePlan/c1"]);
    // Three hops: p1 -> c1 -> t2 -> c2 (which names t2) -> p2, ending at the organization.
    let page = search_page(
        &*store,
        Patient,
        &[
            ("_id", "p1"),
            ("_revinclude:iterate", "CarePlan:patient"),
            ("_include:iterate", "CarePlan:care-team"),
            ("_revinclude:iterate", "CarePlan:care-team"),
            ("_include:iterate", "CarePlan:patient"),
        ],
    )
    .await;
    assert_eq!(
        included_of(&page),
        [
            "CarePlan/c1",
            "CarePlan/c2",
            "CareTeam/t1",
            "CareTeam/t2",
            "Patient/p2"
        ]
    );
    assert!(page.included.iter().all(|r| !r.is_deleted()));
}

/// `(matches, total, more)` of a page.
fn counts(page: &SearchPage) -> (usize, Option<u64>, bool) {
    (page.matches.len(), page.total, page.more)
}

/// R4 lets a server leave `Bundle.total` out (search.html#total); counting every match costs
/// as much as reading them all, so without `_total=accurate` only a page that holds every
/// match carries one.
pub async fn search_total_is_counted_when_asked_and_free_otherwise(store: Arc<dyn Store>) {
    for name in ["p1", "p2", "p3"] {
        write_ok(&*store, resource(Patient, name, json!({"gender": "male"}))).await;
    }
    let male = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = vec![("gender", "male")];
        pairs.extend_from_slice(extra);
        pairs
    };
    // No `_total` (or `estimate`): a first page holding every match is its own count; a
    // page that holds only some of them has none.
    let page = search_page(&*store, Patient, &male(&[("_count", "3")])).await;
    assert_eq!(counts(&page), (3, Some(3), false));
    let first = search_page(&*store, Patient, &male(&[("_count", "2")])).await;
    assert_eq!(counts(&first), (2, None, true));
    let page = search_page(
        &*store,
        Patient,
        &male(&[("_count", "2"), ("_total", "estimate")]),
    )
    .await;
    assert_eq!(counts(&page), (2, None, true));
    // A later page does not know what came before it, even when it is the last.
    let mut query = query_of(Patient, &male(&[("_count", "2")]));
    query.page = Some(cursor_after(&first, false));
    let last = store.search(&query).await.unwrap();
    assert_eq!(counts(&last), (1, None, false));

    // `accurate`: always counted, on every page, whatever the page size.
    let mut query = query_of(Patient, &male(&[("_count", "2"), ("_total", "accurate")]));
    assert_eq!(
        counts(&store.search(&query).await.unwrap()),
        (2, Some(3), true)
    );
    query.page = Some(cursor_after(&first, false));
    assert_eq!(
        counts(&store.search(&query).await.unwrap()),
        (1, Some(3), false)
    );
    let page = search_page(
        &*store,
        Patient,
        &male(&[("_count", "0"), ("_total", "accurate")]),
    )
    .await;
    assert_eq!(counts(&page), (0, Some(3), true));
    let page = search_page(
        &*store,
        Patient,
        &[
            ("gender", "female"),
            ("_count", "0"),
            ("_total", "accurate"),
        ],
    )
    .await;
    assert_eq!(counts(&page), (0, Some(0), false));

    // `none`: never, not even when the page holds everything.
    let page = search_page(
        &*store,
        Patient,
        &male(&[("_total", "none"), ("_count", "2")]),
    )
    .await;
    assert_eq!(
        (ids_of(&page), page.total, page.more),
        (vec!["p1".to_owned(), "p2".to_owned()], None, true)
    );
    let page = search_page(&*store, Patient, &male(&[("_total", "none")])).await;
    assert_eq!(counts(&page), (3, None, false));
}

/// A Task owned by `owner` with `status`.
fn task(id_: &str, version: u64, owner: &str, status: &str) -> NewVersion {
    versioned(
        ResourceType::Task,
        id_,
        version,
        at(0),
        json!({"status": status, "intent": "order", "owner": reference(owner)}),
    )
}

/// Without `_sort`, pages follow the order the current versions were written in (the
/// version row), which a driving index yields without sorting. An update writes a new
/// version row, so a resource updated between two page reads may come again on a later
/// page, but following `next` links never skips one.
pub async fn search_without_sort_pages_in_write_order_and_loses_nothing_to_updates(
    store: Arc<dyn Store>,
) {
    let unit = "Organization/unit";
    let mut tasks: Vec<NewVersion> = ["t5", "t3", "t1", "t4", "t2"]
        .into_iter()
        .map(|id_| task(id_, 1, unit, "requested"))
        .collect();
    tasks.push(task("t0", 1, "Organization/other", "requested"));
    tasks.push(task("t9", 1, unit, "completed"));
    put_all(&*store, tasks).await;

    // Driven by the owner (an index read in write order) and by the status alone (a set
    // that is read whole); both come in write order, forwards and backwards.
    for pairs in [
        &[("owner", unit), ("status", "requested"), ("_count", "2")][..],
        &[("status", "requested"), ("_count", "2")][..],
    ] {
        let query = query_of(ResourceType::Task, pairs);
        let mut pages = Vec::new();
        let mut page = store.search(&query).await.unwrap();
        pages.push(ids_of(&page));
        while page.more {
            let mut next = query.clone();
            next.page = Some(cursor_after(&page, false));
            page = store.search(&next).await.unwrap();
            pages.push(ids_of(&page));
        }
        let expected: &[&[&str]] = if pairs[0].0 == "owner" {
            &[&["t5", "t3"], &["t1", "t4"], &["t2"]]
        } else {
            &[&["t5", "t3"], &["t1", "t4"], &["t2", "t0"]]
        };
        assert_eq!(pages, expected, "Task?{pairs:?}");
        let mut back = query.clone();
        back.page = Some(cursor_after(&page, true));
        let before_last = store.search(&back).await.unwrap();
        assert_eq!(
            (ids_of(&before_last), before_last.more),
            (vec!["t1".to_owned(), "t4".to_owned()], true),
            "Task?{pairs:?} backwards"
        );
    }

    // t5 was read, t4 not yet, when both are updated: t5 comes again, t4 still comes.
    let mut query = query_of(
        ResourceType::Task,
        &[("owner", unit), ("status", "requested"), ("_count", "2")],
    );
    let first = store.search(&query).await.unwrap();
    assert_eq!(ids_of(&first), ["t5", "t3"]);
    put_all(
        &*store,
        vec![
            task("t5", 2, unit, "requested"),
            task("t4", 2, unit, "requested"),
        ],
    )
    .await;
    let mut seen = ids_of(&first);
    let mut page = first;
    while page.more {
        query.page = Some(cursor_after(&page, false));
        page = store.search(&query).await.unwrap();
        seen.extend(ids_of(&page));
    }
    assert_eq!(seen, ["t5", "t3", "t1", "t2", "t5", "t4"]);
}

pub async fn search_in_a_transaction_sees_its_writes_and_not_replaced_rows(store: Arc<dyn Store>) {
    put_all(
        &*store,
        vec![
            resource(
                Patient,
                "p1",
                json!({"name": [{"family": "Old"}], "birthDate": "2000"}),
            ),
            resource(
                CareTeam,
                "t1",
                json!({"subject": {"reference": "Patient/p1"}}),
            ),
            resource(
                CareTeam,
                "t2",
                json!({"subject": {"reference": "Patient/p1"}}),
            ),
        ],
    )
    .await;
    let mut tx = store.begin().await.unwrap();
    tx.write(versioned(
        Patient,
        "p1",
        2,
        at(1),
        json!({"name": [{"family": "New"}]}),
    ))
    .await
    .unwrap();
    tx.write(versioned(
        CareTeam,
        "t1",
        2,
        at(1),
        json!({"subject": {"reference": "Patient/p2"}}),
    ))
    .await
    .unwrap();
    tx.write(deletion(CareTeam, "t2", 2, at(1))).await.unwrap();
    tx.write(resource(
        Patient,
        "p2",
        json!({"name": [{"family": "Newer"}]}),
    ))
    .await
    .unwrap();
    let inside = tx
        .search(&query_of(
            Patient,
            &[("family", "new"), ("_revinclude", "CareTeam:patient")],
        ))
        .await
        .unwrap();
    assert_eq!(ids_of(&inside), ["p1", "p2"]);
    assert_eq!(included_of(&inside), ["CareTeam/t1"]);
    let old = tx
        .search(&query_of(Patient, &[("family", "old")]))
        .await
        .unwrap();
    assert_eq!(old.total, Some(0));
    // Others still see the committed state.
    assert_eq!(find(&*store, Patient, &[("family", "old")]).await, ["p1"]);
    tx.commit().await.unwrap();

    assert_eq!(
        find(&*store, Patient, &[("family", "old")]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        find(&*store, Patient, &[("birthdate:missing", "false")]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        find(&*store, CareTeam, &[("patient", "p1")]).await,
        Vec::<String>::new()
    );
    assert_eq!(find(&*store, CareTeam, &[("patient", "p2")]).await, ["t1"]);
    assert_eq!(find(&*store, CareTeam, &[]).await, ["t1"]);
}

pub async fn history_lists_versions_newest_first_for_instance_type_and_system(
    store: Arc<dyn Store>,
) {
    write_ok(&*store, patient("p1", 1, at(0), &[])).await;
    write_ok(&*store, organization("o1", 1, at(1))).await;
    write_ok(&*store, patient("p2", 1, at(2), &[])).await;
    write_ok(&*store, patient("p1", 2, at(3), &[])).await;
    write_ok(
        &*store,
        deletion(ResourceType::Organization, "o1", 2, at(4)),
    )
    .await;

    let instance = HistoryScope::Instance(ResourceType::Patient, id("p1"));
    assert_eq!(
        history_of(&*store, history_query(instance)).await,
        pairs(&[("p1", 2), ("p1", 1)])
    );
    let of_type = HistoryScope::Type(ResourceType::Patient);
    assert_eq!(
        history_of(&*store, history_query(of_type)).await,
        pairs(&[("p1", 2), ("p2", 1), ("p1", 1)])
    );
    assert_eq!(
        history_of(&*store, history_query(HistoryScope::System)).await,
        pairs(&[("o1", 2), ("p1", 2), ("p2", 1), ("o1", 1), ("p1", 1)])
    );
    let page = store
        .history(&history_query(HistoryScope::System))
        .await
        .unwrap();
    assert_eq!((page.total, page.next), (5, None));
}

pub async fn history_since_keeps_versions_written_at_or_after_the_instant(store: Arc<dyn Store>) {
    write_ok(&*store, patient("p1", 1, at(0), &[])).await;
    write_ok(&*store, patient("p1", 2, at(10), &[])).await;
    write_ok(&*store, patient("p2", 1, at(20), &[])).await;

    let mut query = history_query(HistoryScope::System);
    query.since = Some(at(10));
    assert_eq!(
        history_of(&*store, query.clone()).await,
        pairs(&[("p2", 1), ("p1", 2)])
    );
    assert_eq!(store.history(&query).await.unwrap().total, 2);

    // Microsecond precision: one microsecond later excludes the version written at(10).
    query.since = Some(at(10) + Duration::microseconds(1));
    assert_eq!(
        history_of(&*store, query.clone()).await,
        pairs(&[("p2", 1)])
    );

    let mut instance = history_query(HistoryScope::Instance(ResourceType::Patient, id("p1")));
    instance.since = Some(at(5));
    assert_eq!(history_of(&*store, instance).await, pairs(&[("p1", 2)]));
}

pub async fn history_pages_by_cursor_with_count_and_total(store: Arc<dyn Store>) {
    for n in 1..=5 {
        write_ok(&*store, patient("p1", n, at(n as i64), &[])).await;
    }
    let mut query = history_query(HistoryScope::Instance(ResourceType::Patient, id("p1")));
    query.count = 2;

    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.history(&query).await.unwrap();
        assert_eq!(page.total, 5);
        assert!(page.entries.len() <= 2);
        seen.extend(page.entries.iter().map(|e| e.version_id.get()));
        pages += 1;
        match page.next {
            Some(cursor) => query.after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, [5, 4, 3, 2, 1]);
    assert_eq!(pages, 3);

    // A page that ends exactly at the last version has no next cursor.
    query.after = None;
    query.count = 5;
    assert_eq!(store.history(&query).await.unwrap().next, None);
}

pub async fn history_cursor_stays_correct_when_versions_are_written_between_pages(
    store: Arc<dyn Store>,
) {
    for n in 1..=4 {
        write_ok(&*store, patient("p1", n, at(n as i64), &[])).await;
    }
    let mut query = history_query(HistoryScope::Type(ResourceType::Patient));
    query.count = 2;
    let first = store.history(&query).await.unwrap();
    let versions: Vec<u64> = first.entries.iter().map(|e| e.version_id.get()).collect();
    assert_eq!(versions, [4, 3]);
    let cursor: HistoryCursor = first.next.unwrap();

    // New versions arrive between the pages; the walk towards older versions is unaffected.
    write_ok(&*store, patient("p1", 5, at(5), &[])).await;
    write_ok(&*store, patient("p2", 1, at(6), &[])).await;

    query.after = Some(cursor);
    let second = store.history(&query).await.unwrap();
    let second: Vec<u64> = second.entries.iter().map(|e| e.version_id.get()).collect();
    assert_eq!(second, [2, 1]);
    let page = store.history(&query).await.unwrap();
    assert_eq!(page.next, None);
    assert_eq!(page.total, 6);
}

/// Tasks racing to write the next version of one resource; each retries on conflict until
/// it has written its share.
pub async fn concurrent_writers_get_one_winner_per_version_and_lose_no_update(
    store: Arc<dyn Store>,
) {
    race_updates(vec![store.clone()], 8, 10).await;
}

/// Runs `tasks_per_store` tasks on each store, each making `updates` successful updates of
/// `Patient/race`, and checks that every version exists exactly once with nothing lost.
/// Public so backends can race several stores (several nodes) on one database.
pub async fn race_updates(stores: Vec<Arc<dyn Store>>, tasks_per_store: usize, updates: usize) {
    let first = stores.first().expect("at least one store").clone();
    write_ok(&*first, patient("race", 1, t0(), &[])).await;

    let mut handles = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for t in 0..tasks_per_store {
            let store = store.clone();
            let writer = format!("s{s}t{t}");
            handles.push(tokio::spawn(async move {
                let mut won = 0;
                let mut conflicts = 0;
                while won < updates {
                    let current = store
                        .read(ResourceType::Patient, &id("race"))
                        .await
                        .unwrap()
                        .unwrap();
                    let next = current.version_id.next().get();
                    let tag = format!("{writer}-{won}");
                    match write(&*store, patient("race", next, t0(), &[(None, &tag)])).await {
                        Ok(()) => won += 1,
                        Err(StoreError::VersionConflict { .. }) => conflicts += 1,
                        Err(other) => panic!("writer {writer}: {other}"),
                    }
                }
                conflicts
            }));
        }
    }
    for handle in handles {
        handle.await.expect("writer task finished");
    }

    let writers = stores.len() * tasks_per_store;
    let expected = 1 + (writers * updates) as u64;
    let current = first
        .read(ResourceType::Patient, &id("race"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.version_id.get(), expected);

    let mut query = history_query(HistoryScope::Instance(ResourceType::Patient, id("race")));
    query.count = u32::try_from(expected).unwrap() + 10;
    let page = first.history(&query).await.unwrap();
    assert_eq!(page.total, expected);
    let versions: BTreeSet<u64> = page.entries.iter().map(|e| e.version_id.get()).collect();
    assert_eq!(versions, (1..=expected).collect::<BTreeSet<_>>());
    // Every successful update is in the history under its own tag: none was lost.
    let tags: BTreeSet<String> = page
        .entries
        .iter()
        .filter_map(|e| e.body.as_deref())
        .filter_map(|b| b.split(r#""value":""#).nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(tags.len(), writers * updates);
}

/// The current versions a walk over `resource_type` finds, `batch` at a time.
async fn walk_current(
    store: &dyn Store,
    resource_type: ResourceType,
    batch: u32,
) -> Vec<CurrentVersion> {
    let mut turn = store.maintain_index().await.expect("a maintenance turn");
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let versions = turn
            .current_versions(resource_type, after, batch)
            .await
            .expect("a batch");
        assert!(versions.len() <= batch as usize);
        let Some(last) = versions.last() else {
            return found;
        };
        after = Some(last.seq);
        found.extend(versions);
    }
}

pub async fn index_maintenance_walks_current_versions_of_a_type_in_seq_batches(
    store: Arc<dyn Store>,
) {
    for name in ["p1", "p2", "p3", "p4", "p5"] {
        write_ok(&*store, patient(name, 1, at(0), &[(None, "x")])).await;
    }
    write_ok(&*store, organization("o1", 1, at(0))).await;
    let p2 = patient("p2", 2, at(1), &[(None, "y")]);
    write_ok(&*store, p2.clone()).await;
    write_ok(&*store, deletion(ResourceType::Patient, "p4", 2, at(1))).await;

    let walked = walk_current(&*store, ResourceType::Patient, 2).await;
    let seqs: Vec<i64> = walked.iter().map(|v| v.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq order: {seqs:?}");
    // The current bodies only: no old version, no deletion, no other type.
    let mut bodies: Vec<&str> = walked.iter().map(|v| v.body.as_str()).collect();
    bodies.sort_unstable();
    let mut expected: Vec<String> = ["p1", "p3", "p5"]
        .iter()
        .map(|name| patient_body(name, &[(None, "x")]))
        .chain(p2.body)
        .collect();
    expected.sort_unstable();
    assert_eq!(bodies, expected);
    // The version rows are the ones searches report.
    let mut query = patient_query(&[]);
    query.count = 100;
    let page = store.search(&query).await.unwrap();
    let mut searched: Vec<i64> = page.matches.iter().map(|m| m.seq).collect();
    searched.sort_unstable();
    assert_eq!(seqs, searched);

    let mut turn = store.maintain_index().await.unwrap();
    assert_eq!(turn.count_current(ResourceType::Patient).await.unwrap(), 4);
    assert_eq!(
        turn.count_current(ResourceType::Organization)
            .await
            .unwrap(),
        1
    );
    assert_eq!(turn.count_current(ResourceType::Consent).await.unwrap(), 0);
    let last = seqs[seqs.len() - 1];
    assert_eq!(
        turn.current_versions(ResourceType::Patient, Some(last), 10)
            .await
            .unwrap(),
        Vec::new()
    );
}

pub async fn index_maintenance_replaces_only_the_given_parameters_rows_of_current_versions(
    store: Arc<dyn Store>,
) {
    for name in ["p1", "p2", "p3"] {
        write_ok(
            &*store,
            patient(name, 1, at(0), &[(Some("http://a"), name)]),
        )
        .await;
    }
    let all = ["p1", "p2", "p3"];
    assert_eq!(search_ids(&*store, &[("active", "true")]).await, all);
    let before = walk_current(&*store, ResourceType::Patient, 10).await;
    let mut turn = store.maintain_index().await.unwrap();

    // Without rows for `active`, no resource is found by it; `identifier` is untouched.
    let emptied: Vec<(i64, Vec<_>)> = before.iter().map(|v| (v.seq, Vec::new())).collect();
    turn.replace_rows(ResourceType::Patient, &["active"], &emptied)
        .await
        .unwrap();
    assert!(search_ids(&*store, &[("active", "true")]).await.is_empty());
    assert_eq!(
        search_ids(&*store, &[("identifier", "http://a|")]).await,
        all
    );

    // p2 is updated and p3 deleted after the batch was read: their writers replaced their
    // rows, so the batch's rows for their old version rows are not inserted.
    write_ok(
        &*store,
        patient("p2", 2, at(1), &[(Some("http://a"), "p2")]),
    )
    .await;
    write_ok(&*store, deletion(ResourceType::Patient, "p3", 2, at(1))).await;
    let extracted: Vec<(i64, Vec<_>)> = before
        .iter()
        .map(|v| {
            let json: Value = serde_json::from_str(&v.body).unwrap();
            let mut rows = param_rows(ResourceType::Patient, &["active"], &json);
            // A value only the batch's rows hold: found only where they were inserted.
            rows.extend(
                param_rows(ResourceType::Patient, &["identifier"], &json)
                    .into_iter()
                    .map(|row| paraply_search::IndexRow {
                        param: "active",
                        ..row
                    }),
            );
            (v.seq, rows)
        })
        .collect();
    turn.replace_rows(ResourceType::Patient, &["active"], &extracted)
        .await
        .unwrap();
    assert_eq!(
        search_ids(&*store, &[("active", "true")]).await,
        ["p1", "p2"]
    );
    assert_eq!(search_ids(&*store, &[("active", "p1")]).await, ["p1"]);
    for stale in ["p2", "p3"] {
        assert!(
            search_ids(&*store, &[("active", stale)]).await.is_empty(),
            "{stale}: rows of a retired version"
        );
    }
    assert_eq!(
        search_ids(&*store, &[("identifier", "http://a|")]).await,
        ["p1", "p2"]
    );
}

pub async fn index_maintenance_waits_for_a_write_in_progress_and_skips_the_version_it_retired(
    store: Arc<dyn Store>,
) {
    write_ok(&*store, patient("p1", 1, at(0), &[(None, "x")])).await;
    let [read] = &walk_current(&*store, ResourceType::Patient, 10).await[..] else {
        panic!("one current version");
    };
    let mut tx = store.begin().await.unwrap();
    tx.read(ResourceType::Patient, &id("p1")).await.unwrap();
    tx.write(patient("p1", 2, at(1), &[(None, "x")]))
        .await
        .unwrap();

    let stale = vec![paraply_search::IndexRow {
        param: "active",
        value: paraply_search::IndexValue::Token {
            system: None,
            code: Some("stale".into()),
            text: None,
        },
    }];
    let mut turn = store.maintain_index().await.unwrap();
    let seq = read.seq;
    let batch = tokio::spawn(async move {
        turn.replace_rows(ResourceType::Patient, &["active"], &[(seq, stale)])
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!batch.is_finished(), "the batch waits for the write");
    tx.commit().await.unwrap();
    batch.await.unwrap().unwrap();
    assert!(search_ids(&*store, &[("active", "stale")]).await.is_empty());
    assert_eq!(search_ids(&*store, &[("active", "true")]).await, ["p1"]);
}

/// How long a transaction that should be waiting is given to (wrongly) get on.
const STILL_WAITING: std::time::Duration = std::time::Duration::from_millis(200);

/// The steps a second transaction has passed, as it reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Began,
    Serialized,
}

/// Starts a second transaction that begins, serializes on `key`, reports each step on the
/// returned channel, then searches for patients with identifier `k` and commits. Yields the
/// ids it found.
fn second_transaction(
    store: &Arc<dyn Store>,
    key: &'static str,
) -> (
    tokio::task::JoinHandle<Result<Vec<String>, StoreError>>,
    tokio::sync::mpsc::UnboundedReceiver<Step>,
) {
    let (steps, passed) = tokio::sync::mpsc::unbounded_channel();
    let store = store.clone();
    let task = tokio::spawn(async move {
        let mut tx = store.begin().await?;
        let _ = steps.send(Step::Began);
        tx.serialize_on(key).await?;
        let _ = steps.send(Step::Serialized);
        let page = tx.search(&patient_query(&[("identifier", "k")])).await?;
        tx.commit().await?;
        Ok(ids_of(&page))
    });
    (task, passed)
}

/// The steps reported so far.
fn steps_so_far(passed: &mut tokio::sync::mpsc::UnboundedReceiver<Step>) -> Vec<Step> {
    std::iter::from_fn(|| passed.try_recv().ok()).collect()
}

/// Two transactions serialized on one key cannot interleave: the second waits at
/// `serialize_on` (or, with a single writer, already at `begin`) until the first commits,
/// and then reads what the first wrote — so a check-then-write rule run under the key
/// cannot pass twice.
pub async fn serialize_on_the_same_key_waits_until_the_holder_commits_and_then_sees_its_writes(
    store: Arc<dyn Store>,
) {
    let mut first = store.begin().await.unwrap();
    first.serialize_on("k").await.unwrap();
    let found = first
        .search(&patient_query(&[("identifier", "k")]))
        .await
        .unwrap();
    assert!(found.matches.is_empty());

    let (second, mut passed) = second_transaction(&store, "k");
    tokio::time::sleep(STILL_WAITING).await;
    assert!(
        !steps_so_far(&mut passed).contains(&Step::Serialized),
        "the second transaction got past serialize_on while the first held the key"
    );
    first
        .write(patient("p1", 1, at(0), &[(None, "k")]))
        .await
        .unwrap();
    tokio::time::sleep(STILL_WAITING).await;
    assert!(
        !steps_so_far(&mut passed).contains(&Step::Serialized),
        "the second transaction got past serialize_on before the first committed"
    );
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap().unwrap(), ["p1"]);
}

/// Keys are independent where write transactions run side by side (PostgreSQL: one
/// advisory lock per key): a transaction serialized on another key gets on at once. Where
/// the database has a single writer (SQLite), the second transaction already waits at
/// `begin` until the first ends, whatever its key — what this case checks there is only
/// that it then gets on.
pub async fn serialize_on_different_keys_waits_only_where_the_database_has_one_writer(
    store: Arc<dyn Store>,
) {
    let mut first = store.begin().await.unwrap();
    first.serialize_on("a").await.unwrap();
    first
        .write(patient("p1", 1, at(0), &[(None, "k")]))
        .await
        .unwrap();

    let (second, mut passed) = second_transaction(&store, "b");
    tokio::time::sleep(STILL_WAITING).await;
    let steps = steps_so_far(&mut passed);
    let side_by_side = steps.contains(&Step::Began);
    if side_by_side {
        assert_eq!(
            steps,
            [Step::Began, Step::Serialized],
            "serialize_on waited for a transaction holding another key"
        );
        // It reads committed data only: the first's write is not yet there.
        assert_eq!(second.await.unwrap().unwrap(), Vec::<String>::new());
        first.commit().await.unwrap();
    } else {
        assert!(steps.is_empty(), "{steps:?}");
        first.commit().await.unwrap();
        assert_eq!(second.await.unwrap().unwrap(), ["p1"]);
    }
}

pub async fn index_maintenance_records_definitions_per_type(store: Arc<dyn Store>) {
    let definition = |param: &'static str, text: &str| ParamDefinition {
        param,
        definition: text.to_owned(),
    };
    let recorded = |resource_type, param: &str, text: &str| RecordedDefinition {
        resource_type,
        param: param.to_owned(),
        definition: text.to_owned(),
    };
    let sorted = |mut list: Vec<RecordedDefinition>| {
        list.sort_by(|a, b| {
            (a.resource_type.as_str(), &a.param).cmp(&(b.resource_type.as_str(), &b.param))
        });
        list
    };
    let mut turn = store.maintain_index().await.unwrap();
    assert_eq!(turn.recorded_definitions().await.unwrap(), Vec::new());

    let patient = [
        definition("name", "1;string;name"),
        definition("gender", "g"),
    ];
    turn.record_definitions(ResourceType::Patient, &patient)
        .await
        .unwrap();
    turn.record_definitions(ResourceType::Consent, &[definition("status", "s")])
        .await
        .unwrap();
    assert_eq!(
        sorted(turn.recorded_definitions().await.unwrap()),
        [
            recorded(ResourceType::Consent, "status", "s"),
            recorded(ResourceType::Patient, "gender", "g"),
            recorded(ResourceType::Patient, "name", "1;string;name"),
        ]
    );
    drop(turn);

    // A later turn replaces one type's definitions and keeps the others'.
    let mut turn = store.maintain_index().await.unwrap();
    turn.record_definitions(ResourceType::Patient, &[definition("name", "2")])
        .await
        .unwrap();
    assert_eq!(
        sorted(turn.recorded_definitions().await.unwrap()),
        [
            recorded(ResourceType::Consent, "status", "s"),
            recorded(ResourceType::Patient, "name", "2"),
        ]
    );
}

pub async fn ping_succeeds(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Access restrictions (DOMAIN.md §4, I11–I13)

const OWNER: &str = paraply_fhir::codes::CARE_PROVIDER_TAG_SYSTEM;

fn reference(to: &str) -> Value {
    json!({"reference": to})
}

fn care_team(patient: &str, status: &str, members: &[&str]) -> Value {
    let participants: Vec<Value> = members
        .iter()
        .map(|m| json!({"member": reference(m)}))
        .collect();
    json!({"status": status, "subject": reference(patient), "participant": participants})
}

fn consent(patient: &str, status: &str, provision: &str, actor: &str) -> Value {
    json!({"status": status, "patient": reference(patient),
        "provision": {"type": provision, "actor": [{"reference": reference(actor)}]}})
}

/// An encounter of `patient`, owned by care provider `owner` (no owner tag: `None`).
fn encounter(patient: &str, owner: Option<&str>, provider: Option<&str>) -> Value {
    let mut e = json!({"status": "finished", "subject": reference(patient)});
    if let Some(owner) = owner {
        e["meta"] = json!({"tag": [{"system": OWNER, "code": owner}]});
    }
    if let Some(provider) = provider {
        e["serviceProvider"] = reference(provider);
    }
    e
}

/// Two care providers: vgA with unit uA (roles `me` and colleague `col`), vgB with unit uB
/// (role `oth`). Patients: p1 in `me`'s active team; p2 in `col`'s team (and tagged by vgB);
/// p3 only in `oth`'s team and in an inactive team of `me`; p4 in a team of `me` and `oth`
/// with a spärr against uA. Encounters e1–e4 of p1 without owner, owned by vgB, owned by vgB
/// naming uA, owned by vgA; e5 of p2 owned by vgB with p2's permit consent for vgA; e6 of p2
/// at uB; e7 of p3; e8 of p4; e-none of nobody. Relatives: rp1 of p1 with an active permit,
/// rp2 of p2 without consent, rp3 of p3 with an inactive permit, rp4 of p4 with a deny.
async fn access_fixture(store: &dyn Store) {
    use ResourceType::{Consent, PractitionerRole, RelatedPerson};
    let mut p2 = json!({"active": true});
    p2["meta"] = json!({"tag": [{"system": OWNER, "code": "SE-B"}]});
    put_all(
        store,
        vec![
            resource(Organization, "vgA", json!({})),
            resource(
                Organization,
                "uA",
                json!({"partOf": reference("Organization/vgA")}),
            ),
            resource(Organization, "vgB", json!({})),
            resource(
                Organization,
                "uB",
                json!({"partOf": reference("Organization/vgB")}),
            ),
            resource(
                PractitionerRole,
                "me",
                json!({"organization": reference("Organization/uA")}),
            ),
            resource(
                PractitionerRole,
                "col",
                json!({"organization": reference("Organization/uA")}),
            ),
            resource(
                PractitionerRole,
                "oth",
                json!({"organization": reference("Organization/uB")}),
            ),
            resource(Patient, "p1", json!({"active": true})),
            resource(Patient, "p2", p2),
            resource(Patient, "p3", json!({"active": true})),
            resource(Patient, "p4", json!({"active": true})),
            resource(
                CareTeam,
                "ct1",
                care_team("Patient/p1", "active", &["PractitionerRole/me"]),
            ),
            resource(
                CareTeam,
                "ct2",
                care_team("Patient/p2", "active", &["PractitionerRole/col"]),
            ),
            resource(
                CareTeam,
                "ct3",
                care_team("Patient/p3", "active", &["PractitionerRole/oth"]),
            ),
            resource(
                CareTeam,
                "ct3-old",
                care_team("Patient/p3", "inactive", &["PractitionerRole/me"]),
            ),
            resource(
                CareTeam,
                "ct4",
                care_team(
                    "Patient/p4",
                    "active",
                    &["PractitionerRole/me", "PractitionerRole/oth"],
                ),
            ),
            resource(
                Consent,
                "sparr4",
                consent("Patient/p4", "active", "deny", "Organization/uA"),
            ),
            resource(
                Consent,
                "permit2",
                consent("Patient/p2", "active", "permit", "Organization/vgA"),
            ),
            resource(
                CarePlan,
                "cp1",
                json!({"subject": reference("Patient/p1"),
                    "careTeam": [reference("CareTeam/ct1"), reference("CareTeam/ct2")]}),
            ),
            resource(Encounter, "e1", encounter("Patient/p1", None, None)),
            resource(Encounter, "e2", encounter("Patient/p1", Some("SE-B"), None)),
            resource(
                Encounter,
                "e3",
                encounter("Patient/p1", Some("SE-B"), Some("Organization/uA")),
            ),
            resource(Encounter, "e4", encounter("Patient/p1", Some("SE-A"), None)),
            resource(Encounter, "e5", encounter("Patient/p2", Some("SE-B"), None)),
            resource(
                Encounter,
                "e6",
                encounter("Patient/p2", None, Some("Organization/uB")),
            ),
            resource(Encounter, "e7", encounter("Patient/p3", None, None)),
            resource(Encounter, "e8", encounter("Patient/p4", None, None)),
            resource(Encounter, "e-none", json!({"status": "finished"})),
            resource(
                RelatedPerson,
                "rp1",
                json!({"patient": reference("Patient/p1")}),
            ),
            resource(
                RelatedPerson,
                "rp2",
                json!({"patient": reference("Patient/p2")}),
            ),
            resource(
                RelatedPerson,
                "rp3",
                json!({"patient": reference("Patient/p3")}),
            ),
            resource(
                RelatedPerson,
                "rp4",
                json!({"patient": reference("Patient/p4")}),
            ),
            resource(
                Consent,
                "rel1",
                consent("Patient/p1", "active", "permit", "RelatedPerson/rp1"),
            ),
            resource(
                Consent,
                "rel3",
                consent("Patient/p3", "inactive", "permit", "RelatedPerson/rp3"),
            ),
            resource(
                Consent,
                "rel4",
                consent("Patient/p4", "active", "deny", "RelatedPerson/rp4"),
            ),
        ],
    )
    .await;
}

/// The page of `resource_type?pairs` as a caller restricted by `restriction` sees it.
async fn page_as(
    store: &dyn Store,
    restriction: &Restriction,
    resource_type: ResourceType,
    pairs: &[(&str, &str)],
) -> SearchPage {
    let mut query = query_of(resource_type, pairs);
    query.restriction = Some(restriction.clone());
    store
        .search(&query)
        .await
        .unwrap_or_else(|e| panic!("{resource_type}?{pairs:?} as {restriction:?}: {e}"))
}

/// [`find`] as a restricted caller: the ids in order, with the total checked.
async fn find_as(
    store: &dyn Store,
    restriction: &Restriction,
    resource_type: ResourceType,
    pairs: &[(&str, &str)],
) -> Vec<String> {
    let mut with_count = pairs.to_vec();
    with_count.push(("_count", "100"));
    let page = page_as(store, restriction, resource_type, &with_count).await;
    assert_eq!(
        page.total,
        Some(page.matches.len() as u64),
        "total of {resource_type}?{pairs:?} as {restriction:?}"
    );
    ids_of(&page)
}

fn patients(list: &[&str]) -> Restriction {
    Restriction::Patients(list.iter().map(|p| id(p)).collect())
}

fn relative_of(list: &[&str]) -> Restriction {
    relative_of_on(list, time::OffsetDateTime::now_utc().date())
}

fn relative_of_on(list: &[&str], today: time::Date) -> Restriction {
    Restriction::RelativeOf(paraply_search::Relatives::on(
        list.iter().map(|p| id(p)).collect(),
        today,
    ))
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Staff at unit `unit` of care provider `provider` (HSA-id `hsa`) in role `role`.
fn staff(role: &str, unit: &str, provider: &str, hsa: &str) -> Restriction {
    Restriction::Staff(Box::new(StaffScope {
        members: strings(&[&format!("PractitionerRole/{role}")]),
        units: strings(&[&format!("Organization/{unit}")]),
        organizations: strings(&[&format!("Organization/{provider}")]),
        care_provider: hsa.to_owned(),
        blocked_if_actor: strings(&[
            &format!("Organization/{unit}"),
            &format!("Organization/{provider}"),
        ]),
        emergency: false,
    }))
}

fn staff_a() -> Restriction {
    staff("me", "uA", "vgA", "SE-A")
}

fn staff_b() -> Restriction {
    staff("oth", "uB", "vgB", "SE-B")
}

pub async fn consent_provision_type_is_searchable(store: Arc<dyn Store>) {
    access_fixture(&*store).await;
    expect_each(
        &*store,
        ResourceType::Consent,
        "provision-type",
        &[
            ("deny", &["sparr4", "rel4"]),
            ("permit", &["permit2", "rel1", "rel3"]),
            // A plain `code` element is indexed without a system.
            ("http://hl7.org/fhir/consent-provision-type|permit", &[]),
        ],
    )
    .await;
}

pub async fn restricted_patient_sees_only_own_data(store: Arc<dyn Store>) {
    access_fixture(&*store).await;
    let s = &*store;
    let me = patients(&["p1"]);
    assert_eq!(find_as(s, &me, Patient, &[]).await, ["p1"]);
    // One resource asked alone answers as the search does.
    for (resource, expected) in [("p1", true), ("p2", false), ("nobody", false)] {
        assert_eq!(
            s.visible(Patient, &id(resource), &me).await.unwrap(),
            expected,
            "{resource}"
        );
    }
    assert!(s.visible(CareTeam, &id("ct1"), &me).await.unwrap());
    assert_eq!(
        find_as(s, &me, Encounter, &[]).await,
        ["e1", "e2", "e3", "e4"]
    );
    assert_eq!(
        find_as(s, &me, CareTeam, &[("status", "active")]).await,
        ["ct1"]
    );
    assert_eq!(
        find_as(s, &me, CareTeam, &[("patient", "Patient/p2")]).await,
        Vec::<String>::new()
    );
    // Directories are not patient data.
    assert_eq!(
        find_as(s, &me, Organization, &[]).await,
        ["vgA", "uA", "vgB", "uB"]
    );
    // Chains and _has only look through resources the patient may see.
    assert_eq!(
        find_as(s, &me, Encounter, &[("patient.active", "true")]).await,
        ["e1", "e2", "e3", "e4"]
    );
    assert_eq!(
        find_as(
            s,
            &me,
            Patient,
            &[("_has:CareTeam:patient:status", "active")]
        )
        .await,
        ["p1"]
    );
    assert_eq!(
        find(
            s,
            Organization,
            &[("_has:Encounter:service-provider:_id", "e6")]
        )
        .await,
        ["uB"]
    );
    assert_eq!(
        find_as(
            s,
            &me,
            Organization,
            &[("_has:Encounter:service-provider:_id", "e6")]
        )
        .await,
        Vec::<String>::new(),
        "another patient's encounter reveals nothing"
    );
    assert_eq!(
        find_as(
            s,
            &me,
            CareTeam,
            &[("patient.identifier", "x"), ("patient._id", "p2")]
        )
        .await,
        Vec::<String>::new()
    );
    // The total counts what the patient may see, and pages walk only that.
    let page = page_as(
        s,
        &me,
        Encounter,
        &[("_count", "3"), ("_total", "accurate")],
    )
    .await;
    assert_eq!(
        (ids_of(&page), page.total, page.more),
        (strings(&["e1", "e2", "e3"]), Some(4), true)
    );
    let mut query = query_of(Encounter, &[("_count", "3")]);
    query.restriction = Some(me.clone());
    query.page = Some(cursor_after(&page, false));
    let next = store.search(&query).await.unwrap();
    assert_eq!((ids_of(&next), next.more), (strings(&["e4"]), false));
    // Includes: each included resource is checked for its own type.
    let page = page_as(s, &me, CarePlan, &[("_include", "CarePlan:care-team")]).await;
    assert_eq!(ids_of(&page), ["cp1"]);
    assert_eq!(included_of(&page), ["CareTeam/ct1"]);
    let page = page_as(s, &me, CareTeam, &[("_include", "CareTeam:participant")]).await;
    assert_eq!(included_of(&page), ["PractitionerRole/me"]);
    let page = page_as(
        s,
        &me,
        ResourceType::PractitionerRole,
        &[("_id", "me"), ("_revinclude", "CareTeam:participant")],
    )
    .await;
    assert_eq!(included_of(&page), ["CareTeam/ct1"]);
    let page = page_as(
        s,
        &me,
        Patient,
        &[
            ("_revinclude", "CarePlan:patient"),
            ("_include:iterate", "CarePlan:care-team"),
        ],
    )
    .await;
    assert_eq!(included_of(&page), ["CarePlan/cp1", "CareTeam/ct1"]);
    // Unrestricted, the same searches see everything.
    assert_eq!(find(s, Patient, &[]).await, ["p1", "p2", "p3", "p4"]);
    let page = search_page(s, CarePlan, &[("_include", "CarePlan:care-team")]).await;
    assert_eq!(included_of(&page), ["CareTeam/ct1", "CareTeam/ct2"]);
}

pub async fn restricted_guardian_sees_a_child_until_its_13th_birthday(store: Arc<dyn Store>) {
    let s = &*store;
    let child = json!({"resourceType": "Patient", "id": "child", "birthDate": "2017-03-15"});
    write_ok(s, versioned(Patient, "child", 1, at(0), child)).await;
    let relative = |id: &str, code: &str| {
        json!({"resourceType": "RelatedPerson", "id": id, "patient": {"reference": "Patient/child"},
            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": code}]}]})
    };
    write_ok(
        s,
        versioned(
            ResourceType::RelatedPerson,
            "guard",
            1,
            at(1),
            relative("guard", "GUARD"),
        ),
    )
    .await;
    write_ok(
        s,
        versioned(
            ResourceType::RelatedPerson,
            "aunt",
            1,
            at(2),
            relative("aunt", "AUNT"),
        ),
    )
    .await;
    let day = |text: &str| {
        time::Date::parse(
            text,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .unwrap()
    };
    // The day before the 13th birthday the guardian sees the child, without any consent.
    let before = relative_of_on(&["guard"], day("2030-03-14"));
    assert_eq!(find_as(s, &before, Patient, &[]).await, ["child"]);
    assert_eq!(
        find_as(s, &before, ResourceType::RelatedPerson, &[]).await,
        ["guard", "aunt"]
    );
    // On the birthday, nobody had to do anything: the access has ended.
    let birthday = relative_of_on(&["guard"], day("2030-03-15"));
    assert_eq!(
        find_as(s, &birthday, Patient, &[]).await,
        Vec::<String>::new()
    );
    // Another relative is no guardian: a consent would be needed.
    let aunt = relative_of_on(&["aunt"], day("2030-03-14"));
    assert_eq!(find_as(s, &aunt, Patient, &[]).await, Vec::<String>::new());
}

pub async fn restricted_relative_needs_an_active_permit_consent_naming_them(store: Arc<dyn Store>) {
    access_fixture(&*store).await;
    let s = &*store;
    let rp1 = relative_of(&["rp1"]);
    assert_eq!(find_as(s, &rp1, Patient, &[]).await, ["p1"]);
    assert_eq!(
        find_as(s, &rp1, Encounter, &[]).await,
        ["e1", "e2", "e3", "e4"]
    );
    let page = page_as(s, &rp1, CarePlan, &[("_include", "CarePlan:care-team")]).await;
    assert_eq!(included_of(&page), ["CareTeam/ct1"]);
    // No consent, an inactive one, a deny: nothing.
    for r in ["rp2", "rp3", "rp4"] {
        let relative = relative_of(&[r]);
        assert_eq!(
            find_as(s, &relative, Patient, &[]).await,
            Vec::<String>::new(),
            "{r}"
        );
        assert_eq!(
            find_as(s, &relative, Encounter, &[]).await,
            Vec::<String>::new(),
            "{r}"
        );
    }
    assert_eq!(
        find_as(s, &relative_of(&["rp1", "rp2"]), Patient, &[]).await,
        ["p1"]
    );
    // A revoked consent takes effect on the next search.
    let revoked = consent("Patient/p1", "inactive", "permit", "RelatedPerson/rp1");
    write_ok(
        s,
        versioned(ResourceType::Consent, "rel1", 2, at(1), revoked),
    )
    .await;
    assert_eq!(find_as(s, &rp1, Patient, &[]).await, Vec::<String>::new());
    assert_eq!(find_as(s, &rp1, Encounter, &[]).await, Vec::<String>::new());
    // Directories stay visible.
    assert_eq!(
        find_as(s, &rp1, Organization, &[("_id", "uA")]).await,
        ["uA"]
    );
}

pub async fn restricted_staff_needs_a_care_relationship_and_respects_a_sparr(
    store: Arc<dyn Store>,
) {
    access_fixture(&*store).await;
    let s = &*store;
    // p1 through the caller's own role, p2 through a colleague at the unit (the owner tag
    // of vgB on the Patient itself does not matter); p3 only through an inactive team; p4
    // has a spärr against uA.
    assert_eq!(find_as(s, &staff_a(), Patient, &[]).await, ["p1", "p2"]);
    assert_eq!(find_as(s, &staff_a(), CareTeam, &[]).await, ["ct1", "ct2"]);
    // The spärr names uA, not uB: staff of uB with a relationship still see p4.
    assert_eq!(find_as(s, &staff_b(), Patient, &[]).await, ["p3", "p4"]);
    assert_eq!(find_as(s, &staff_b(), Encounter, &[]).await, ["e7", "e8"]);
    let page = page_as(
        s,
        &staff_a(),
        ResourceType::PractitionerRole,
        &[("_id", "me"), ("_revinclude", "CareTeam:participant")],
    )
    .await;
    assert_eq!(included_of(&page), ["CareTeam/ct1"]);
    // A relationship at unit level only (no role of the caller in the team).
    let Restriction::Staff(mut unit_only) = staff_a() else {
        unreachable!()
    };
    unit_only.members.clear();
    let unit_only = Restriction::Staff(unit_only);
    assert_eq!(find_as(s, &unit_only, Patient, &[]).await, ["p1", "p2"]);
    // A lifted spärr (inactive) no longer blocks.
    let lifted = consent("Patient/p4", "inactive", "deny", "Organization/uA");
    write_ok(
        s,
        versioned(ResourceType::Consent, "sparr4", 2, at(1), lifted),
    )
    .await;
    assert_eq!(
        find_as(s, &staff_a(), Patient, &[]).await,
        ["p1", "p2", "p4"]
    );
}

pub async fn restricted_staff_keep_to_their_care_provider_unless_named_or_consented(
    store: Arc<dyn Store>,
) {
    access_fixture(&*store).await;
    let s = &*store;
    // e2 is owned by vgB and names nothing of vgA; e3 names uA; e4 is vgA's own; e5 is
    // vgB's but p2 consented to vgA; e6 has no owner.
    assert_eq!(
        find_as(s, &staff_a(), Encounter, &[]).await,
        ["e1", "e3", "e4", "e5", "e6"]
    );
    let page = page_as(
        s,
        &staff_a(),
        Patient,
        &[("_id", "p1"), ("_revinclude", "Encounter:patient")],
    )
    .await;
    assert_eq!(
        included_of(&page),
        ["Encounter/e1", "Encounter/e3", "Encounter/e4"]
    );
    // Without the consent e5 is hidden too.
    let withdrawn = consent("Patient/p2", "inactive", "permit", "Organization/vgA");
    write_ok(
        s,
        versioned(ResourceType::Consent, "permit2", 2, at(1), withdrawn),
    )
    .await;
    assert_eq!(
        find_as(s, &staff_a(), Encounter, &[("patient", "Patient/p2")]).await,
        ["e6"]
    );
}

pub async fn restricted_staff_in_an_emergency_see_every_patient(store: Arc<dyn Store>) {
    access_fixture(&*store).await;
    let s = &*store;
    let Restriction::Staff(mut scope) = staff_a() else {
        unreachable!()
    };
    scope.emergency = true;
    let emergency = Restriction::Staff(scope);
    assert_eq!(
        find_as(s, &emergency, Patient, &[]).await,
        ["p1", "p2", "p3", "p4"]
    );
    // Every encounter of a patient; one naming no patient belongs to nobody.
    assert_eq!(
        find_as(s, &emergency, Encounter, &[]).await,
        ["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8"]
    );
    assert_eq!(find(s, Encounter, &[("_id", "e-none")]).await, ["e-none"]);
}

// ---------------------------------------------------------------------------------------
// Facts
// ---------------------------------------------------------------------------------------

async fn facts(store: &dyn Store, kind: &'static str, instant: OffsetDateTime) -> Vec<String> {
    use futures::TryStreamExt;
    let pages: Vec<crate::FactPage> = store
        .facts_at(kind, instant)
        .try_collect()
        .await
        .expect("facts read");
    let mut bodies: Vec<String> = pages
        .iter()
        .flat_map(|page| page.bodies().map(str::to_owned))
        .collect();
    bodies.sort();
    bodies
}

async fn record(store: &dyn Store, facts: &[(&'static str, &str, i64, &str)]) {
    let mut tx = store.begin().await.expect("begin");
    for (kind, subject, seconds, body) in facts {
        tx.record_fact(Fact {
            kind,
            subject: (*subject).to_owned(),
            at: at(*seconds),
            body: (*body).to_owned(),
        })
        .await
        .expect("record");
    }
    tx.commit().await.expect("commit");
}

pub async fn facts_read_back_as_they_stood_at_each_instant_and_roll_back_with_their_transaction(
    store: Arc<dyn Store>,
) {
    let s = &*store;
    record(
        s,
        &[
            ("k", "Patient/a", 10, "a1"),
            ("k", "Patient/b", 10, "b1"),
            ("other", "Patient/a", 10, "x"),
        ],
    )
    .await;
    // An unchanged fact keeps its first instant; a changed one ends where the next begins.
    record(
        s,
        &[("k", "Patient/a", 20, "a1"), ("k", "Patient/b", 20, "b2")],
    )
    .await;
    // The last fact a transaction records for a subject is the one kept.
    record(
        s,
        &[("k", "Patient/a", 30, "a2"), ("k", "Patient/a", 30, "a3")],
    )
    .await;
    assert!(facts(s, "k", at(5)).await.is_empty());
    assert_eq!(facts(s, "k", at(10)).await, ["a1", "b1"]);
    assert_eq!(facts(s, "k", at(25)).await, ["a1", "b2"]);
    assert_eq!(facts(s, "k", at(30)).await, ["a3", "b2"]);
    assert_eq!(facts(s, "other", at(30)).await, ["x"]);
    let mut tx = s.begin().await.expect("begin");
    tx.record_fact(Fact {
        kind: "k",
        subject: "Patient/b".to_owned(),
        at: at(40),
        body: "b3".to_owned(),
    })
    .await
    .expect("record");
    drop(tx);
    assert_eq!(facts(s, "k", at(50)).await, ["a3", "b2"]);

    // A body is one line: one with a line break is refused, and nothing of its
    // transaction is kept.
    let mut tx = s.begin().await.expect("begin");
    let broken = tx
        .record_fact(Fact {
            kind: "k",
            subject: "Patient/c".to_owned(),
            at: at(60),
            body: "c1\nc2".to_owned(),
        })
        .await;
    let refused = match broken {
        Err(error) => {
            drop(tx);
            Err(error)
        }
        Ok(()) => tx.commit().await,
    };
    assert!(refused.is_err(), "a body with a line break is refused");
    assert_eq!(facts(s, "k", at(70)).await, ["a3", "b2"]);

    // Many facts come back whole, however they are paged.
    let many: Vec<(String, String)> = (0..12_345)
        .map(|n| (format!("Patient/m{n}"), format!("m{n:05}")))
        .collect();
    let rows: Vec<(&'static str, &str, i64, &str)> = many
        .iter()
        .map(|(subject, body)| ("many", subject.as_str(), 80, body.as_str()))
        .collect();
    record(s, &rows).await;
    let read = facts(s, "many", at(90)).await;
    assert_eq!(read.len(), 12_345);
    assert_eq!(
        read,
        many.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>()
    );
}
