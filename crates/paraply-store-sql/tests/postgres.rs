//! The storage conformance suite on PostgreSQL, when `PARAPLY_TEST_DATABASE_URL` names a
//! server (e.g. `postgres://postgres@127.0.0.1:5432/test`). Each test creates its own
//! database through that URL and drops it afterwards, so runs never collide.

use std::future::Future;
use std::sync::Arc;

use paraply_store::Store;
use paraply_store_sql::testing::PostgresTestDatabase;
use paraply_store_sql::{PostgresOptions, PostgresStore};

async fn run_on_fresh_database<F, Fut>(nodes: usize, case: F)
where
    F: FnOnce(Vec<Arc<dyn Store>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = PostgresTestDatabase::create().await else {
        return;
    };
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..nodes {
        let options = PostgresOptions {
            max_connections: 8,
            ..PostgresOptions::default()
        };
        stores.push(Arc::new(
            PostgresStore::connect(&db.url, options).await.unwrap(),
        ));
    }
    let outcome = tokio::spawn(case(stores)).await;
    db.remove().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

async fn harness<F, Fut>(case: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_on_fresh_database(1, |mut stores| case(stores.remove(0))).await;
}

paraply_store::store_conformance_tests!(harness);

/// Two nodes (two pools, as two Paraply processes) racing updates of one resource: the
/// database alone must make exactly one writer win each version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_racing_updates_get_one_winner_per_version() {
    run_on_fresh_database(2, |stores| {
        paraply_store::conformance::race_updates(stores, 4, 10)
    })
    .await;
}

/// Nodes starting together all run the migrations; sqlx's advisory lock must serialise them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_migrate_once() {
    let Some(db) = PostgresTestDatabase::create().await else {
        return;
    };
    let connects = (0..4).map(|_| PostgresStore::connect(&db.url, PostgresOptions::default()));
    let results = futures::future::join_all(connects).await;
    let failures = results.iter().filter(|r| r.is_err()).count();
    db.remove().await;
    assert_eq!(failures, 0);
}

/// Nodes starting together on one database reindex in turn: the second node's turn at index
/// maintenance begins only when the first's ends, so it finds the work done.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn index_maintenance_turns_are_taken_one_node_at_a_time() {
    run_on_fresh_database(2, |stores| async move {
        let first = stores[0].maintain_index().await.unwrap();
        let other = stores[1].clone();
        let second = tokio::spawn(async move { other.maintain_index().await.map(drop) });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!second.is_finished(), "the second node waits for its turn");
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(10), second)
            .await
            .expect("the second node's turn follows the first")
            .unwrap()
            .unwrap();
    })
    .await;
}
