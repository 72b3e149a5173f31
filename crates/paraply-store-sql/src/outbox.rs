//! [`OutboxStore`] on both backends (migration `0006_subscriptions`): the subscription
//! outbox's queue of changes, the numbered notifications and the leases that let one node
//! at a time dispatch, and one node at a time deliver each subscription. Every statement is
//! the same text on SQLite and PostgreSQL except [`Backend::SKIP_LOCKED`].
//!
//! The queue itself is filled by the write path (`common.rs`, in the write's transaction).

use std::collections::HashMap;
use std::marker::PhantomData;

use async_trait::async_trait;
use paraply_fhir::{ResourceId, VersionId};
use paraply_store::{
    DeliveryClaim, NewNotification, Notification, NotificationKind, OutboxStore, QueuedChange,
    StoreError,
};
use sqlx::{
    AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type,
};
use time::OffsetDateTime;

use crate::common::{Backend, Sql};
use crate::error::db_error;
use crate::sql::{HistoryRow, InsertedRow, VersionRow, from_micros, to_micros};
use crate::{PostgresStore, SqliteStore};

const CLAIM_DISPATCHER: &str = "UPDATE subscription_dispatcher \
     SET lease_owner = $1, lease_until = $2 \
     WHERE id = 1 AND (lease_owner = $1 OR lease_until < $3) RETURNING id";
const HOLDS_DISPATCHER: &str = "UPDATE subscription_dispatcher SET lease_until = lease_until \
     WHERE id = 1 AND lease_owner = $1 AND lease_until >= $2 RETURNING id";
const QUEUED_CHANGES: &str = "SELECT c.version_seq, v.resource_type, v.id, v.version_id, \
     CAST(CASE WHEN v.body IS NULL THEN 1 ELSE 0 END AS BIGINT) \
     FROM subscription_change c JOIN resource_version v ON v.seq = c.version_seq \
     ORDER BY c.version_seq LIMIT $1";
const ADD_DELIVERY: &str = "INSERT INTO subscription_delivery (subscription_id) VALUES ($1) \
     ON CONFLICT (subscription_id) DO NOTHING";
const COUNT_EVENTS: &str = "UPDATE subscription_delivery SET events = events + $2 \
     WHERE subscription_id = $1 RETURNING events";
const PENDING: &str = "SELECT seq, event_number, kind, focus, created \
     FROM subscription_notification WHERE subscription_id = $1 ORDER BY seq LIMIT $2";
const RESET_FAILURES: &str = "UPDATE subscription_delivery SET failures = 0, next_attempt = 0 \
     WHERE subscription_id = $1";
const FAILED: &str = "UPDATE subscription_delivery \
     SET failures = failures + 1, next_attempt = $2 WHERE subscription_id = $1 RETURNING failures";
const RELEASE: &str = "UPDATE subscription_delivery SET lease_owner = NULL, lease_until = 0 \
     WHERE subscription_id = $1 AND lease_owner = $2";
const DISCARD: &str = "DELETE FROM subscription_notification WHERE subscription_id = $1";

/// The statement claiming subscriptions with due notifications. The outer conditions repeat
/// the inner ones: PostgreSQL re-checks them on a row another node updated meanwhile, so two
/// nodes never both take one lease, even where `SKIP LOCKED` is not there to skip it.
fn claim_deliveries(skip_locked: &str) -> String {
    format!(
        "UPDATE subscription_delivery SET lease_owner = $1, lease_until = $2 \
         WHERE lease_until < $3 AND next_attempt <= $3 AND subscription_id IN \
         (SELECT d.subscription_id FROM subscription_delivery d \
          WHERE d.lease_until < $3 AND d.next_attempt <= $3 AND EXISTS \
          (SELECT 1 FROM subscription_notification n WHERE n.subscription_id = d.subscription_id) \
          ORDER BY d.next_attempt LIMIT $4{skip_locked}) \
         RETURNING subscription_id, failures"
    )
}

type ChangeRow = (i64, String, String, i64, i64);
type PendingRow = (i64, i64, String, Option<String>, i64);

/// The outbox statements of database `DB`.
struct Outbox<DB>(PhantomData<DB>);

impl<DB> Outbox<DB>
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
    for<'r> (String, i64): FromRow<'r, DB::Row>,
    for<'r> ChangeRow: FromRow<'r, DB::Row>,
    for<'r> PendingRow: FromRow<'r, DB::Row>,
{
    async fn claim_dispatcher(
        pool: &Pool<DB>,
        node: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(CLAIM_DISPATCHER)
            .bind(node)
            .bind(to_micros(until))
            .bind(to_micros(now))
            .fetch_optional(pool)
            .await
            .map_err(db_error)?;
        Ok(row.is_some())
    }

    async fn queued_changes(pool: &Pool<DB>, limit: u32) -> Result<Vec<QueuedChange>, StoreError> {
        let rows: Vec<ChangeRow> = sqlx::query_as(QUEUED_CHANGES)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(db_error)?;
        rows.into_iter()
            .map(|(seq, resource_type, id, version_id, deleted)| {
                let corrupt = || StoreError::Corrupt(format!("queued change {seq}"));
                Ok(QueuedChange {
                    seq,
                    resource_type: resource_type.parse().map_err(|_| corrupt())?,
                    id: id.parse::<ResourceId>().map_err(|_| corrupt())?,
                    version_id: u64::try_from(version_id)
                        .ok()
                        .and_then(VersionId::new)
                        .ok_or_else(corrupt)?,
                    deleted: deleted != 0,
                })
            })
            .collect()
    }

    async fn dispatch(
        pool: &Pool<DB>,
        node: &str,
        now: OffsetDateTime,
        notifications: &[NewNotification],
        done: &[i64],
    ) -> Result<bool, StoreError> {
        let mut tx = pool.begin().await.map_err(db_error)?;
        let holds: Option<(i64,)> = sqlx::query_as(HOLDS_DISPATCHER)
            .bind(node)
            .bind(to_micros(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        if holds.is_none() {
            return Ok(false);
        }
        let mut events: HashMap<&str, i64> = HashMap::new();
        for notification in notifications {
            if notification.kind == NotificationKind::Event {
                *events
                    .entry(notification.subscription_id.as_str())
                    .or_default() += 1;
            }
        }
        // The last number each subscription had before this batch.
        let mut numbered: HashMap<&str, i64> = HashMap::new();
        for notification in notifications {
            let id = notification.subscription_id.as_str();
            if numbered.contains_key(id) {
                continue;
            }
            sqlx::query(ADD_DELIVERY)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            let added = events.get(id).copied().unwrap_or(0);
            let (total,): (i64,) = sqlx::query_as(COUNT_EVENTS)
                .bind(id)
                .bind(added)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
            numbered.insert(id, total - added);
        }
        let created = to_micros(now);
        let rows: Vec<(&str, i64, &str, Option<&str>, i64)> = notifications
            .iter()
            .map(|notification| {
                let id = notification.subscription_id.as_str();
                let number = match notification.kind {
                    NotificationKind::Handshake => 0,
                    NotificationKind::Event => {
                        let last = numbered.entry(id).or_default();
                        *last += 1;
                        *last
                    }
                };
                (
                    id,
                    number,
                    notification.kind.code(),
                    notification.focus.as_deref(),
                    created,
                )
            })
            .collect();
        if !rows.is_empty() {
            let insert = DB::JSON_ROWS.statement(&rows, |rows| {
                format!(
                    "INSERT INTO subscription_notification \
                         (subscription_id, event_number, kind, focus, created) \
                         SELECT value ->> 0, CAST(value ->> 1 AS BIGINT), value ->> 2, \
                         value ->> 3, CAST(value ->> 4 AS BIGINT) FROM {rows}"
                )
            });
            Sql::<DB>::bind(insert)?
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        Self::delete_rows(&mut tx, "subscription_change", "version_seq", done).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// Deletes the rows of `table` whose `column` is one of `keys`, in one statement.
    async fn delete_rows(
        tx: &mut sqlx::Transaction<'static, DB>,
        table: &str,
        column: &str,
        keys: &[i64],
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let rows: Vec<[i64; 1]> = keys.iter().map(|key| [*key]).collect();
        let delete = DB::JSON_ROWS.statement(&rows, |keys| {
            format!(
                "DELETE FROM {table} WHERE {column} IN \
                 (SELECT CAST(value ->> 0 AS BIGINT) FROM {keys})"
            )
        });
        Sql::<DB>::bind(delete)?
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn claim_deliveries(
        pool: &Pool<DB>,
        node: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
        per_subscription: u32,
    ) -> Result<Vec<DeliveryClaim>, StoreError> {
        let claimed: Vec<(String, i64)> =
            sqlx::query_as(AssertSqlSafe(claim_deliveries(DB::SKIP_LOCKED)))
                .bind(node)
                .bind(to_micros(until))
                .bind(to_micros(now))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(db_error)?;
        let mut claims = Vec::with_capacity(claimed.len());
        for (subscription_id, failures) in claimed {
            let rows: Vec<PendingRow> = sqlx::query_as(PENDING)
                .bind(subscription_id.as_str())
                .bind(i64::from(per_subscription))
                .fetch_all(pool)
                .await
                .map_err(db_error)?;
            let id = subscription_id
                .parse::<ResourceId>()
                .map_err(|_| StoreError::Corrupt(format!("subscription id {subscription_id}")))?;
            let notifications = rows
                .into_iter()
                .map(|(seq, event_number, kind, focus, created)| {
                    Ok(Notification {
                        seq,
                        subscription_id: id.clone(),
                        event_number,
                        kind: NotificationKind::from_code(&kind).ok_or_else(|| {
                            StoreError::Corrupt(format!("notification {seq}: kind {kind}"))
                        })?,
                        focus,
                        created: from_micros(created)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            claims.push(DeliveryClaim {
                subscription_id: id,
                failures,
                notifications,
            });
        }
        Ok(claims)
    }

    async fn delivered(
        pool: &Pool<DB>,
        subscription_id: &str,
        seqs: &[i64],
    ) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut tx = pool.begin().await.map_err(db_error)?;
        Self::delete_rows(&mut tx, "subscription_notification", "seq", seqs).await?;
        sqlx::query(RESET_FAILURES)
            .bind(subscription_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn delivery_failed(
        pool: &Pool<DB>,
        subscription_id: &str,
        next_attempt: OffsetDateTime,
    ) -> Result<i64, StoreError> {
        let (failures,): (i64,) = sqlx::query_as(FAILED)
            .bind(subscription_id)
            .bind(to_micros(next_attempt))
            .fetch_one(pool)
            .await
            .map_err(db_error)?;
        Ok(failures)
    }

    async fn execute(
        pool: &Pool<DB>,
        statement: &'static str,
        binds: &[&str],
    ) -> Result<(), StoreError> {
        let mut query = sqlx::query(statement);
        for bind in binds {
            query = query.bind(*bind);
        }
        query.execute(pool).await.map_err(db_error)?;
        Ok(())
    }
}

/// The outbox on both databases: SQLite's statements go to its one writer connection (its
/// reads too, so a claim sees the dispatcher's last commit).
macro_rules! outbox_store {
    ($store:ty, $db:ty, $pool:ident) => {
        #[async_trait]
        impl OutboxStore for $store {
            async fn claim_dispatcher(
                &self,
                node: &str,
                now: OffsetDateTime,
                until: OffsetDateTime,
            ) -> Result<bool, StoreError> {
                Outbox::<$db>::claim_dispatcher(&self.$pool, node, now, until).await
            }

            async fn queued_changes(&self, limit: u32) -> Result<Vec<QueuedChange>, StoreError> {
                Outbox::<$db>::queued_changes(&self.$pool, limit).await
            }

            async fn dispatch(
                &self,
                node: &str,
                now: OffsetDateTime,
                notifications: &[NewNotification],
                done: &[i64],
            ) -> Result<bool, StoreError> {
                Outbox::<$db>::dispatch(&self.$pool, node, now, notifications, done).await
            }

            async fn claim_deliveries(
                &self,
                node: &str,
                now: OffsetDateTime,
                until: OffsetDateTime,
                limit: u32,
                per_subscription: u32,
            ) -> Result<Vec<DeliveryClaim>, StoreError> {
                Outbox::<$db>::claim_deliveries(
                    &self.$pool,
                    node,
                    now,
                    until,
                    limit,
                    per_subscription,
                )
                .await
            }

            async fn delivered(
                &self,
                subscription_id: &ResourceId,
                seqs: &[i64],
            ) -> Result<(), StoreError> {
                Outbox::<$db>::delivered(&self.$pool, subscription_id.as_str(), seqs).await
            }

            async fn delivery_failed(
                &self,
                subscription_id: &ResourceId,
                next_attempt: OffsetDateTime,
            ) -> Result<i64, StoreError> {
                Outbox::<$db>::delivery_failed(&self.$pool, subscription_id.as_str(), next_attempt)
                    .await
            }

            async fn release(
                &self,
                node: &str,
                subscription_id: &ResourceId,
            ) -> Result<(), StoreError> {
                Outbox::<$db>::execute(&self.$pool, RELEASE, &[subscription_id.as_str(), node])
                    .await
            }

            async fn discard(&self, subscription_id: &ResourceId) -> Result<(), StoreError> {
                Outbox::<$db>::execute(&self.$pool, DISCARD, &[subscription_id.as_str()]).await
            }
        }
    };
}

outbox_store!(SqliteStore, sqlx::Sqlite, writer);
outbox_store!(PostgresStore, sqlx::Postgres, pool);
