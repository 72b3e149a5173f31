//! Conformance cases of the access log: append with the data's transaction, search by
//! each key under the access restriction, page, verify the chains, purge.

use std::sync::Arc;

use paraply_search::{DateRange, PageCursor, Prefix, Restriction, SortValue, parse_date_range};
use time::{Duration, OffsetDateTime};

use super::{access_fixture, patients, relative_of, staff_a, staff_b};
use crate::{
    AccessLogCondition, AccessLogEntry, AccessLogFilter, AccessLogOrder, AccessLogQuery,
    AccessLogTerm, Store, TermKey,
};

/// An entry of `patients` at `recorded`, by `agent`, with `subtype` and `outcome`.
fn entry(
    id: &str,
    recorded: OffsetDateTime,
    patients: &[&str],
    agent: &str,
    subtype: &str,
    outcome: &str,
) -> AccessLogEntry {
    let mut terms: Vec<AccessLogTerm> = patients
        .iter()
        .flat_map(|p| {
            [
                AccessLogTerm {
                    key: TermKey::Patient,
                    value: (*p).to_owned(),
                },
                AccessLogTerm {
                    key: TermKey::Entity,
                    value: format!("Patient/{p}"),
                },
            ]
        })
        .collect();
    terms.push(AccessLogTerm {
        key: TermKey::Agent,
        value: agent.to_owned(),
    });
    AccessLogEntry {
        id: id.parse().expect("valid test id"),
        recorded,
        subtype: subtype.to_owned(),
        action: "R".to_owned(),
        outcome: outcome.to_owned(),
        emergency: false,
        body: format!("{{\"test\":\"{id}\"}}"),
        terms,
    }
}

fn t(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_780_000_000).expect("valid instant")
        + Duration::minutes(minutes)
}

async fn append(store: &dyn Store, entries: Vec<AccessLogEntry>) {
    let mut tx = store.begin().await.expect("begin");
    tx.append_access_log(entries).await.expect("append");
    tx.commit().await.expect("commit");
}

fn query(filters: Vec<Vec<AccessLogCondition>>) -> AccessLogQuery {
    AccessLogQuery {
        filters: filters
            .into_iter()
            .map(|any_of| AccessLogFilter { any_of })
            .collect(),
        order: AccessLogOrder::Appended,
        count: 100,
        page: None,
        total: true,
        restriction: None,
    }
}

fn term(key: TermKey, value: &str) -> AccessLogCondition {
    AccessLogCondition::Term(AccessLogTerm {
        key,
        value: value.to_owned(),
    })
}

async fn ids(store: &dyn Store, query: &AccessLogQuery) -> Vec<String> {
    let page = store.search_access_log(query).await.expect("search");
    if query.page.is_none() && !page.more {
        assert_eq!(page.total, Some(page.rows.len() as u64), "{query:?}");
    }
    page.rows.iter().map(|r| r.id.to_string()).collect()
}

async fn fixture(store: &dyn Store) {
    append(
        store,
        vec![
            entry("a1", t(0), &["p1"], "PractitionerRole/me", "read", "0"),
            entry(
                "a2",
                t(3),
                &["p2"],
                "PractitionerRole/me",
                "search-type",
                "0",
            ),
            entry(
                "a3",
                t(1),
                &["p3", "p1"],
                "PractitionerRole/oth",
                "read",
                "4",
            ),
        ],
    )
    .await;
    let mut emergency = entry("a4", t(2), &["p4"], "Patient/p4", "vread", "0");
    emergency.emergency = true;
    append(store, vec![emergency]).await;
}

pub async fn access_log_entries_are_found_by_each_key_and_paged(store: Arc<dyn Store>) {
    let s = &*store;
    fixture(s).await;
    assert_eq!(ids(s, &query(vec![])).await, ["a1", "a2", "a3", "a4"]);
    let cases: Vec<(Vec<AccessLogCondition>, &[&str])> = vec![
        (vec![term(TermKey::Patient, "p1")], &["a1", "a3"][..]),
        (vec![term(TermKey::Entity, "Patient/p3")], &["a3"][..]),
        (
            vec![term(TermKey::Agent, "PractitionerRole/me")],
            &["a1", "a2"][..],
        ),
        (vec![AccessLogCondition::Id("a2".into())], &["a2"][..]),
        (
            vec![AccessLogCondition::Subtype("read".into())],
            &["a1", "a3"][..],
        ),
        (vec![AccessLogCondition::Outcome("4".into())], &["a3"][..]),
        (vec![AccessLogCondition::Emergency(true)], &["a4"][..]),
        (vec![AccessLogCondition::Never], &[][..]),
        (
            vec![
                AccessLogCondition::Subtype("vread".into()),
                AccessLogCondition::Outcome("4".into()),
            ],
            &["a3", "a4"][..],
        ),
    ];
    for (any_of, expected) in cases {
        assert_eq!(
            ids(s, &query(vec![any_of.clone()])).await,
            expected,
            "{any_of:?}"
        );
    }
    assert_eq!(
        ids(
            s,
            &query(vec![
                vec![term(TermKey::Patient, "p1")],
                vec![AccessLogCondition::Outcome("0".into())]
            ])
        )
        .await,
        ["a1"],
        "filters are combined with AND"
    );
    let day = parse_date_range("2020-01-01").expect("a date");
    let minute = DateRange {
        start: crate::micros(t(1)),
        end: crate::micros(t(1)) + 1,
    };
    for (prefix, range, expected) in [
        (Prefix::Ge, minute, &["a2", "a3", "a4"][..]),
        (Prefix::Gt, minute, &["a2", "a4"]),
        (Prefix::Lt, minute, &["a1"]),
        (Prefix::Le, minute, &["a1", "a3"]),
        (Prefix::Eq, minute, &["a3"]),
        (Prefix::Ne, minute, &["a1", "a2", "a4"]),
        (Prefix::Eq, day, &[]),
    ] {
        let q = query(vec![vec![AccessLogCondition::Recorded { prefix, range }]]);
        assert_eq!(ids(s, &q).await, expected, "{prefix:?}");
    }

    // Newest first, two per page, following the cursor of the last row.
    let mut q = query(vec![]);
    q.order = AccessLogOrder::Recorded { descending: true };
    q.count = 2;
    let first = s.search_access_log(&q).await.expect("first page");
    assert!(first.more);
    assert_eq!(first.total, Some(4), "counted when asked");
    let ids_of = |page: &crate::AccessLogPage| -> Vec<String> {
        page.rows.iter().map(|r| r.id.to_string()).collect()
    };
    assert_eq!(ids_of(&first), ["a2", "a4"]);
    let last = first.rows.last().expect("a row");
    q.page = Some(PageCursor {
        values: vec![SortValue::Int(crate::micros(last.recorded))],
        seq: last.seq,
        backwards: false,
    });
    let second = s.search_access_log(&q).await.expect("second page");
    assert_eq!(ids_of(&second), ["a3", "a1"]);
    assert!(!second.more);
    assert_eq!(second.rows[0].recorded, t(1));
    assert_eq!(second.rows[0].body, "{\"test\":\"a3\"}");
}

pub async fn access_log_searches_apply_the_access_restriction(store: Arc<dyn Store>) {
    let s = &*store;
    access_fixture(s).await;
    fixture(s).await;
    let as_ = |restriction: Restriction| {
        let mut q = query(vec![]);
        q.restriction = Some(restriction);
        q
    };
    assert_eq!(ids(s, &as_(patients(&["p1"]))).await, ["a1", "a3"]);
    assert_eq!(ids(s, &as_(relative_of(&["rp1"]))).await, ["a1", "a3"]);
    // Staff of uA have a relationship with p1 and p2; staff of uB with p3 and p4.
    assert_eq!(ids(s, &as_(staff_a())).await, ["a1", "a2", "a3"]);
    assert_eq!(ids(s, &as_(staff_b())).await, ["a3", "a4"]);
    let Restriction::Staff(mut emergency) = staff_a() else {
        panic!("staff")
    };
    emergency.emergency = true;
    assert_eq!(
        ids(s, &as_(Restriction::Staff(emergency))).await,
        ["a1", "a2", "a3", "a4"]
    );
    let mut mine = as_(patients(&["p4"]));
    mine.filters = vec![AccessLogFilter {
        any_of: vec![term(TermKey::Patient, "p1")],
    }];
    assert!(ids(s, &mine).await.is_empty(), "another patient's entries");
}

pub async fn access_log_entries_commit_or_roll_back_with_their_transaction(store: Arc<dyn Store>) {
    let s = &*store;
    let mut tx = s.begin().await.expect("begin");
    tx.append_access_log(vec![entry(
        "gone",
        t(0),
        &["p1"],
        "Patient/p1",
        "read",
        "0",
    )])
    .await
    .expect("append");
    drop(tx);
    assert!(ids(s, &query(vec![])).await.is_empty());
    let verified = s.verify_access_log().await.expect("verify");
    assert_eq!(verified.broken, None, "a rolled-back append leaves no gap");
    fixture(s).await;
    assert_eq!(ids(s, &query(vec![])).await.len(), 4);
}

pub async fn access_log_chains_verify_after_concurrent_appends(store: Arc<dyn Store>) {
    let appends = (0..12).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let entries = (0..5)
                .map(|j| {
                    let id = format!("c{i}-{j}");
                    entry(&id, t(i), &["p1"], "Patient/p1", "read", "0")
                })
                .collect();
            append(&*store, entries).await;
        })
    });
    for task in futures::future::join_all(appends).await {
        task.expect("append task");
    }
    let verified = store.verify_access_log().await.expect("verify");
    assert_eq!(verified.broken, None);
    let walked: u64 = verified.chains.iter().map(|c| c.entries).sum();
    assert_eq!(walked, 60);
    assert!(
        verified
            .chains
            .iter()
            .all(|c| c.head == c.anchor + c.entries as i64)
    );
}

pub async fn access_log_purge_deletes_old_entries_records_itself_and_verify_still_passes(
    store: Arc<dyn Store>,
) {
    let s = &*store;
    let now = OffsetDateTime::now_utc();
    let old = now - Duration::days(6 * 366);
    for i in 0..4 {
        append(
            s,
            vec![
                entry(&format!("old{i}"), old, &["p1"], "Patient/p1", "read", "0"),
                entry(&format!("new{i}"), now, &["p1"], "Patient/p1", "read", "0"),
            ],
        )
        .await;
    }
    append(
        s,
        vec![entry(
            "older-but-after",
            old,
            &["p1"],
            "Patient/p1",
            "read",
            "0",
        )],
    )
    .await;
    let cutoff = now - Duration::days(5 * 365);
    let purge = entry("purge-1", now, &[], "Device/paraply", "delete", "0");
    let purged = s.purge_access_log(cutoff, purge).await.expect("purge");
    assert!(purged.deleted >= 1, "{purged:?}");
    let left = ids(s, &query(vec![])).await;
    assert!(
        left.contains(&"purge-1".to_owned()),
        "the purge logs itself"
    );
    for i in 0..4 {
        assert!(
            left.contains(&format!("new{i}")),
            "new{i} is kept: {left:?}"
        );
    }
    let verified = s.verify_access_log().await.expect("verify");
    assert_eq!(verified.broken, None, "{verified:?}");
    // Each chain starts at the anchor the purge recorded; appends continue after it.
    for anchor in &purged.anchors {
        let chain = verified
            .chains
            .iter()
            .find(|c| c.chain == anchor.chain)
            .expect("the anchored chain");
        assert_eq!(chain.anchor, anchor.position);
    }
    append(
        s,
        vec![entry("after", now, &["p1"], "Patient/p1", "read", "0")],
    )
    .await;
    assert_eq!(s.verify_access_log().await.expect("verify").broken, None);
    // A second purge with nothing old left deletes nothing and still passes.
    let again = s
        .purge_access_log(
            cutoff,
            entry("purge-2", now, &[], "Device/paraply", "delete", "0"),
        )
        .await
        .expect("purge again");
    assert_eq!(
        again.deleted, 0,
        "every chain already starts after the cutoff"
    );
    assert_eq!(s.verify_access_log().await.expect("verify").broken, None);
}
