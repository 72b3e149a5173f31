//! Facts ([`paraply_store::Fact`], migration `0007_facts`): recorded at a write
//! transaction's commit in two statements whatever their number, read back as they stood
//! at an instant in keyset pages over `(kind, seq)`.

use futures::StreamExt;
use futures::stream::BoxStream;
use paraply_store::{Fact, FactPage, StoreError};
use sqlx::{ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};
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

    /// The bodies of the facts of `kind` current at `at`, a page at a time in the order
    /// they were recorded (keyset pages over `(kind, seq)`). A page is one row: sqlx hands
    /// SQLite's rows to the async side one by one, waking a thread for each, which cost
    /// three quarters of a million-fact report; the database joins a page's bodies instead.
    pub(crate) fn facts_at<'p>(
        pool: &'p Pool<DB>,
        kind: &'static str,
        at: OffsetDateTime,
    ) -> BoxStream<'p, Result<FactPage, StoreError>>
    where
        for<'r> (Option<i64>, Option<String>): FromRow<'r, DB::Row>,
    {
        let at = to_micros(at);
        futures::stream::try_unfold(Some(0_i64), move |after| async move {
            let Some(after) = after else {
                return Ok(None);
            };
            let (last, lines): (Option<i64>, Option<String>) = sqlx::query_as(
                "SELECT max(seq), string_agg(body, $4) FROM (SELECT seq, body FROM fact \
                 WHERE kind = $1 AND seq > $2 AND valid_from <= $3 \
                 AND (valid_to IS NULL OR valid_to > $3) ORDER BY seq LIMIT $5) AS page",
            )
            .bind(kind)
            .bind(after)
            .bind(at)
            .bind("\n")
            .bind(FACT_PAGE)
            .fetch_one(pool)
            .await
            .map_err(db_error)?;
            Ok(match (last, lines) {
                (Some(last), Some(lines)) => Some((FactPage::new(lines), Some(last))),
                _ => None,
            })
        })
        .boxed()
    }
}

/// Facts in one page: about 3 MB of bodies.
const FACT_PAGE: i64 = 10_000;
