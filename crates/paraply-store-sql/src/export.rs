//! [`ExportStore`] on both backends (migration `0008_export`): bulk export jobs, the members
//! of their filtered files, and the files themselves as views over `resource_version` at a
//! job's cutoff. Every statement is the same text on SQLite and PostgreSQL.
//!
//! A file is read in pages of [`PAGE`] rows after the last row's `seq` (keyset), each page
//! its own short statement: a file of millions of lines holds neither memory nor a database
//! snapshot (on SQLite a long-open read would keep the WAL from being checkpointed).

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt, stream};
use paraply_fhir::{ResourceId, ResourceType};
use paraply_store::{
    ExportJob, ExportLines, ExportSelection, ExportStore, NewExportJob, StoreError,
};
use time::OffsetDateTime;

use crate::error::db_error;
use crate::sql::{from_micros, to_micros};
use crate::{PostgresStore, SqliteStore};

/// Lines read per statement.
const PAGE: i64 = 1_000;

/// A new job; `$in_flight` is what `in_flight` holds (see migration 0008).
macro_rules! create {
    ($in_flight:expr) => {
        concat!(
            "INSERT INTO export_job \
             (id, client_id, spec, cutoff, transaction_time, expires, in_flight) \
             SELECT $1, $2, $3, COALESCE((SELECT MAX(seq) FROM resource_version), 0), $4, $5, ",
            $in_flight,
            " RETURNING id, client_id, spec, cutoff, transaction_time, expires, result, progress"
        )
    };
}
const CREATE_SQLITE: &str = create!("NULL");
/// The kick-off's snapshot and its own transaction id, `snapshot/xid`: the transactions in
/// flight then are the snapshot's in-progress ones and every id from its `xmax` up to the
/// kick-off's own.
const CREATE_POSTGRES: &str =
    create!("CAST(pg_current_snapshot() AS TEXT) || '/' || CAST(pg_current_xact_id() AS TEXT)");
/// Whether every transaction in flight at the job's kick-off has ended (PostgreSQL). Only
/// those: a long-running transaction begun after the kick-off holds nothing up.
const SETTLED_POSTGRES: &str = "SELECT NOT EXISTS (SELECT 1 FROM ( \
     SELECT x FROM pg_snapshot_xip(CAST(split_part(in_flight, '/', 1) AS pg_snapshot)) x \
     UNION ALL SELECT CAST(CAST(g AS TEXT) AS xid8) FROM generate_series( \
     CAST(CAST(pg_snapshot_xmax(CAST(split_part(in_flight, '/', 1) AS pg_snapshot)) AS TEXT) AS BIGINT), \
     CAST(split_part(in_flight, '/', 2) AS BIGINT) - 1) g) AS t(x) \
     WHERE pg_xact_status(x) = 'in progress') FROM export_job WHERE id = $1";
const JOB: &str = "SELECT id, client_id, spec, cutoff, transaction_time, expires, result, progress \
     FROM export_job WHERE id = $1";
const DELETE_MEMBERS: &str = "DELETE FROM export_member WHERE job_id = $1";
const DELETE_JOB: &str = "DELETE FROM export_job WHERE id = $1";
const EXPIRED: &str = "SELECT id FROM export_job WHERE expires < $1";
/// The outer conditions repeat the inner ones: PostgreSQL re-checks them on a row another
/// node claimed meanwhile, so two nodes never both hold one job's lease.
const CLAIM: &str = "UPDATE export_job SET lease_owner = $1, lease_until = $2 \
     WHERE result IS NULL AND (lease_owner = $1 OR lease_until < $3) AND id = \
     (SELECT id FROM export_job WHERE result IS NULL AND (lease_owner = $1 OR lease_until < $3) \
      ORDER BY transaction_time, id LIMIT 1) \
     RETURNING id, client_id, spec, cutoff, transaction_time, expires, result, progress";
const RENEW: &str = "UPDATE export_job SET lease_until = $3, progress = $5 \
     WHERE id = $1 AND lease_owner = $2 AND lease_until >= $4 AND result IS NULL RETURNING id";
const FINISH: &str = "UPDATE export_job SET result = $4, progress = NULL, lease_owner = NULL \
     WHERE id = $1 AND lease_owner = $2 AND lease_until >= $3 AND result IS NULL RETURNING id";
const ADD_MEMBER: &str = "INSERT INTO export_member (job_id, resource_type, id) \
     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

/// The versions of a file: of its type, at or below the cutoff ($3), not a deletion, written
/// after `_since` ($4), and the last of their resource at or below the cutoff; after the
/// keyset position ($2). "No later version" compares `version_id`, not `seq`, so that the
/// check is a lookup in the `(resource_type, id, version_id)` key: compared by `seq`, SQLite
/// walked the type's whole `(resource_type, seq)` index per row (10,877 resources took 4.7 s
/// to count on a debug build).
macro_rules! view {
    ($members:expr) => {
        concat!(
            "FROM resource_version v WHERE v.resource_type = $1 AND v.seq > $2 AND v.seq <= $3 \
             AND v.body IS NOT NULL AND v.last_updated > $4 \
             AND NOT EXISTS (SELECT 1 FROM resource_version n WHERE n.resource_type = v.resource_type \
             AND n.id = v.id AND n.version_id > v.version_id AND n.seq <= $3)",
            $members
        )
    };
}
macro_rules! member {
    () => {
        " AND EXISTS (SELECT 1 FROM export_member m WHERE m.job_id = $5 \
         AND m.resource_type = v.resource_type AND m.id = v.id)"
    };
}
const COUNT_ALL: &str = concat!("SELECT COUNT(*) ", view!(""));
const COUNT_MEMBERS: &str = concat!("SELECT COUNT(*) ", view!(member!()));
const LINES_ALL: &str = concat!(
    "SELECT v.seq, v.body ",
    view!(""),
    " ORDER BY v.seq LIMIT $5"
);
const LINES_MEMBERS: &str = concat!(
    "SELECT v.seq, v.body ",
    view!(member!()),
    " ORDER BY v.seq LIMIT $6"
);

type JobRow = (
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
);

fn job(row: JobRow) -> Result<ExportJob, StoreError> {
    let (id, client_id, spec, cutoff, transaction_time, expires, result, progress) = row;
    Ok(ExportJob {
        id,
        client_id,
        spec,
        cutoff,
        transaction_time: from_micros(transaction_time)?,
        expires: from_micros(expires)?,
        result,
        progress,
    })
}

fn since(selection: &ExportSelection) -> i64 {
    selection.since.map_or(i64::MIN, to_micros)
}

/// Export jobs on both databases: SQLite's writes go to its one writer connection, reads of
/// files to its read pool.
macro_rules! export_store {
    ($store:ty, $writer:ident, $reader:ident, $create:expr, $settled:expr) => {
        #[async_trait]
        impl ExportStore for $store {
            async fn create_export(&self, new: &NewExportJob) -> Result<ExportJob, StoreError> {
                let row: JobRow = sqlx::query_as($create)
                    .bind(&new.id)
                    .bind(&new.client_id)
                    .bind(&new.spec)
                    .bind(to_micros(new.transaction_time))
                    .bind(to_micros(new.expires))
                    .fetch_one(&self.$writer)
                    .await
                    .map_err(db_error)?;
                job(row)
            }

            async fn writers_settled(&self, id: &str) -> Result<bool, StoreError> {
                let statement: Option<&'static str> = $settled;
                let Some(statement) = statement else {
                    return Ok(true);
                };
                let row: Option<(bool,)> = sqlx::query_as(statement)
                    .bind(id)
                    .fetch_optional(&self.$writer)
                    .await
                    .map_err(db_error)?;
                Ok(row.is_some_and(|(settled,)| settled))
            }

            async fn export_job(&self, id: &str) -> Result<Option<ExportJob>, StoreError> {
                let row: Option<JobRow> = sqlx::query_as(JOB)
                    .bind(id)
                    .fetch_optional(&self.$writer)
                    .await
                    .map_err(db_error)?;
                row.map(job).transpose()
            }

            async fn delete_export(&self, id: &str) -> Result<bool, StoreError> {
                let mut tx = self.$writer.begin().await.map_err(db_error)?;
                sqlx::query(DELETE_MEMBERS)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                let deleted = sqlx::query(DELETE_JOB)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .rows_affected();
                tx.commit().await.map_err(db_error)?;
                Ok(deleted > 0)
            }

            async fn delete_expired_exports(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
                let expired: Vec<(String,)> = sqlx::query_as(EXPIRED)
                    .bind(to_micros(now))
                    .fetch_all(&self.$writer)
                    .await
                    .map_err(db_error)?;
                let mut deleted = 0;
                for (id,) in expired {
                    if self.delete_export(&id).await? {
                        deleted += 1;
                    }
                }
                Ok(deleted)
            }

            async fn claim_export(
                &self,
                node: &str,
                now: OffsetDateTime,
                until: OffsetDateTime,
            ) -> Result<Option<ExportJob>, StoreError> {
                let row: Option<JobRow> = sqlx::query_as(CLAIM)
                    .bind(node)
                    .bind(to_micros(until))
                    .bind(to_micros(now))
                    .fetch_optional(&self.$writer)
                    .await
                    .map_err(db_error)?;
                row.map(job).transpose()
            }

            async fn renew_export(
                &self,
                id: &str,
                node: &str,
                now: OffsetDateTime,
                until: OffsetDateTime,
                progress: &str,
            ) -> Result<bool, StoreError> {
                let row: Option<(String,)> = sqlx::query_as(RENEW)
                    .bind(id)
                    .bind(node)
                    .bind(to_micros(until))
                    .bind(to_micros(now))
                    .bind(progress)
                    .fetch_optional(&self.$writer)
                    .await
                    .map_err(db_error)?;
                Ok(row.is_some())
            }

            async fn add_export_members(
                &self,
                id: &str,
                resource_type: ResourceType,
                ids: &[ResourceId],
            ) -> Result<(), StoreError> {
                let mut tx = self.$writer.begin().await.map_err(db_error)?;
                for member in ids {
                    sqlx::query(ADD_MEMBER)
                        .bind(id)
                        .bind(resource_type.as_str())
                        .bind(member.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                }
                tx.commit().await.map_err(db_error)
            }

            async fn count_export(&self, selection: &ExportSelection) -> Result<u64, StoreError> {
                let statement = if selection.members_only {
                    COUNT_MEMBERS
                } else {
                    COUNT_ALL
                };
                let mut query = sqlx::query_as(statement)
                    .bind(selection.resource_type.as_str())
                    .bind(0_i64)
                    .bind(selection.cutoff)
                    .bind(since(selection));
                if selection.members_only {
                    query = query.bind(selection.job_id.as_str());
                }
                let (count,): (i64,) = query.fetch_one(&self.$reader).await.map_err(db_error)?;
                Ok(u64::try_from(count).unwrap_or(0))
            }

            async fn finish_export(
                &self,
                id: &str,
                node: &str,
                now: OffsetDateTime,
                result: &str,
            ) -> Result<bool, StoreError> {
                let row: Option<(String,)> = sqlx::query_as(FINISH)
                    .bind(id)
                    .bind(node)
                    .bind(to_micros(now))
                    .bind(result)
                    .fetch_optional(&self.$writer)
                    .await
                    .map_err(db_error)?;
                Ok(row.is_some())
            }

            fn export_lines(&self, selection: ExportSelection) -> ExportLines {
                let pool = self.$reader.clone();
                stream::try_unfold(
                    (pool, selection, 0_i64, false),
                    |(pool, selection, after, done)| async move {
                        if done {
                            return Ok(None);
                        }
                        let query = if selection.members_only {
                            sqlx::query_as(LINES_MEMBERS)
                        } else {
                            sqlx::query_as(LINES_ALL)
                        };
                        let mut query = query
                            .bind(selection.resource_type.as_str())
                            .bind(after)
                            .bind(selection.cutoff)
                            .bind(since(&selection));
                        if selection.members_only {
                            query = query.bind(selection.job_id.clone());
                        }
                        let rows: Vec<(i64, String)> =
                            query.bind(PAGE).fetch_all(&pool).await.map_err(db_error)?;
                        let done = (rows.len() as i64) < PAGE;
                        let after = rows.last().map_or(after, |(seq, _)| *seq);
                        let lines: Vec<Result<String, StoreError>> =
                            rows.into_iter().map(|(_, body)| Ok(body)).collect();
                        Ok(Some((stream::iter(lines), (pool, selection, after, done))))
                    },
                )
                .try_flatten()
                .boxed()
            }
        }
    };
}

// SQLite has one writer: what is committed at the kick-off is all there will be below it.
export_store!(SqliteStore, writer, readers, CREATE_SQLITE, None);
export_store!(
    PostgresStore,
    pool,
    pool,
    CREATE_POSTGRES,
    Some(SETTLED_POSTGRES)
);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::TryStreamExt;
    use paraply_fhir::VersionId;
    use paraply_store::{NewVersion, Store};
    use time::Duration;

    use super::*;
    use crate::{StoreSettings, open_store_with_sessions};

    async fn write(
        store: &dyn Store,
        id: &str,
        version: u64,
        body: Option<&str>,
        at: OffsetDateTime,
    ) {
        let mut tx = store.begin().await.unwrap();
        tx.write(NewVersion {
            resource_type: ResourceType::Patient,
            id: id.parse().unwrap(),
            version_id: VersionId::new(version).unwrap(),
            last_updated: at,
            body: body.map(|family| {
                format!(
                    r#"{{"resourceType":"Patient","id":"{id}","name":[{{"family":"{family}"}}]}}"#
                )
            }),
            index: Vec::new(),
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    fn job(id: &str, now: OffsetDateTime) -> NewExportJob {
        NewExportJob {
            id: id.into(),
            client_id: "warehouse".into(),
            spec: "{}".into(),
            transaction_time: now,
            expires: now + Duration::minutes(60),
        }
    }

    /// Whether the job's writers settle within 30 s. On PostgreSQL transaction ids are the
    /// cluster's: other tests' transactions in flight at the kick-off count too, and end soon.
    async fn settles(exports: &dyn ExportStore, id: &str) -> bool {
        for _ in 0..600 {
            if exports.writers_settled(id).await.unwrap() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    }

    async fn lines(exports: &dyn ExportStore, selection: ExportSelection) -> Vec<String> {
        exports.export_lines(selection).try_collect().await.unwrap()
    }

    /// A file shows each resource as it stood at the kick-off: later versions, later
    /// resources and later deletions change nothing; `_since` and members narrow it.
    async fn behaves(store: Arc<dyn Store>, exports: Arc<dyn ExportStore>) {
        let start = OffsetDateTime::now_utc();
        write(store.as_ref(), "a", 1, Some("A1"), start).await;
        write(store.as_ref(), "b", 1, Some("B1"), start).await;
        write(
            store.as_ref(),
            "b",
            2,
            Some("B2"),
            start + Duration::seconds(10),
        )
        .await;
        write(store.as_ref(), "gone", 1, Some("G1"), start).await;
        write(store.as_ref(), "gone", 2, None, start).await;
        let now = start + Duration::seconds(20);
        let created = exports.create_export(&job("j1", now)).await.unwrap();
        assert_eq!(created.result, None);
        assert!(settles(exports.as_ref(), "j1").await);
        write(store.as_ref(), "a", 2, None, now).await;
        write(store.as_ref(), "b", 3, Some("B3"), now).await;
        write(store.as_ref(), "c", 1, Some("C1"), now).await;

        let selection = ExportSelection {
            job_id: "j1".into(),
            resource_type: ResourceType::Patient,
            cutoff: created.cutoff,
            since: None,
            members_only: false,
        };
        let all = lines(exports.as_ref(), selection.clone()).await;
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all[0].contains("A1") && all[1].contains("B2"), "{all:?}");
        assert_eq!(exports.count_export(&selection).await.unwrap(), 2);

        let since = ExportSelection {
            since: Some(start + Duration::seconds(5)),
            ..selection.clone()
        };
        assert_eq!(lines(exports.as_ref(), since.clone()).await.len(), 1);
        assert_eq!(exports.count_export(&since).await.unwrap(), 1);

        let members = ExportSelection {
            members_only: true,
            ..selection.clone()
        };
        assert!(lines(exports.as_ref(), members.clone()).await.is_empty());
        exports
            .add_export_members(
                "j1",
                ResourceType::Patient,
                &["b".parse().unwrap(), "c".parse().unwrap()],
            )
            .await
            .unwrap();
        exports
            .add_export_members("j1", ResourceType::Patient, &["b".parse().unwrap()])
            .await
            .unwrap();
        let only_b = lines(exports.as_ref(), members.clone()).await;
        assert_eq!(only_b.len(), 1);
        assert!(only_b[0].contains("B2"));

        // One node works a job at a time; it finishes only while it holds the lease.
        let lease = now + Duration::seconds(30);
        let claimed = exports.claim_export("n1", now, lease).await.unwrap();
        assert_eq!(claimed.map(|j| j.id), Some("j1".into()));
        assert_eq!(exports.claim_export("n2", now, lease).await.unwrap(), None);
        assert!(
            exports
                .renew_export("j1", "n1", now, lease, "1 of 2")
                .await
                .unwrap()
        );
        assert!(
            !exports
                .renew_export("j1", "n2", now, lease, "1 of 2")
                .await
                .unwrap()
        );
        let stored = exports.export_job("j1").await.unwrap().unwrap();
        assert_eq!(stored.progress.as_deref(), Some("1 of 2"));
        // A lease run out is another node's to take.
        let later = lease + Duration::seconds(1);
        assert!(
            !exports
                .finish_export("j1", "n1", later, "[]")
                .await
                .unwrap()
        );
        assert!(
            exports
                .claim_export("n2", later, later + Duration::seconds(30))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            exports
                .finish_export("j1", "n2", later, "[]")
                .await
                .unwrap()
        );
        assert_eq!(
            exports
                .export_job("j1")
                .await
                .unwrap()
                .unwrap()
                .result
                .as_deref(),
            Some("[]")
        );
        assert_eq!(
            exports.claim_export("n1", later, later).await.unwrap(),
            None
        );

        // Expired jobs go, with their members; others stay.
        exports
            .create_export(&job("j2", now + Duration::minutes(30)))
            .await
            .unwrap();
        assert_eq!(
            exports
                .delete_expired_exports(now + Duration::minutes(61))
                .await
                .unwrap(),
            1
        );
        assert_eq!(exports.export_job("j1").await.unwrap(), None);
        assert!(lines(exports.as_ref(), members).await.is_empty());
        assert!(exports.delete_export("j2").await.unwrap());
        assert!(!exports.delete_export("j2").await.unwrap());
    }

    #[tokio::test]
    async fn sqlite_export_jobs() {
        let dir = std::env::temp_dir().join(format!("paraply-export-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}", dir.join("paraply.db").display());
        let (store, _, _, exports) =
            open_store_with_sessions(&url, &StoreSettings::with_pool_size(2))
                .await
                .unwrap();
        let outcome = tokio::spawn(behaves(store, exports)).await;
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(failure) = outcome {
            std::panic::resume_unwind(failure.into_panic());
        }
    }

    /// On PostgreSQL a transaction in flight at the kick-off may still commit a row below
    /// the cutoff: the job is not settled until it has ended.
    #[tokio::test]
    async fn postgres_export_waits_for_writers_in_flight_at_the_kick_off() {
        let Some(db) = crate::testing::PostgresTestDatabase::create().await else {
            return;
        };
        let (_, _, _, exports) =
            open_store_with_sessions(&db.url, &StoreSettings::with_pool_size(2))
                .await
                .unwrap();
        let writer = sqlx::PgPool::connect(&db.url).await.unwrap();
        let mut in_flight = writer.begin().await.unwrap();
        sqlx::query("SELECT txid_current()")
            .execute(&mut *in_flight)
            .await
            .unwrap();
        let now = OffsetDateTime::now_utc();
        exports.create_export(&job("j", now)).await.unwrap();
        assert!(!exports.writers_settled("j").await.unwrap());
        in_flight.commit().await.unwrap();
        assert!(
            settles(exports.as_ref(), "j").await,
            "settled once the writer ended"
        );
        assert!(!exports.writers_settled("unknown").await.unwrap());
        writer.close().await;
        db.remove().await;
    }

    #[tokio::test]
    async fn postgres_export_jobs() {
        let Some(db) = crate::testing::PostgresTestDatabase::create().await else {
            return;
        };
        let (store, _, _, exports) =
            open_store_with_sessions(&db.url, &StoreSettings::with_pool_size(2))
                .await
                .unwrap();
        let outcome = tokio::spawn(behaves(store, exports)).await;
        db.remove().await;
        if let Err(failure) = outcome {
            std::panic::resume_unwind(failure.into_panic());
        }
    }
}
