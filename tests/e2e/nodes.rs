//! Several stateless Paraply nodes on one database: concurrent writers through different
//! nodes never lose an update, and each version is won exactly once.

use super::*;

async fn two_nodes_race(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let config = paraply_server::config::FileConfig::default();
    let nodes = [
        TestServer::start(&database.url, config.clone()).await,
        TestServer::start(&database.url, config).await,
    ];
    let body = json!({"resourceType": "Patient", "id": "shared", "gender": "female"});
    assert_eq!(nodes[0].put("Patient/shared", &body).await.status, 201);

    const WRITERS_PER_NODE: usize = 4;
    const UPDATES_EACH: usize = 5;
    let mut tasks = Vec::new();
    for node in &nodes {
        for writer in 0..WRITERS_PER_NODE {
            let client = node.client.clone();
            let url = node.url("Patient/shared");
            tasks.push(async move {
                let mut won = Vec::new();
                let mut lost = 0;
                while won.len() < UPDATES_EACH {
                    let current: Value =
                        client.get(&url).send().await.unwrap().json().await.unwrap();
                    let version = current["meta"]["versionId"].as_str().unwrap().to_owned();
                    let mut next = current.clone();
                    next["birthDate"] = json!(format!("19{:02}-01-01", writer * 10 + won.len()));
                    let reply = client
                        .put(&url)
                        .header("content-type", "application/fhir+json")
                        .header("if-match", format!("W/\"{version}\""))
                        .body(next.to_string())
                        .send()
                        .await
                        .unwrap();
                    match reply.status().as_u16() {
                        200 => {
                            let etag = reply.headers()["etag"].to_str().unwrap().to_owned();
                            won.push(etag);
                        }
                        412 => lost += 1,
                        other => {
                            panic!("unexpected status {other}: {}", reply.text().await.unwrap())
                        }
                    }
                }
                (won, lost)
            });
        }
    }
    let results = futures::future::join_all(tasks).await;
    let mut versions: Vec<String> = results.iter().flat_map(|(won, _)| won.clone()).collect();
    let conflicts: usize = results.iter().map(|(_, lost)| lost).sum();
    let total = WRITERS_PER_NODE * 2 * UPDATES_EACH;
    versions.sort();
    versions.dedup();
    assert_eq!(versions.len(), total, "each version was won exactly once");
    let current = nodes[1].get("Patient/shared").await;
    assert_eq!(current.body["meta"]["versionId"], (total + 1).to_string());
    let history = nodes[0].get("Patient/shared/_history?_count=1000").await;
    assert_eq!(history.body["total"], total + 1, "no version lost");
    eprintln!(
        "{backend:?}: {total} updates through 2 nodes, {conflicts} refused with 412 and retried"
    );

    // Without If-Match every update succeeds: the server retries on the newer version.
    let mut blind = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for i in 0..10 {
            let body = json!({"resourceType": "Patient", "id": "shared", "birthDate": format!("20{n}{i}-01-01")});
            blind.push(async move { node.put("Patient/shared", &body).await.status });
        }
    }
    let statuses = futures::future::join_all(blind).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let current = nodes[0].get("Patient/shared").await;
    assert_eq!(current.body["meta"]["versionId"], (total + 21).to_string());

    for node in nodes {
        node.stop().await;
    }
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_database_lose_no_update() {
    two_nodes_race(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_sqlite_file_lose_no_update() {
    two_nodes_race(Backend::Sqlite).await;
}
