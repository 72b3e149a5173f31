//! The storage conformance suite on PostgreSQL, when `PARAPLY_TEST_DATABASE_URL` names a
//! server (e.g. `postgres://postgres@127.0.0.1:5432/test`). Each test creates its own
//! database through that URL and drops it afterwards, so runs never collide.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;

use paraply_store::Store;
use paraply_store_sql::{PostgresOptions, PostgresStore};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

const URL_VAR: &str = "PARAPLY_TEST_DATABASE_URL";

/// A fresh, empty database on the test server; dropped by [`TestDatabase::drop_now`].
struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// `None` (after saying so loudly) when no server is configured.
    async fn create() -> Option<TestDatabase> {
        let Ok(admin_url) = std::env::var(URL_VAR) else {
            // Straight to the stderr handle: the test harness captures `eprintln!`, and a
            // skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "PostgreSQL SKIPPED: {URL_VAR} is not set"
            );
            return None;
        };
        let name = format!("paraply_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Some(TestDatabase {
            admin_url,
            name,
            url,
        })
    }

    /// Best effort: a leftover `paraply_t_*` database is harmless.
    async fn drop_now(self) {
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = sqlx::query(AssertSqlSafe(drop)).execute(&mut admin).await;
            let _ = admin.close().await;
        }
    }
}

/// `url` with its database path replaced by `name` (the query string is kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").unwrap();
    let host = rest.split_once('/').map_or(rest, |(host, _)| host);
    match query {
        Some(query) => format!("{scheme}://{host}/{name}?{query}"),
        None => format!("{scheme}://{host}/{name}"),
    }
}

async fn run_on_fresh_database<F, Fut>(nodes: usize, case: F)
where
    F: FnOnce(Vec<Arc<dyn Store>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = TestDatabase::create().await else {
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
    db.drop_now().await;
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
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let connects = (0..4).map(|_| PostgresStore::connect(&db.url, PostgresOptions::default()));
    let results = futures::future::join_all(connects).await;
    let failures = results.iter().filter(|r| r.is_err()).count();
    db.drop_now().await;
    assert_eq!(failures, 0);
}

#[test]
fn test_database_url_keeps_host_and_options() {
    assert_eq!(
        with_database("postgres://u@h:5432/test?sslmode=disable", "x"),
        "postgres://u@h:5432/x?sslmode=disable"
    );
    assert_eq!(with_database("postgresql://h", "x"), "postgresql://h/x");
}
