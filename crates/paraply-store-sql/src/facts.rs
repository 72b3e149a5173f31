//! Facts ([`paraply_store::Fact`], migration `0007_facts`): recorded at a write
//! transaction's commit in two statements whatever their number, read back as they stood
//! at an instant in one streamed statement.

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use paraply_store::{Fact, StoreError};
use sqlx::{ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Row, Type};
use time::OffsetDateTime;

use crate::common::{Backend, Sql};
use crate::error::db_error;
use crate::sql::{HistoryRow, InsertedRow, VersionRow, to_micros};

/// The bound facts as a table `w (kind, subject, at, body)`.
fn recorded(facts: &str) -> String {
    format!(
        "(SELECT value ->> 0 AS kind, value ->> 1 AS subject, \
         CAST(value ->> 2 AS BIGINT) AS at, value ->> 3 AS body FROM {facts}) AS w"
    )
}

impl<DB> Sql<DB>
where
    DB: Backend,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> String: Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> VersionRow: FromRow<'r, DB::Row>,
    for<'r> HistoryRow: FromRow<'r, DB::Row>,
    for<'r> InsertedRow: FromRow<'r, DB::Row>,
{
    /// Ends each subject's current fact that differs from the new one, then inserts the new
    /// ones where no current fact is left (an unchanged fact stays as it was, with its
    /// first instant).
    pub(crate) async fn record_facts(
        conn: &mut DB::Connection,
        facts: &[Fact],
    ) -> Result<(), StoreError> {
        if facts.is_empty() {
            return Ok(());
        }
        let rows: Vec<(&str, &str, i64, &str)> = facts
            .iter()
            .map(|f| (f.kind, f.subject.as_str(), to_micros(f.at), f.body.as_str()))
            .collect();
        let close = DB::JSON_ROWS.statement(&rows, |facts| {
            format!(
                "UPDATE fact SET valid_to = w.at FROM {} \
                 WHERE fact.kind = w.kind AND fact.subject = w.subject \
                 AND fact.valid_to IS NULL AND fact.body <> w.body",
                recorded(facts)
            )
        });
        let insert = DB::JSON_ROWS.statement(&rows, |facts| {
            format!(
                "INSERT INTO fact (kind, subject, valid_from, body) \
                 SELECT w.kind, w.subject, w.at, w.body FROM {} \
                 WHERE NOT EXISTS (SELECT 1 FROM fact f WHERE f.kind = w.kind \
                 AND f.subject = w.subject AND f.valid_to IS NULL)",
                recorded(facts)
            )
        });
        for statement in [close, insert] {
            Self::bind(statement)?
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    /// The bodies of the facts of `kind` current at `at`, streamed.
    pub(crate) fn facts_at<'p>(
        pool: &'p Pool<DB>,
        kind: &'static str,
        at: OffsetDateTime,
    ) -> BoxStream<'p, Result<String, StoreError>> {
        let at = to_micros(at);
        sqlx::query(
            "SELECT body FROM fact WHERE kind = $1 AND valid_from <= $2 \
             AND (valid_to IS NULL OR valid_to > $2)",
        )
        .bind(kind)
        .bind(at)
        .fetch(pool)
        .map_err(db_error)
        .and_then(|row| async move { row.try_get::<String, _>(0).map_err(db_error) })
        .boxed()
    }
}
