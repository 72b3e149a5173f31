//! Group commit for a database with one writer (SQLite): concurrent write transactions share
//! one database transaction, and so one `fsync`.
//!
//! With `synchronous=FULL` every commit waits for the disk (about 3.6 ms on the machine of
//! docs/benchmarks.md), and SQLite holds its only write lock meanwhile, so committing each
//! request's transaction on its own caps the write rate at a few hundred transactions a
//! second however small they are. Here the writer connection stays in one `BEGIN IMMEDIATE`
//! transaction while transactions queue for it: each runs inside a `SAVEPOINT` of its own
//! (its failure rolls back only its own work), then either hands the connection to the next
//! one in the queue or, when nobody is waiting, commits the whole group. A transaction's
//! `commit` returns only once the group's `COMMIT` is on disk, with that commit's result:
//! nothing is acknowledged before it is durable, and a failed group commit fails every
//! member.
//!
//! Who commits: a member that hands over queues for the connection again, behind everyone
//! who was waiting. When its turn comes its group has either been committed (it only reads
//! the result) or it commits it itself — so a group is never left open because the member it
//! was handed to went away, and a group holds exactly the transactions that queued while it
//! was being written. A member dropped without commit (an error, or a cancelled request)
//! rolls back to its savepoint on a task of its own and then lets the group go on the same
//! way.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use paraply_store::StoreError;
use sqlx::Pool;
use sqlx::pool::PoolConnection;
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::common::Backend;
use crate::error::db_error;

/// One member's work inside the group's transaction; a fixed name works because members
/// take turns (at most one savepoint is open at a time).
const SAVEPOINT: &str = "SAVEPOINT paraply_member";
const RELEASE: &str = "RELEASE paraply_member";
const ROLLBACK_MEMBER: &str = "ROLLBACK TO paraply_member";

/// The writer connection of a single-writer database, shared by group commit.
pub(crate) struct GroupWriter<DB: Backend> {
    pool: Pool<DB>,
    begin: &'static str,
    slot: Arc<Mutex<Option<OpenGroup<DB>>>>,
    /// Transactions queued to join (not members queued to commit): a member hands over
    /// only when one of them is waiting.
    pub(crate) joining: Arc<AtomicUsize>,
    /// Groups committed so far; tests read it to see that transactions shared commits.
    pub(crate) commits: Arc<AtomicUsize>,
}

impl<DB: Backend> std::fmt::Debug for GroupWriter<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupWriter")
            .field("joining", &self.joining.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl<DB: Backend> Clone for GroupWriter<DB> {
    fn clone(&self) -> Self {
        GroupWriter {
            pool: self.pool.clone(),
            begin: self.begin,
            slot: self.slot.clone(),
            joining: self.joining.clone(),
            commits: self.commits.clone(),
        }
    }
}

type Slot<DB> = OwnedMutexGuard<Option<OpenGroup<DB>>>;
type Outcome = Result<(), StoreError>;

/// A group's transaction, open on the writer connection.
struct OpenGroup<DB: Backend> {
    /// `None` once the group has ended and the connection went back to the pool.
    connection: Option<PoolConnection<DB>>,
    /// Members whose work is released into the transaction, waiting for its commit.
    members: Vec<oneshot::Sender<Outcome>>,
}

/// A connection dropped while its transaction is open must not go back to the pool: the
/// next user would find the transaction still open. Closing it rolls the transaction back.
impl<DB: Backend> Drop for OpenGroup<DB> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.as_mut() {
            connection.close_on_drop();
        }
    }
}

/// Counts a task queued to join while it waits, also if it is cancelled meanwhile.
struct Joining(Arc<AtomicUsize>);

impl Drop for Joining {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<DB: Backend> GroupWriter<DB> {
    /// The writer of `pool` (of exactly one connection), whose transactions start with
    /// `begin`.
    pub(crate) fn new(pool: Pool<DB>, begin: &'static str) -> Self {
        GroupWriter {
            pool,
            begin,
            slot: Arc::new(Mutex::new(None)),
            joining: Arc::new(AtomicUsize::new(0)),
            commits: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Waits for the writer and starts a member: its own savepoint in the open group's
    /// transaction, or a new group.
    pub(crate) async fn join(&self) -> Result<GroupTx<DB>, StoreError> {
        self.joining.fetch_add(1, Ordering::SeqCst);
        let queued = Joining(self.joining.clone());
        let mut slot = self.slot.clone().lock_owned().await;
        drop(queued);
        if slot.is_none() {
            let mut connection = self.pool.acquire().await.map_err(db_error)?;
            execute::<DB>(&mut connection, self.begin).await?;
            *slot = Some(OpenGroup {
                connection: Some(connection),
                members: Vec::new(),
            });
        }
        let mut member = GroupTx {
            slot: Some(slot),
            writer: self.clone(),
        };
        let begun = match member.connection() {
            Ok(connection) => execute::<DB>(connection, SAVEPOINT).await,
            Err(error) => Err(error),
        };
        if let Err(error) = begun {
            if let Some(slot) = member.slot.take() {
                fail_group(slot, &error).await;
            }
            return Err(error);
        }
        Ok(member)
    }

    fn somebody_joining(&self) -> bool {
        self.joining.load(Ordering::SeqCst) > 0
    }
}

/// One transaction's turn at the writer: it holds the connection until it commits or is
/// dropped.
pub(crate) struct GroupTx<DB: Backend> {
    /// `None` once the member has ended.
    slot: Option<Slot<DB>>,
    writer: GroupWriter<DB>,
}

impl<DB: Backend> GroupTx<DB> {
    /// The writer connection, inside this member's savepoint.
    pub(crate) fn connection(&mut self) -> Result<&mut DB::Connection, StoreError> {
        self.slot
            .as_mut()
            .and_then(|slot| group_connection(slot))
            .ok_or_else(ended)
    }

    /// Keeps this member's work and returns once the group holding it is committed, with
    /// the group's result.
    pub(crate) async fn commit(mut self) -> Outcome {
        let mut slot = self.slot.take().ok_or_else(ended)?;
        let released = match group_connection(&mut slot) {
            Some(connection) => execute::<DB>(connection, RELEASE).await,
            None => Err(ended()),
        };
        if let Err(error) = released {
            // A savepoint disappears only with the whole transaction.
            fail_group(slot, &error).await;
            return Err(error);
        }
        let (done, mut result) = oneshot::channel();
        if let Some(group) = slot.as_mut() {
            group.members.push(done);
        }
        let duty = CommitDuty(Some(self.writer.clone()));
        finish_turn(slot, &self.writer).await;
        if let Ok(outcome) = result.try_recv() {
            duty.done();
            return outcome;
        }
        // Queue behind the transactions handed the writer, then commit the group unless one
        // of them has.
        let slot = self.writer.slot.clone().lock_owned().await;
        let outcome = match result.try_recv() {
            Ok(outcome) => outcome,
            Err(oneshot::error::TryRecvError::Empty) => {
                commit_group(slot, &self.writer).await;
                result.await.unwrap_or_else(|_| Err(lost()))
            }
            Err(oneshot::error::TryRecvError::Closed) => Err(lost()),
        };
        duty.done();
        outcome
    }
}

/// A member dropped before it committed rolls back its own work; the rest of the group goes
/// on. SQL needs a task: `drop` cannot wait.
impl<DB: Backend> Drop for GroupTx<DB> {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        let writer = self.writer.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(abandon(slot, writer));
        }
    }
}

/// A member that handed the writer over and then went away (a cancelled request) leaves
/// its group to be committed by someone: a task of its own, if it still is open.
struct CommitDuty<DB: Backend>(Option<GroupWriter<DB>>);

impl<DB: Backend> CommitDuty<DB> {
    fn done(mut self) {
        self.0 = None;
    }
}

impl<DB: Backend> Drop for CommitDuty<DB> {
    fn drop(&mut self) {
        let Some(writer) = self.0.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let slot = writer.slot.clone().lock_owned().await;
                // Whatever group is open now has no member at work (the lock is ours), so
                // committing it is what its members wait for.
                commit_group(slot, &writer).await;
            });
        }
    }
}

fn group_connection<DB: Backend>(slot: &mut Slot<DB>) -> Option<&mut DB::Connection> {
    slot.as_mut()
        .and_then(|group| group.connection.as_mut())
        .map(|connection| &mut **connection)
}

fn ended() -> StoreError {
    StoreError::Database("the write transaction has ended".into())
}

fn lost() -> StoreError {
    StoreError::Database("the write transaction was abandoned before it committed".into())
}

/// After a member's turn: hands the writer to a transaction waiting to join, or commits the
/// group when nobody is.
async fn finish_turn<DB: Backend>(slot: Slot<DB>, writer: &GroupWriter<DB>) {
    if writer.somebody_joining() {
        drop(slot);
    } else {
        commit_group(slot, writer).await;
    }
}

/// Rolls a dropped member's work back to its savepoint and lets the group go on.
async fn abandon<DB: Backend>(mut slot: Slot<DB>, writer: GroupWriter<DB>) {
    let rolled_back = match group_connection(&mut slot) {
        Some(connection) => match execute::<DB>(connection, ROLLBACK_MEMBER).await {
            Ok(()) => execute::<DB>(connection, RELEASE).await,
            Err(error) => Err(error),
        },
        None => Err(ended()),
    };
    match rolled_back {
        Ok(()) => finish_turn(slot, &writer).await,
        Err(error) => fail_group(slot, &error).await,
    }
}

/// Commits the open group (if there is one), hands the connection back to the pool and
/// tells every member the result.
async fn commit_group<DB: Backend>(mut slot: Slot<DB>, writer: &GroupWriter<DB>) {
    let Some(mut group) = slot.take() else {
        return;
    };
    let outcome = match group.connection.as_mut() {
        Some(connection) => {
            let committed = execute::<DB>(connection, "COMMIT").await;
            writer.commits.fetch_add(1, Ordering::SeqCst);
            if committed.is_err() && execute::<DB>(connection, "ROLLBACK").await.is_err() {
                connection.close_on_drop();
            }
            committed
        }
        None => Err(ended()),
    };
    // Back to the pool, now outside any transaction.
    drop(group.connection.take());
    tracing::debug!(
        transactions = group.members.len(),
        committed = outcome.is_ok(),
        "group commit"
    );
    for member in group.members.drain(..) {
        let _ = member.send(outcome.clone());
    }
}

/// Runs one statement of the group protocol.
async fn execute<DB: Backend>(connection: &mut DB::Connection, statement: &'static str) -> Outcome {
    DB::execute(connection, statement).await.map_err(db_error)
}

/// Ends the group with `error` for every member: its transaction is lost (SQLite rolls a
/// transaction back by itself after some errors, e.g. a full disk), so none of them may
/// answer as if it were stored.
async fn fail_group<DB: Backend>(mut slot: Slot<DB>, error: &StoreError) {
    if let Some(mut group) = slot.take() {
        if let Some(mut connection) = group.connection.take()
            && execute::<DB>(&mut connection, "ROLLBACK").await.is_err()
        {
            connection.close_on_drop();
        }
        for member in group.members.drain(..) {
            let _ = member.send(Err(error.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use paraply_fhir::{ResourceType, VersionId};
    use paraply_store::{NewVersion, Store, StoreError};
    use time::OffsetDateTime;

    use crate::sqlite::{SqliteOptions, SqliteStore};

    async fn store() -> (SqliteStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("paraply-group-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}", dir.join("p.db").display());
        let store = SqliteStore::open(&url, SqliteOptions::default())
            .await
            .expect("open a test database");
        (store, dir)
    }

    fn organization(id: &str, version: u64) -> NewVersion {
        NewVersion {
            resource_type: ResourceType::Organization,
            id: id.parse().expect("valid id"),
            version_id: VersionId::new(version).expect("valid version"),
            last_updated: OffsetDateTime::now_utc(),
            body: Some(format!(r#"{{"resourceType":"Organization","id":"{id}"}}"#)),
            index: Vec::new(),
        }
    }

    async fn exists(store: &SqliteStore, id: &str) -> bool {
        store
            .read(ResourceType::Organization, &id.parse().expect("valid id"))
            .await
            .expect("read")
            .is_some()
    }

    /// Waits until `n` transactions queue for the writer.
    async fn until_joining(store: &SqliteStore, n: usize) {
        while store.group.joining.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_transactions_all_commit_in_fewer_commits() {
        let (store, dir) = store().await;
        let writers: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut tx = store.begin_optimistic().await?;
                    tx.write(organization(&format!("org-{i}"), 1)).await?;
                    tx.commit().await
                })
            })
            .collect();
        for writer in writers {
            writer
                .await
                .expect("task")
                .expect("every transaction commits");
        }
        for i in 0..64 {
            assert!(
                exists(&store, &format!("org-{i}")).await,
                "org-{i} is stored"
            );
        }
        let commits = store.group.commits.load(Ordering::SeqCst);
        assert!(commits < 64, "64 transactions took {commits} commits");
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A member that fails (here: a version conflict) loses its own work, not that of the
    /// member before it in the same group, which commits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failed_member_rolls_back_only_its_own_work() {
        let (store, dir) = store().await;
        let mut first = store.begin().await.expect("begin");
        first.write(organization("kept", 1)).await.expect("write");
        let second = tokio::spawn({
            let store = store.clone();
            async move {
                let mut tx = store.begin().await?;
                tx.write(organization("dropped", 1)).await?;
                // A second version 1 of `kept` conflicts with the first member's.
                tx.write(organization("kept", 1)).await?;
                tx.commit().await
            }
        });
        until_joining(&store, 1).await;
        let committed = first.commit().await;
        let failed = second.await.expect("task");
        assert!(committed.is_ok(), "{committed:?}");
        assert!(
            matches!(failed, Err(StoreError::VersionConflict { .. })),
            "{failed:?}"
        );
        assert!(exists(&store, "kept").await);
        assert!(!exists(&store, "dropped").await);
        assert_eq!(store.group.commits.load(Ordering::SeqCst), 1);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A member dropped before it commits (a cancelled request) rolls back its work, and the
    /// group it was handed still commits the others.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_dropped_member_does_not_hold_up_the_group() {
        let (store, dir) = store().await;
        let mut first = store.begin().await.expect("begin");
        first.write(organization("first", 1)).await.expect("write");
        let second = tokio::spawn({
            let store = store.clone();
            async move {
                let mut tx = store.begin().await.expect("begin");
                tx.write(organization("abandoned", 1)).await.expect("write");
                tx.read(ResourceType::Organization, &"first".parse().expect("id"))
                    .await
                    .expect("read");
                // Dropped here without commit.
            }
        });
        until_joining(&store, 1).await;
        let committed = first.commit().await;
        second.await.expect("task");
        assert!(committed.is_ok(), "{committed:?}");
        // The writer is free again: a new transaction begins and commits.
        let mut third = store.begin().await.expect("begin after the group");
        third.write(organization("third", 1)).await.expect("write");
        third.commit().await.expect("commit");
        assert!(exists(&store, "first").await);
        assert!(!exists(&store, "abandoned").await);
        assert!(exists(&store, "third").await);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
