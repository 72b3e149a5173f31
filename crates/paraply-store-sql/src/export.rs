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

const CREATE: &str = "INSERT INTO export_job \
     (id, client_id, spec, cutoff, transaction_time, expires) \
     SELECT $1, $2, $3, COALESCE((SELECT MAX(seq) FROM resource_version), 0), $4, $5 \
     RETURNING id, client_id, spec, cutoff, transaction_time, expires, result, progress";
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
/// keyset position ($2).
macro_rules! view {
    ($members:expr) => {
        concat!(
            "FROM resource_version v WHERE v.resource_type = $1 AND v.seq > $2 AND v.seq <= $3 \
             AND v.body IS NOT NULL AND v.last_updated > $4 \
             AND NOT EXISTS (SELECT 1 FROM resource_version n WHERE n.resource_type = v.resource_type \
             AND n.id = v.id AND n.seq > v.seq AND n.seq <= $3)",
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
    ($store:ty, $writer:ident, $reader:ident) => {
        #[async_trait]
        impl ExportStore for $store {
            async fn create_export(&self, new: &NewExportJob) -> Result<ExportJob, StoreError> {
                let row: JobRow = sqlx::query_as(CREATE)
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

export_store!(SqliteStore, writer, readers);
export_store!(PostgresStore, pool, pool);
