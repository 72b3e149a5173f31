//! The access log's tables (migration 0005): appending hash-chained entries, searching
//! them, walking the chains (`verify`) and purging old entries — the same SQL on both
//! databases.
//!
//! Chains: SQLite has one writer, so one chain holds every entry in append order. On
//! PostgreSQL several transactions (and nodes) append at once; a transaction picks one of
//! [`Backend::ACCESS_LOG_CHAINS`] chains and appends at commit under a transaction
//! advisory lock on it, so appends queue only per chain and only for the insert. The chain
//! head row (last position and hash) makes a truncated tail visible to `verify`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};

use paraply_search::{Prefix, SortValue};
use paraply_store::{
    AccessLogCondition, AccessLogEntry, AccessLogOrder, AccessLogPage, AccessLogQuery,
    AccessLogRow, BrokenLink, ChainAnchor, ChainSummary, LinkContent, Purge, StoreError,
    Verification, link_hash, micros,
};
use sqlx::{
    AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Row, Type,
};
use time::OffsetDateTime;

use crate::common::{Backend, Sql};
use crate::error::db_error;
use crate::search::Builder;
use crate::sql::{HistoryRow, InsertedRow, Statement, VersionRow};

/// Rows a `verify` walk reads per statement.
const VERIFY_BATCH: i64 = 1000;

/// The chain the next transaction appends to (round robin within this process; nodes
/// picking the same chain only wait for each other's insert).
static NEXT_CHAIN: AtomicI64 = AtomicI64::new(0);

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("access log: {what}"))
}

fn instant(us: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|_| corrupt("a recorded instant out of range"))
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
    async fn rows(conn: &mut DB::Connection, stmt: Statement) -> Result<Vec<DB::Row>, StoreError> {
        Self::bind(stmt)?
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)
    }

    async fn execute(conn: &mut DB::Connection, stmt: Statement) -> Result<(), StoreError> {
        Self::bind(stmt)?
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Takes `chain`'s lock for the rest of the transaction, where the database needs one.
    async fn lock_chain(conn: &mut DB::Connection, chain: i64) -> Result<(), StoreError> {
        if let Some(lock) = DB::LOCK_CHAIN {
            sqlx::query(AssertSqlSafe(lock))
                .bind(chain)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    /// Appends `entries` to one chain inside the caller's write transaction: lock the chain,
    /// read its head, hash each entry onto the one before, insert rows and terms, move
    /// the head — four statements whatever the number of entries.
    pub(crate) async fn append_access_log(
        conn: &mut DB::Connection,
        entries: &[AccessLogEntry],
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let chain = NEXT_CHAIN
            .fetch_add(1, Ordering::Relaxed)
            .rem_euclid(DB::ACCESS_LOG_CHAINS);
        Self::lock_chain(conn, chain).await?;
        let mut head = Statement::default();
        let c = head.int(chain);
        head.sql = format!("SELECT position, hash FROM access_log_chain WHERE chain = {c}");
        let row = Self::rows(conn, head)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| corrupt("a chain without its head row"))?;
        let mut position: i64 = row.try_get(0).map_err(db_error)?;
        let mut prev: String = row.try_get(1).map_err(db_error)?;

        let mut rows = Vec::with_capacity(entries.len());
        for entry in entries {
            position += 1;
            let hash = link_hash(&prev, chain, position, &entry.content());
            rows.push((
                chain,
                position,
                entry.id.as_str(),
                micros(entry.recorded),
                entry.subtype.as_str(),
                entry.action.as_str(),
                entry.outcome.as_str(),
                i64::from(entry.emergency),
                entry.body.as_str(),
                std::mem::replace(&mut prev, hash.clone()),
                hash,
            ));
        }
        let insert = DB::JSON_ROWS.statement(&rows, |rows| {
            format!(
                "INSERT INTO access_log (chain, position, id, recorded, subtype, action, \
                 outcome, emergency, body, prev_hash, hash) \
                 SELECT CAST(value ->> 0 AS BIGINT), CAST(value ->> 1 AS BIGINT), value ->> 2, \
                 CAST(value ->> 3 AS BIGINT), value ->> 4, value ->> 5, value ->> 6, \
                 CAST(value ->> 7 AS BIGINT), value ->> 8, value ->> 9, value ->> 10 \
                 FROM {rows} RETURNING position, seq"
            )
        });
        let mut seqs = HashMap::with_capacity(entries.len());
        for row in Self::rows(conn, insert).await? {
            let position: i64 = row.try_get(0).map_err(db_error)?;
            let seq: i64 = row.try_get(1).map_err(db_error)?;
            seqs.insert(position, seq);
        }
        let mut terms = Vec::new();
        for ((_, position, ..), entry) in rows.iter().zip(entries) {
            let seq = *seqs
                .get(position)
                .ok_or_else(|| corrupt("an appended entry without its row"))?;
            let mut own: Vec<(&str, &str)> = entry
                .terms
                .iter()
                .map(|t| (t.key.as_str(), t.value.as_str()))
                .collect();
            own.sort_unstable();
            own.dedup();
            terms.extend(own.into_iter().map(|(name, value)| (name, value, seq)));
        }
        if !terms.is_empty() {
            let insert = DB::JSON_ROWS.statement(&terms, |terms| {
                format!(
                    "INSERT INTO access_log_term (name, value, seq) \
                     SELECT value ->> 0, value ->> 1, CAST(value ->> 2 AS BIGINT) FROM {terms}"
                )
            });
            Self::execute(conn, insert).await?;
        }
        let mut update = Statement::default();
        let p = update.int(position);
        let h = update.text(&prev);
        let c = update.int(chain);
        update.sql =
            format!("UPDATE access_log_chain SET position = {p}, hash = {h} WHERE chain = {c}");
        Self::execute(conn, update).await?;
        Ok(())
    }

    /// One page (one statement) and, when asked, the total (one more).
    pub(crate) async fn search_access_log(
        pool: &Pool<DB>,
        query: &AccessLogQuery,
    ) -> Result<AccessLogPage, StoreError> {
        let mut conn = pool.acquire().await.map_err(db_error)?;
        let (page, backwards) = page_statement(query);
        let found = Self::rows(&mut conn, page).await?;
        let count = usize::try_from(query.count).unwrap_or(usize::MAX);
        let more = found.len() > count;
        let mut rows = found
            .iter()
            .take(count)
            .map(|row| {
                Ok(AccessLogRow {
                    seq: row.try_get(0).map_err(db_error)?,
                    id: row
                        .try_get::<String, _>(1)
                        .map_err(db_error)?
                        .parse()
                        .map_err(|_| corrupt("an entry id that is no FHIR id"))?,
                    recorded: instant(row.try_get(2).map_err(db_error)?)?,
                    body: row.try_get(3).map_err(db_error)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if backwards {
            rows.reverse();
        }
        let total = if !query.total {
            None
        } else if query.page.is_none() && !more && count > 0 {
            Some(rows.len() as u64)
        } else {
            let row = Self::rows(&mut conn, total_statement(query))
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| corrupt("no count"))?;
            let total: i64 = row.try_get(0).map_err(db_error)?;
            Some(u64::try_from(total).unwrap_or_default())
        };
        Ok(AccessLogPage { rows, more, total })
    }

    /// Walks every chain from its anchor, `VERIFY_BATCH` entries per statement.
    pub(crate) async fn verify_access_log(pool: &Pool<DB>) -> Result<Verification, StoreError> {
        let mut conn = pool.acquire().await.map_err(db_error)?;
        let heads = Self::rows(
            &mut conn,
            Statement {
                sql: "SELECT chain, position, hash, anchor_position, anchor_hash \
                      FROM access_log_chain ORDER BY chain"
                    .into(),
                binds: Vec::new(),
            },
        )
        .await?;
        let mut chains = Vec::with_capacity(heads.len());
        for head in heads {
            let chain: i64 = head.try_get(0).map_err(db_error)?;
            let head_position: i64 = head.try_get(1).map_err(db_error)?;
            let head_hash: String = head.try_get(2).map_err(db_error)?;
            let anchor: i64 = head.try_get(3).map_err(db_error)?;
            let mut prev: String = head.try_get(4).map_err(db_error)?;
            let mut expected = anchor + 1;
            let mut entries = 0;
            let broken = |position: i64, id: Option<String>, problem: String| BrokenLink {
                chain,
                position,
                id,
                problem,
            };
            loop {
                let mut batch = Statement::default();
                let c = batch.int(chain);
                let after = batch.int(expected - 1);
                // Entries appended after the head was read are left to the next walk.
                let last = batch.int(head_position);
                let limit = batch.int(VERIFY_BATCH);
                batch.sql = format!(
                    "SELECT seq, position, id, recorded, subtype, action, outcome, emergency, \
                     body, prev_hash, hash FROM access_log WHERE chain = {c} \
                     AND position > {after} AND position <= {last} ORDER BY position LIMIT {limit}"
                );
                let rows = Self::rows(&mut conn, batch).await?;
                if rows.is_empty() {
                    break;
                }
                let mut terms_of = Self::terms_of(&mut conn, &rows).await?;
                for row in &rows {
                    let seq: i64 = row.try_get(0).map_err(db_error)?;
                    let position: i64 = row.try_get(1).map_err(db_error)?;
                    let id: String = row.try_get(2).map_err(db_error)?;
                    if position != expected {
                        let problem = format!(
                            "entries {expected} to {} are missing (the next entry found is at {position})",
                            position - 1
                        );
                        return Ok(Verification {
                            chains,
                            broken: Some(broken(expected, None, problem)),
                        });
                    }
                    let stored_prev: String = row.try_get(9).map_err(db_error)?;
                    let stored_hash: String = row.try_get(10).map_err(db_error)?;
                    if stored_prev != prev {
                        let problem = "its prev_hash is not the hash of the entry before it \
                                       (an entry was replaced or reordered)"
                            .to_owned();
                        return Ok(Verification {
                            chains,
                            broken: Some(broken(position, Some(id), problem)),
                        });
                    }
                    let subtype: String = row.try_get(4).map_err(db_error)?;
                    let action: String = row.try_get(5).map_err(db_error)?;
                    let outcome: String = row.try_get(6).map_err(db_error)?;
                    let emergency: i64 = row.try_get(7).map_err(db_error)?;
                    let body: String = row.try_get(8).map_err(db_error)?;
                    let terms = terms_of.remove(&seq).unwrap_or_default();
                    let content = LinkContent {
                        id: &id,
                        recorded_us: row.try_get(3).map_err(db_error)?,
                        subtype: &subtype,
                        action: &action,
                        outcome: &outcome,
                        emergency: emergency != 0,
                        body: &body,
                        terms: terms
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect(),
                    };
                    if link_hash(&prev, chain, position, &content) != stored_hash {
                        let problem = "its content (columns, body or search terms) does not \
                                       match its hash: the entry was changed"
                            .to_owned();
                        return Ok(Verification {
                            chains,
                            broken: Some(broken(position, Some(id), problem)),
                        });
                    }
                    prev = stored_hash;
                    expected += 1;
                    entries += 1;
                }
            }
            let last = expected - 1;
            if last != head_position || prev != head_hash {
                let problem = if last < head_position {
                    format!(
                        "the chain ends at {last} but its head says {head_position}: \
                         entries at its end were deleted"
                    )
                } else {
                    format!(
                        "the chain head (position {head_position}) does not match its last entry"
                    )
                };
                return Ok(Verification {
                    chains,
                    broken: Some(broken(last + 1, None, problem)),
                });
            }
            chains.push(ChainSummary {
                chain,
                entries,
                anchor,
                head: head_position,
            });
        }
        Ok(Verification {
            chains,
            broken: None,
        })
    }

    /// The terms of the entries `rows` (whose column 0 is `seq`), by `seq`.
    async fn terms_of(
        conn: &mut DB::Connection,
        rows: &[DB::Row],
    ) -> Result<HashMap<i64, Vec<(String, String)>>, StoreError> {
        let seqs = rows
            .iter()
            .map(|row| row.try_get::<i64, _>(0).map(|seq| [seq]))
            .collect::<Result<Vec<[i64; 1]>, _>>()
            .map_err(db_error)?;
        let stmt = DB::JSON_ROWS.statement(&seqs, |seqs| {
            format!(
                "SELECT seq, name, value FROM access_log_term \
                 WHERE seq IN (SELECT CAST(value ->> 0 AS BIGINT) FROM {seqs})"
            )
        });
        let mut terms: HashMap<i64, Vec<(String, String)>> = HashMap::new();
        for row in Self::rows(conn, stmt).await? {
            terms
                .entry(row.try_get(0).map_err(db_error)?)
                .or_default()
                .push((
                    row.try_get(1).map_err(db_error)?,
                    row.try_get(2).map_err(db_error)?,
                ));
        }
        Ok(terms)
    }

    /// See [`paraply_store::Store::purge_access_log`]. Every chain's lock is taken first,
    /// in chain order (an append takes one), so no append moves a head meanwhile.
    pub(crate) async fn purge_access_log(
        writer: &Pool<DB>,
        cutoff: OffsetDateTime,
        entry: AccessLogEntry,
    ) -> Result<Purge, StoreError> {
        let mut tx = writer.begin_with(DB::BEGIN_WRITE).await.map_err(db_error)?;
        let conn: &mut DB::Connection = &mut tx;
        let cutoff_us = micros(cutoff);
        for chain in 0..DB::ACCESS_LOG_CHAINS {
            Self::lock_chain(conn, chain).await?;
        }
        let heads = Self::rows(
            conn,
            Statement {
                sql: "SELECT chain, position, hash, anchor_position FROM access_log_chain \
                      ORDER BY chain"
                    .into(),
                binds: Vec::new(),
            },
        )
        .await?;
        let mut deleted = 0;
        let mut anchors = Vec::new();
        for head in heads {
            let chain: i64 = head.try_get(0).map_err(db_error)?;
            let head_position: i64 = head.try_get(1).map_err(db_error)?;
            let head_hash: String = head.try_get(2).map_err(db_error)?;
            let anchor: i64 = head.try_get(3).map_err(db_error)?;
            let mut first_kept = Statement::default();
            let c = first_kept.int(chain);
            let at = first_kept.int(cutoff_us);
            first_kept.sql = format!(
                "SELECT MIN(position) FROM access_log WHERE chain = {c} AND recorded >= {at}"
            );
            let kept: Option<i64> = match Self::rows(conn, first_kept).await?.first() {
                Some(row) => row.try_get::<Option<i64>, _>(0).map_err(db_error)?,
                None => None,
            };
            let cut = kept.map_or(head_position, |first| first - 1);
            if cut <= anchor {
                continue;
            }
            let hash = if cut == head_position {
                head_hash
            } else {
                let mut at_cut = Statement::default();
                let c = at_cut.int(chain);
                let p = at_cut.int(cut);
                at_cut.sql =
                    format!("SELECT hash FROM access_log WHERE chain = {c} AND position = {p}");
                Self::rows(conn, at_cut)
                    .await?
                    .first()
                    .map(|row| row.try_get::<String, _>(0))
                    .transpose()
                    .map_err(db_error)?
                    .ok_or_else(|| corrupt("a purge cut at a missing entry"))?
            };
            let mut terms = Statement::default();
            let c = terms.int(chain);
            let p = terms.int(cut);
            terms.sql = format!(
                "DELETE FROM access_log_term WHERE seq IN \
                 (SELECT seq FROM access_log WHERE chain = {c} AND position <= {p})"
            );
            Self::execute(conn, terms).await?;
            let mut rows = Statement::default();
            let c = rows.int(chain);
            let p = rows.int(cut);
            rows.sql = format!(
                "DELETE FROM access_log WHERE chain = {c} AND position <= {p} RETURNING seq"
            );
            deleted += Self::rows(conn, rows).await?.len() as u64;
            let mut moved = Statement::default();
            let p = moved.int(cut);
            let h = moved.text(&hash);
            let c = moved.int(chain);
            moved.sql = format!(
                "UPDATE access_log_chain SET anchor_position = {p}, anchor_hash = {h} \
                 WHERE chain = {c}"
            );
            Self::execute(conn, moved).await?;
            anchors.push(ChainAnchor {
                chain,
                position: cut,
                hash,
            });
        }
        let recorded: Vec<serde_json::Value> = anchors
            .iter()
            .map(|a| serde_json::json!({"chain": a.chain, "position": a.position, "hash": a.hash}))
            .collect();
        let mut record = Statement::default();
        let ran_at = record.int(micros(OffsetDateTime::now_utc()));
        let at = record.int(cutoff_us);
        let count = record.int(i64::try_from(deleted).unwrap_or(i64::MAX));
        let anchors_text = record.text(&serde_json::Value::Array(recorded).to_string());
        record.sql = format!(
            "INSERT INTO access_log_purge (ran_at, cutoff, deleted, anchors) \
             VALUES ({ran_at}, {at}, {count}, {anchors_text})"
        );
        Self::execute(conn, record).await?;
        Self::append_access_log(conn, std::slice::from_ref(&entry)).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Purge { deleted, anchors })
    }
}

/// The conditions of `query` (filters and restriction) on the row `l`.
fn conditions(b: &mut Builder<'_>, query: &AccessLogQuery) -> Vec<String> {
    let mut all = Vec::with_capacity(query.filters.len() + 1);
    for filter in &query.filters {
        let any: Vec<String> = filter
            .any_of
            .iter()
            .map(|condition| condition_sql(b, condition))
            .collect();
        all.push(if any.is_empty() {
            "FALSE".to_owned()
        } else {
            format!("({})", any.join(" OR "))
        });
    }
    if let Some(restricted) = b.log_restricted("l") {
        all.push(restricted);
    }
    all
}

fn condition_sql(b: &mut Builder<'_>, condition: &AccessLogCondition) -> String {
    match condition {
        AccessLogCondition::Id(id) => format!("l.id = {}", b.stmt.text(id)),
        AccessLogCondition::Term(term) => {
            let t = b.alias("lt");
            let name = b.stmt.text(term.key.as_str());
            let value = b.stmt.text(&term.value);
            format!(
                "l.seq IN (SELECT {t}.seq FROM access_log_term {t} \
                 WHERE {t}.name = {name} AND {t}.value = {value})"
            )
        }
        AccessLogCondition::Subtype(code) => format!("l.subtype = {}", b.stmt.text(code)),
        AccessLogCondition::Outcome(code) => format!("l.outcome = {}", b.stmt.text(code)),
        AccessLogCondition::Emergency(flag) => {
            format!("l.emergency = {}", b.stmt.int(i64::from(*flag)))
        }
        AccessLogCondition::Recorded { prefix, range } => {
            let start = b.stmt.int(range.start);
            let end = b.stmt.int(range.end);
            match prefix {
                Prefix::Eq | Prefix::Ap => {
                    format!("(l.recorded >= {start} AND l.recorded < {end})")
                }
                Prefix::Ne => format!("(l.recorded < {start} OR l.recorded >= {end})"),
                Prefix::Gt | Prefix::Sa => format!("l.recorded >= {end}"),
                Prefix::Lt | Prefix::Eb => format!("l.recorded < {start}"),
                Prefix::Ge => format!("l.recorded >= {start}"),
                Prefix::Le => format!("l.recorded < {end}"),
            }
        }
        AccessLogCondition::Always => "TRUE".to_owned(),
        AccessLogCondition::Never => "FALSE".to_owned(),
    }
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// `seq, id, recorded, body` of at most `count + 1` rows after the cursor, and whether they
/// are in reverse order (a backwards cursor).
fn page_statement(query: &AccessLogQuery) -> (Statement, bool) {
    let mut b = Builder::new(0, query.restriction.as_ref());
    let mut all = conditions(&mut b, query);
    let backwards = query.page.as_ref().is_some_and(|p| p.backwards);
    let descending = matches!(query.order, AccessLogOrder::Recorded { descending: true });
    // Reading backwards walks the order the other way and reverses the page.
    let down = descending != backwards;
    let (cmp, dir) = if down { ("<", "DESC") } else { (">", "ASC") };
    if let Some(cursor) = &query.page {
        let seq = b.stmt.int(cursor.seq);
        match (query.order, cursor.values.first()) {
            (AccessLogOrder::Recorded { .. }, Some(SortValue::Int(recorded))) => {
                let at = b.stmt.int(*recorded);
                let again = b.stmt.int(*recorded);
                all.push(format!(
                    "(l.recorded {cmp} {at} OR (l.recorded = {again} AND l.seq {cmp} {seq}))"
                ));
            }
            _ => all.push(format!("l.seq {cmp} {seq}")),
        }
    }
    let order = match query.order {
        AccessLogOrder::Appended => format!("l.seq {dir}"),
        AccessLogOrder::Recorded { .. } => format!("l.recorded {dir}, l.seq {dir}"),
    };
    let limit = b.stmt.int(i64::from(query.count) + 1);
    b.stmt.sql = format!(
        "SELECT l.seq, l.id, l.recorded, l.body FROM access_log l{} ORDER BY {order} LIMIT {limit}",
        where_clause(&all)
    );
    (b.stmt, backwards)
}

fn total_statement(query: &AccessLogQuery) -> Statement {
    let mut b = Builder::new(0, query.restriction.as_ref());
    let all = conditions(&mut b, query);
    b.stmt.sql = format!("SELECT COUNT(*) FROM access_log l{}", where_clause(&all));
    b.stmt
}

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;
    use paraply_store::{AccessLogTerm, Store, TermKey};

    use crate::testing::PostgresTestDatabase;
    use crate::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore};

    use super::*;

    fn entry(id: &str) -> AccessLogEntry {
        AccessLogEntry {
            id: id.parse().unwrap(),
            recorded: OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap(),
            subtype: "read".into(),
            action: "R".into(),
            outcome: "0".into(),
            emergency: false,
            body: format!("{{\"r\":\"{id}\"}}"),
            terms: vec![
                AccessLogTerm {
                    key: TermKey::Patient,
                    value: "p1".into(),
                },
                AccessLogTerm {
                    key: TermKey::Agent,
                    value: "Patient/p1".into(),
                },
            ],
        }
    }

    /// Statements run behind the store's back.
    type Sql<'a> = &'a (dyn Fn(&'static str) -> BoxFuture<'a, ()> + Sync);

    /// Every kind of tampering with the rows is found, naming the entry where there is one;
    /// putting the row back makes the chain whole again.
    async fn tampering_is_found(store: &dyn Store, sql: Sql<'_>) {
        let mut tx = store.begin().await.unwrap();
        let entries = ["e1", "e2", "e3", "e4", "e5"].map(entry).to_vec();
        tx.append_access_log(entries).await.unwrap();
        tx.commit().await.unwrap();
        let broken = || async { store.verify_access_log().await.unwrap().broken };
        assert_eq!(broken().await, None);

        let cases: [(&str, &str, &str); 2] = [
            (
                "DELETE FROM access_log_term WHERE name = 'agent' \
                 AND seq = (SELECT seq FROM access_log WHERE id = 'e3')",
                "INSERT INTO access_log_term (name, value, seq) \
                 SELECT 'agent', 'Patient/p1', seq FROM access_log WHERE id = 'e3'",
                "e3",
            ),
            (
                "UPDATE access_log SET recorded = recorded + 1 WHERE id = 'e2'",
                "UPDATE access_log SET recorded = recorded - 1 WHERE id = 'e2'",
                "e2",
            ),
        ];
        for (tamper, restore, id) in cases {
            sql(tamper).await;
            let link = broken().await.expect("tampering is found");
            assert_eq!(link.id.as_deref(), Some(id), "{tamper}: {link:?}");
            assert!(link.problem.contains("changed"), "{link:?}");
            sql(restore).await;
            assert_eq!(broken().await, None, "{restore}");
        }

        sql("DELETE FROM access_log WHERE id = 'e5'").await;
        let link = broken().await.expect("a truncated end is found");
        assert_eq!(link.id, None);
        assert!(link.problem.contains("deleted"), "{link:?}");
    }

    #[tokio::test]
    async fn tampering_with_rows_terms_or_the_end_of_a_chain_is_found_on_sqlite() {
        let dir = std::env::temp_dir().join(format!("paraply-tamper-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}", dir.join("p.db").display());
        let store = SqliteStore::open(&url, SqliteOptions::default())
            .await
            .unwrap();
        let writer = store.writer.clone();
        let sql = |statement: &'static str| -> BoxFuture<'_, ()> {
            let writer = writer.clone();
            Box::pin(async move {
                sqlx::query(statement).execute(&writer).await.unwrap();
            })
        };
        tampering_is_found(&store, &sql).await;
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn tampering_with_rows_terms_or_the_end_of_a_chain_is_found_on_postgres() {
        let Some(database) = PostgresTestDatabase::create().await else {
            return;
        };
        let store = PostgresStore::connect(&database.url, PostgresOptions::default())
            .await
            .unwrap();
        let pool = store.pool.clone();
        let sql = |statement: &'static str| -> BoxFuture<'_, ()> {
            let pool = pool.clone();
            Box::pin(async move {
                sqlx::query(statement).execute(&pool).await.unwrap();
            })
        };
        tampering_is_found(&store, &sql).await;
        drop(store);
        database.remove().await;
    }
}
