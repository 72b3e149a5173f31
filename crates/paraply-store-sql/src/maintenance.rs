//! [`IndexMaintenance`] on both backends: the recorded parameter definitions (migration
//! `0004_indexed_params`), walks over a type's current versions, and replacing chosen
//! parameters' rows. Every statement is the same text on SQLite and PostgreSQL.

use std::collections::HashSet;

use async_trait::async_trait;
use paraply_fhir::ResourceType;
use paraply_search::{IndexRow, ParamDefinition};
use paraply_store::{CurrentVersion, IndexMaintenance, RecordedDefinition, StoreError};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use crate::common::{Backend, Sql};
use crate::error::db_error;
use crate::sql::{self, HistoryRow, INDEX_TABLES, InsertedRow, Statement, VersionRow};

const RECORDED: &str = "SELECT resource_type, param, definition FROM indexed_param";

const COUNT_CURRENT: &str = "SELECT COUNT(*) FROM resource_version \
     WHERE resource_type = $1 AND is_current AND body IS NOT NULL";

// `resource_version_type_seq` serves the walk on both databases.
const CURRENT_AFTER: &str = "SELECT seq, body FROM resource_version \
     WHERE resource_type = $1 AND seq > $2 AND is_current AND body IS NOT NULL \
     ORDER BY seq LIMIT $3";

const FORGET_DEFINITIONS: &str = "DELETE FROM indexed_param WHERE resource_type = $1";

/// Taken by [`crate::PostgresStore::maintain_index`] on a connection of its own and held
/// until that connection closes, also when the process dies: nodes starting together on one
/// database reindex in turn, so the second finds the work done. (The key shares the space
/// of the per-resource write locks; a collision only makes a write wait for a reindex.)
pub(crate) const TAKE_TURN: &str =
    "SELECT pg_advisory_lock(hashtextextended('paraply index maintenance', 0))";

/// A turn at index maintenance on database `DB`.
pub(crate) struct SqlMaintenance<DB: Database> {
    readers: Pool<DB>,
    /// Where write transactions start (SQLite: its one writer connection), taken for one
    /// statement group at a time so that the server's own writes are never held up for a
    /// whole walk.
    writer: Pool<DB>,
    /// PostgreSQL: the connection holding the [`TAKE_TURN`] lock; dropping it ends the turn.
    /// SQLite serves one node and needs no turn: a second process reindexing the same file
    /// would write the same rows, batch by batch, under SQLite's single writer.
    _turn: Option<DB::Connection>,
}

impl<DB: Database> SqlMaintenance<DB> {
    pub(crate) fn new(readers: Pool<DB>, writer: Pool<DB>, turn: Option<DB::Connection>) -> Self {
        SqlMaintenance {
            readers,
            writer,
            _turn: turn,
        }
    }
}

/// The version rows among `rids` that are still current, to give rows to.
fn still_current(json: sql::JsonRows, rids: &[[i64; 1]]) -> Statement {
    json.statement(rids, |rids| {
        format!(
            "SELECT seq FROM resource_version \
             WHERE seq IN (SELECT CAST(value ->> 0 AS BIGINT) FROM {rids}) \
             AND is_current AND body IS NOT NULL"
        )
    })
}

/// Deletes the rows of `params` of the version rows `rids`, one statement per index table.
fn delete_param_rows(
    json: sql::JsonRows,
    rids: &[[i64; 1]],
    params: &[[&str; 1]],
) -> Vec<Statement> {
    INDEX_TABLES
        .iter()
        .map(|table| {
            let mut stmt = Statement::default();
            let rids = json.from(&stmt.json(rids));
            let params = json.from(&stmt.json(params));
            stmt.sql = format!(
                "DELETE FROM {table} \
                 WHERE rid IN (SELECT CAST(value ->> 0 AS BIGINT) FROM {rids}) \
                 AND param IN (SELECT value ->> 0 FROM {params})"
            );
            stmt
        })
        .collect()
}

fn record(
    json: sql::JsonRows,
    resource_type: ResourceType,
    definitions: &[ParamDefinition],
) -> Statement {
    let rows: Vec<(&str, &str, &str)> = definitions
        .iter()
        .map(|d| (resource_type.as_str(), d.param, d.definition.as_str()))
        .collect();
    json.statement(&rows, |rows| {
        format!(
            "INSERT INTO indexed_param (resource_type, param, definition) \
             SELECT value ->> 0, value ->> 1, value ->> 2 FROM {rows}"
        )
    })
}

#[async_trait]
impl<DB> IndexMaintenance for SqlMaintenance<DB>
where
    DB: Backend,
    DB::Connection: Send,
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
    for<'r> (i64, String): FromRow<'r, DB::Row>,
    for<'r> (String, String, String): FromRow<'r, DB::Row>,
    for<'r> VersionRow: FromRow<'r, DB::Row>,
    for<'r> HistoryRow: FromRow<'r, DB::Row>,
    for<'r> InsertedRow: FromRow<'r, DB::Row>,
{
    async fn recorded_definitions(&mut self) -> Result<Vec<RecordedDefinition>, StoreError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(RECORDED)
            .fetch_all(&self.readers)
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            // A type no longer served has nothing left to search.
            .filter_map(|(resource_type, param, definition)| {
                Some(RecordedDefinition {
                    resource_type: resource_type.parse().ok()?,
                    param,
                    definition,
                })
            })
            .collect())
    }

    async fn count_current(&mut self, resource_type: ResourceType) -> Result<u64, StoreError> {
        let (count,): (i64,) = sqlx::query_as(COUNT_CURRENT)
            .bind(resource_type.as_str())
            .fetch_one(&self.readers)
            .await
            .map_err(db_error)?;
        sql::count_from(count)
    }

    async fn current_versions(
        &mut self,
        resource_type: ResourceType,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<CurrentVersion>, StoreError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(CURRENT_AFTER)
            .bind(resource_type.as_str())
            .bind(after.unwrap_or(i64::MIN))
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|(seq, body)| CurrentVersion { seq, body })
            .collect())
    }

    async fn replace_rows(
        &mut self,
        resource_type: ResourceType,
        params: &[&str],
        rows: &[(i64, Vec<IndexRow>)],
    ) -> Result<(), StoreError> {
        if rows.is_empty() || params.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .writer
            .begin_with(DB::BEGIN_WRITE)
            .await
            .map_err(db_error)?;
        let rids: Vec<[i64; 1]> = rows.iter().map(|(rid, _)| [*rid]).collect();
        if DB::LOCKS_RESOURCES {
            // The writers' protocol, so a write racing the batch waits or is waited for
            // instead of deadlocking with it.
            Sql::<DB>::bind(sql::lock_versions(DB::JSON_ROWS, &rids))?
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        let current: Vec<(i64,)> = Sql::<DB>::bind_as(still_current(DB::JSON_ROWS, &rids))?
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let current: HashSet<i64> = current.into_iter().map(|(rid,)| rid).collect();
        if current.is_empty() {
            return Ok(());
        }
        let rids: Vec<[i64; 1]> = current.iter().map(|rid| [*rid]).collect();
        let params: Vec<[&str; 1]> = params.iter().map(|param| [*param]).collect();
        for delete in delete_param_rows(DB::JSON_ROWS, &rids, &params) {
            Sql::<DB>::bind(delete)?
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        let index: Vec<(i64, ResourceType, &[IndexRow])> = rows
            .iter()
            .filter(|(rid, _)| current.contains(rid))
            .map(|(rid, index)| (*rid, resource_type, index.as_slice()))
            .collect();
        for insert in sql::insert_index(DB::JSON_ROWS, &index) {
            Sql::<DB>::bind(insert)?
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn record_definitions(
        &mut self,
        resource_type: ResourceType,
        definitions: &[ParamDefinition],
    ) -> Result<(), StoreError> {
        let mut tx = self
            .writer
            .begin_with(DB::BEGIN_WRITE)
            .await
            .map_err(db_error)?;
        sqlx::query(FORGET_DEFINITIONS)
            .bind(resource_type.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if !definitions.is_empty() {
            Sql::<DB>::bind(record(DB::JSON_ROWS, resource_type, definitions))?
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }
}
