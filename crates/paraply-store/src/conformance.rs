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

use std::collections::BTreeSet;
use std::sync::Arc;

use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::{SearchQuery, index_rows};
use time::{Duration, OffsetDateTime};

use crate::{
    HistoryCursor, HistoryQuery, HistoryScope, NewVersion, Store, StoreError, StoredResource,
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
            search_by_id_finds_only_current_resources_of_the_type,
            search_by_identifier_matches_every_token_form,
            search_clauses_are_combined_with_and,
            search_does_not_find_deleted_resources,
            update_replaces_the_index_rows,
            search_limit_caps_matches_but_total_counts_all,
            history_lists_versions_newest_first_for_instance_type_and_system,
            history_since_keeps_versions_written_at_or_after_the_instant,
            history_pages_by_cursor_with_count_and_total,
            history_cursor_stays_correct_when_versions_are_written_between_pages,
            concurrent_writers_get_one_winner_per_version_and_lose_no_update,
            ping_succeeds,
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
    let page = store
        .search(&patient_query(pairs), 100)
        .await
        .expect("search succeeds");
    assert_eq!(page.total, page.matches.len() as u64, "total of {pairs:?}");
    assert!(page.matches.iter().all(|m| !m.is_deleted()));
    page.matches.iter().map(|m| m.id.to_string()).collect()
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
        .search(&patient_query(&[("identifier", "http://a|1")]), 10)
        .await
        .unwrap();
    assert_eq!(found.total, 1);
    assert_eq!(found.matches[0].id, id("p1"));
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

pub async fn search_by_id_finds_only_current_resources_of_the_type(store: Arc<dyn Store>) {
    for name in ["c", "a", "b"] {
        write_ok(&*store, patient(name, 1, at(0), &[])).await;
    }
    write_ok(&*store, patient("a", 2, at(1), &[])).await;
    write_ok(&*store, organization("a", 1, at(0))).await;
    write_ok(&*store, organization("d", 1, at(0))).await;

    assert_eq!(search_ids(&*store, &[("_id", "c,a,d")]).await, ["a", "c"]);
    let a = store
        .search(&patient_query(&[("_id", "a")]), 10)
        .await
        .unwrap();
    assert_eq!(a.matches[0].version_id, v(2));
    assert_eq!(a.matches[0].resource_type, ResourceType::Patient);
    // No clauses: every current Patient, ordered by id.
    assert_eq!(search_ids(&*store, &[]).await, ["a", "b", "c"]);
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

pub async fn search_limit_caps_matches_but_total_counts_all(store: Arc<dyn Store>) {
    for name in ["p1", "p2", "p3", "p4", "p5"] {
        write_ok(&*store, patient(name, 1, at(0), &[(None, "x")])).await;
    }
    let page = store
        .search(&patient_query(&[("identifier", "x")]), 2)
        .await
        .unwrap();
    let ids: Vec<String> = page.matches.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(ids, ["p1", "p2"]);
    assert_eq!(page.total, 5);
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

pub async fn ping_succeeds(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}
