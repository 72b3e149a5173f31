//! The search index follows the search parameters of the running version: a database whose
//! rows of a parameter were extracted by an older definition (or are missing, for a
//! parameter added since) answers searches on it correctly once a node has started on it,
//! and the next start has nothing left to do.

use paraply_fhir::ResourceType::Consent;
use paraply_search::{param_definitions, param_rows};
use paraply_server::config::FileConfig;
use paraply_store::Store;

use super::*;

fn consent(kind: &str) -> Value {
    json!({"resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": kind}})
}

/// The ids `Consent?provision-type=<kind>` finds.
async fn consents(server: &TestServer, kind: &str) -> Vec<String> {
    let reply = server
        .get(&format!("Consent?provision-type={kind}&_count=100"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Leaves the database as an older definition of `provision-type` would have: every
/// Consent's rows say `deny`, and that older definition is the one recorded.
async fn make_provision_type_stale(store: &dyn Store) {
    let deny = param_rows(Consent, &["provision-type"], &consent("deny"));
    let mut turn = store.maintain_index().await.expect("a maintenance turn");
    let versions = turn.current_versions(Consent, None, 100).await.unwrap();
    let rows: Vec<_> = versions.iter().map(|v| (v.seq, deny.clone())).collect();
    turn.replace_rows(Consent, &["provision-type"], &rows)
        .await
        .unwrap();
    let mut definitions = param_definitions(Consent);
    for definition in &mut definitions {
        if definition.param == "provision-type" {
            definition.definition = "0;token;provision.type".into();
        }
    }
    turn.record_definitions(Consent, &definitions)
        .await
        .unwrap();
}

async fn stale_rows_are_replaced_when_a_node_starts(backend: Backend) {
    let Some(bed) = TestBed::start(backend).await else {
        return;
    };
    let deny = bed.server.create(&consent("deny")).await;
    let permit = bed.server.create(&consent("permit")).await;
    make_provision_type_stale(&*bed.server.store).await;
    // What a search on stale rows answers: the permit passes for a deny.
    assert_eq!(consents(&bed.server, "permit").await, Vec::<String>::new());
    assert_eq!(consents(&bed.server, "deny").await.len(), 2);
    bed.server.stop().await;

    let restarted = TestServer::start(&bed.database.url, FileConfig::default()).await;
    assert_eq!(consents(&restarted, "deny").await, [deny]);
    assert_eq!(consents(&restarted, "permit").await, [permit]);
    // The next start finds nothing to do.
    assert_eq!(paraply_core::reindex(&*restarted.store).await.unwrap(), []);
    restarted.stop().await;
    bed.database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_rows_are_replaced_when_a_node_starts_on_sqlite() {
    stale_rows_are_replaced_when_a_node_starts(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_rows_are_replaced_when_a_node_starts_on_postgres() {
    stale_rows_are_replaced_when_a_node_starts(Backend::Postgres).await;
}

/// Nodes starting together on one PostgreSQL database take turns: one reindexes, the
/// others wait and then find nothing left to do. (SQLite serves a single node.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_on_postgres_reindex_once() {
    let Some(bed) = TestBed::start(Backend::Postgres).await else {
        return;
    };
    let deny = bed.server.create(&consent("deny")).await;
    let permit = bed.server.create(&consent("permit")).await;
    make_provision_type_stale(&*bed.server.store).await;

    let url = bed.database.url.as_str();
    let (first, second) = futures::join!(
        paraply_store_sql::open_store(url, 2),
        paraply_store_sql::open_store(url, 2)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    let (first, second) = futures::join!(
        paraply_core::reindex(&*first),
        paraply_core::reindex(&*second)
    );
    let mut reports = [first.unwrap(), second.unwrap()];
    reports.sort_by_key(Vec::len);
    assert_eq!(reports[0], [], "the node that waited found nothing to do");
    assert_eq!(
        reports[1],
        [paraply_core::Reindexed {
            resource_type: Consent,
            params: vec!["provision-type".into()],
            resources: 2,
        }]
    );
    // A node already serving sees the new rows at once.
    assert_eq!(consents(&bed.server, "deny").await, [deny]);
    assert_eq!(consents(&bed.server, "permit").await, [permit]);
    bed.finish().await;
}
