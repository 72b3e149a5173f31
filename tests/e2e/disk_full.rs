//! A full database (SQLite with `[storage] sqlite_max_size_mb`): writes answer 503 with an
//! OperationOutcome and store nothing, reads go on, nothing acknowledged is lost, and writes
//! resume once there is room again (here: the limit raised, the server restarted).
//!
//! PostgreSQL has no size limit of its own to set; its `disk_full` error (53100) maps to the
//! same 503 (`paraply-store-sql`'s `db_error`), which this test does not exercise.

use paraply_server::config::{FileConfig, StorageConfig};

use super::*;

fn limited(mb: u64) -> FileConfig {
    FileConfig {
        storage: StorageConfig {
            sqlite_max_size_mb: Some(mb),
            ..StorageConfig::default()
        },
        ..FileConfig::default()
    }
}

/// A transaction of 20 patients with ids `b{batch}-{n}`, each carrying ~2 kB of text.
fn batch(batch: usize) -> Value {
    let entries: Vec<Value> = (0..20)
        .map(|n| {
            let id = format!("b{batch}-{n}");
            json!({
                "resource": {"resourceType": "Patient", "id": id,
                    "name": [{"family": "Fyllnad", "given": ["x".repeat(2000)]}]},
                "request": {"method": "PUT", "url": format!("Patient/{id}")}
            })
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

#[tokio::test]
async fn a_full_database_refuses_writes_keeps_reads_and_loses_nothing() {
    let Some(database) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let server = TestServer::start(&database.url, limited(3)).await;
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for n in 0..400 {
        let reply = server.post("", &batch(n)).await;
        match reply.status {
            200 => acknowledged.push(n),
            503 => {
                refused = Some((n, reply));
                break;
            }
            other => panic!("batch {n}: {other} {}", reply.text),
        }
    }
    let (full_at, reply) = refused.expect("the database fills up within 400 batches");
    assert!(!acknowledged.is_empty(), "some batches fit");
    assert_eq!(
        reply.body["resourceType"], "OperationOutcome",
        "{}",
        reply.text
    );
    assert_eq!(reply.outcome_issue()["code"], "transient", "{}", reply.text);
    assert!(reply.text.contains("no room"), "{}", reply.text);
    // Nothing of the refused transaction is there; every acknowledged write is, and reads
    // and searches go on.
    assert_eq!(
        server.get(&format!("Patient/b{full_at}-0")).await.status,
        404
    );
    for n in &acknowledged {
        assert_eq!(
            server.get(&format!("Patient/b{n}-19")).await.status,
            200,
            "b{n}"
        );
    }
    let search = server
        .get("Patient?family=Fyllnad&_count=1&_total=accurate")
        .await;
    assert_eq!(search.status, 200, "{}", search.text);
    assert_eq!(
        search.body["total"],
        json!(acknowledged.len() * 20),
        "{}",
        search.text
    );
    // A single write is refused the same way.
    let single = server
        .put(
            "Patient/ensam",
            &json!({"resourceType": "Patient", "id": "ensam"}),
        )
        .await;
    assert_eq!(single.status, 503, "{}", single.text);
    server.stop().await;

    // Room again: the limit raised. Everything acknowledged is there, and writes resume.
    let server = TestServer::start(&database.url, limited(64)).await;
    for n in &acknowledged {
        let patient = server.get(&format!("Patient/b{n}-0")).await;
        assert_eq!(patient.status, 200, "b{n}");
        assert_eq!(patient.body["meta"]["versionId"], "1");
    }
    assert_eq!(server.post("", &batch(full_at)).await.status, 200);
    assert_eq!(
        server.get(&format!("Patient/b{full_at}-0")).await.status,
        200
    );
    server.stop().await;
    database.remove().await;
}
