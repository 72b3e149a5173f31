//! The storage conformance suite on SQLite: a fresh database file per test.

use std::future::Future;
use std::sync::Arc;

use paraply_store::Store;
use paraply_store_sql::{SqliteOptions, SqliteStore};

/// Runs `case` on a new database in a folder of its own (the folder does not exist yet, so
/// `open` must create it), removed afterwards, also when the case fails.
async fn harness<F, Fut>(case: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = std::env::temp_dir().join(format!("paraply-store-test-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}", dir.join("paraply.db").display());
    let store = SqliteStore::open(&url, SqliteOptions::default())
        .await
        .unwrap();
    let outcome = tokio::spawn(case(Arc::new(store))).await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

paraply_store::store_conformance_tests!(harness);

#[tokio::test]
async fn plain_path_and_reopen_keep_the_data() {
    let dir = std::env::temp_dir().join(format!("paraply-store-test-{}", uuid::Uuid::new_v4()));
    let path = dir.join("nested").join("db.sqlite");
    let path = path.to_str().unwrap();
    {
        let store = SqliteStore::open(path, SqliteOptions::default())
            .await
            .unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.write(paraply_store::NewVersion {
            resource_type: paraply_fhir::ResourceType::Patient,
            id: "p1".parse().unwrap(),
            version_id: paraply_fhir::VersionId::FIRST,
            last_updated: time::OffsetDateTime::UNIX_EPOCH,
            body: Some("{}".into()),
            index: Vec::new(),
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    // Opening again runs the migrations again: they must be recognised as applied.
    let store = SqliteStore::open(path, SqliteOptions::default())
        .await
        .unwrap();
    let read = store
        .read(paraply_fhir::ResourceType::Patient, &"p1".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(read.and_then(|r| r.body).as_deref(), Some("{}"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn in_memory_database_is_refused() {
    assert!(
        SqliteStore::open("sqlite::memory:", SqliteOptions::default())
            .await
            .is_err()
    );
}
