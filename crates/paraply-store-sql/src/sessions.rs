//! [`SessionStore`] on both backends: the portal's sessions and pending logins (migration
//! `0003_portal_sessions`). Every statement is the same text on SQLite and PostgreSQL.

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use paraply_store::{
    ExportStore, OutboxStore, PendingLogin, Session, SessionStore, Store, StoreError,
};
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};
use time::OffsetDateTime;

use crate::error::db_error;
use crate::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, StoreSettings};

const PUT_LOGIN: &str = "INSERT INTO portal_login (key, pkce_verifier, nonce, return_to, expires) \
     VALUES ($1, $2, $3, $4, $5)";
// One statement: two nodes receiving the same callback cannot both take the login.
const TAKE_LOGIN: &str = "DELETE FROM portal_login WHERE key = $1 \
     RETURNING key, pkce_verifier, nonce, return_to, expires";
const PUT_SESSION: &str = "INSERT INTO portal_session (key, issuer, subject, claims, \
     access_token, access_token_expires, id_token, csrf_token, created, expires) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const GET_SESSION: &str = "SELECT key, issuer, subject, claims, access_token, \
     access_token_expires, id_token, csrf_token, created, expires \
     FROM portal_session WHERE key = $1 AND expires > $2";
const DELETE_SESSION: &str = "DELETE FROM portal_session WHERE key = $1 RETURNING key";
const EXPIRED_SESSIONS: &str = "DELETE FROM portal_session WHERE expires <= $1 RETURNING key";
const EXPIRED_LOGINS: &str = "DELETE FROM portal_login WHERE expires <= $1 RETURNING key";

#[derive(sqlx::FromRow)]
struct LoginRow {
    key: String,
    pkce_verifier: String,
    nonce: String,
    return_to: String,
    expires: i64,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    key: String,
    issuer: String,
    subject: String,
    claims: String,
    access_token: String,
    access_token_expires: Option<i64>,
    id_token: String,
    csrf_token: String,
    created: i64,
    expires: i64,
}

/// The session statements of database `DB`.
struct Sessions<DB>(PhantomData<DB>);

impl<DB> Sessions<DB>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'r> String: Decode<'r, DB>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> LoginRow: FromRow<'r, DB::Row>,
    for<'r> SessionRow: FromRow<'r, DB::Row>,
{
    async fn put_login(pool: &Pool<DB>, login: &PendingLogin) -> Result<(), StoreError> {
        sqlx::query(PUT_LOGIN)
            .bind(login.key.as_str())
            .bind(login.pkce_verifier.as_str())
            .bind(login.nonce.as_str())
            .bind(login.return_to.as_str())
            .bind(login.expires.unix_timestamp())
            .execute(pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn take_login(
        pool: &Pool<DB>,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<PendingLogin>, StoreError> {
        let row: Option<LoginRow> = sqlx::query_as(TAKE_LOGIN)
            .bind(key)
            .fetch_optional(pool)
            .await
            .map_err(db_error)?;
        // An expired login is removed all the same: it can never complete.
        let Some(row) = row.filter(|row| row.expires > now.unix_timestamp()) else {
            return Ok(None);
        };
        Ok(Some(PendingLogin {
            key: row.key,
            pkce_verifier: row.pkce_verifier,
            nonce: row.nonce,
            return_to: row.return_to,
            expires: from_seconds(row.expires)?,
        }))
    }

    async fn put_session(pool: &Pool<DB>, session: &Session) -> Result<(), StoreError> {
        sqlx::query(PUT_SESSION)
            .bind(session.key.as_str())
            .bind(session.issuer.as_str())
            .bind(session.subject.as_str())
            .bind(session.claims.as_str())
            .bind(session.access_token.as_str())
            .bind(session.access_token_expires.map(|at| at.unix_timestamp()))
            .bind(session.id_token.as_str())
            .bind(session.csrf_token.as_str())
            .bind(session.created.unix_timestamp())
            .bind(session.expires.unix_timestamp())
            .execute(pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn get_session(
        pool: &Pool<DB>,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        let row: Option<SessionRow> = sqlx::query_as(GET_SESSION)
            .bind(key)
            .bind(now.unix_timestamp())
            .fetch_optional(pool)
            .await
            .map_err(db_error)?;
        row.map(|row| {
            Ok(Session {
                key: row.key,
                issuer: row.issuer,
                subject: row.subject,
                claims: row.claims,
                access_token: row.access_token,
                access_token_expires: row.access_token_expires.map(from_seconds).transpose()?,
                id_token: row.id_token,
                csrf_token: row.csrf_token,
                created: from_seconds(row.created)?,
                expires: from_seconds(row.expires)?,
            })
        })
        .transpose()
    }

    async fn delete_session(pool: &Pool<DB>, key: &str) -> Result<bool, StoreError> {
        let deleted: Option<(String,)> = sqlx::query_as(DELETE_SESSION)
            .bind(key)
            .fetch_optional(pool)
            .await
            .map_err(db_error)?;
        Ok(deleted.is_some())
    }

    async fn delete_expired(pool: &Pool<DB>, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut removed = 0;
        for statement in [EXPIRED_SESSIONS, EXPIRED_LOGINS] {
            let keys: Vec<(String,)> = sqlx::query_as(statement)
                .bind(now.unix_timestamp())
                .fetch_all(pool)
                .await
                .map_err(db_error)?;
            removed += keys.len() as u64;
        }
        Ok(removed)
    }
}

fn from_seconds(seconds: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| StoreError::Corrupt("a stored session time is out of range".into()))
}

/// Writes go to SQLite's one writer connection, reads to the read pool.
#[async_trait]
impl SessionStore for SqliteStore {
    async fn put_login(&self, login: &PendingLogin) -> Result<(), StoreError> {
        Sessions::put_login(&self.writer, login).await
    }

    async fn take_login(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<PendingLogin>, StoreError> {
        Sessions::take_login(&self.writer, key, now).await
    }

    async fn put_session(&self, session: &Session) -> Result<(), StoreError> {
        Sessions::put_session(&self.writer, session).await
    }

    async fn get_session(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        Sessions::get_session(&self.readers, key, now).await
    }

    async fn delete_session(&self, key: &str) -> Result<bool, StoreError> {
        Sessions::delete_session(&self.writer, key).await
    }

    async fn delete_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        Sessions::delete_expired(&self.writer, now).await
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn put_login(&self, login: &PendingLogin) -> Result<(), StoreError> {
        Sessions::put_login(&self.pool, login).await
    }

    async fn take_login(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<PendingLogin>, StoreError> {
        Sessions::take_login(&self.pool, key, now).await
    }

    async fn put_session(&self, session: &Session) -> Result<(), StoreError> {
        Sessions::put_session(&self.pool, session).await
    }

    async fn get_session(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        Sessions::get_session(&self.pool, key, now).await
    }

    async fn delete_session(&self, key: &str) -> Result<bool, StoreError> {
        Sessions::delete_session(&self.pool, key).await
    }

    async fn delete_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        Sessions::delete_expired(&self.pool, now).await
    }
}

/// One database as each of the stores the server uses.
pub type OpenedStores = (
    Arc<dyn Store>,
    Arc<dyn SessionStore>,
    Arc<dyn OutboxStore>,
    Arc<dyn ExportStore>,
);

/// Like [`crate::open_store`], and the same database (same pools) as a [`SessionStore`], an
/// [`OutboxStore`] and an [`ExportStore`]: the server needs all four, and a second pool on
/// one SQLite file would be a second writer.
pub async fn open_store_with_sessions(
    url: &str,
    settings: &StoreSettings,
) -> Result<OpenedStores, StoreError> {
    let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
    match scheme {
        "sqlite" => {
            let options = SqliteOptions {
                read_connections: settings.pool_size,
                synchronous: settings.sqlite_synchronous,
                max_size_bytes: settings.sqlite_max_size_bytes,
                ..SqliteOptions::default()
            };
            let store = Arc::new(SqliteStore::open(url, options).await?);
            Ok((store.clone(), store.clone(), store.clone(), store))
        }
        "postgres" | "postgresql" => {
            let options = PostgresOptions {
                max_connections: settings.pool_size,
                ..PostgresOptions::default()
            };
            let store = Arc::new(PostgresStore::connect(url, options).await?);
            Ok((store.clone(), store.clone(), store.clone(), store))
        }
        // Only the scheme: the rest of a URL may hold a password.
        other => Err(StoreError::Database(format!(
            "unsupported database URL scheme '{other}:' (expected sqlite:, postgres: or postgresql:)"
        ))),
    }
}

#[cfg(test)]
mod tests {

    use time::Duration;

    use super::*;

    fn session(key: &str, now: OffsetDateTime) -> Session {
        Session {
            key: key.into(),
            issuer: "http://127.0.0.1:9001".into(),
            subject: "44a575ca".into(),
            claims: r#"{"name":"Tolvan Tolvansson"}"#.into(),
            access_token: "eyJ.access".into(),
            access_token_expires: Some(now + Duration::hours(1)),
            id_token: "eyJ.id".into(),
            csrf_token: "csrf".into(),
            created: now,
            expires: now + Duration::hours(8),
        }
    }

    fn login(key: &str, expires: OffsetDateTime) -> PendingLogin {
        PendingLogin {
            key: key.into(),
            pkce_verifier: "verifier".into(),
            nonce: "nonce".into(),
            return_to: "/min-plan".into(),
            expires,
        }
    }

    /// What the portal relies on, on any backend.
    async fn behaves(store: Arc<dyn SessionStore>) {
        let now = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp())
            .unwrap();

        store.put_session(&session("s1", now)).await.unwrap();
        let read = store.get_session("s1", now).await.unwrap();
        assert_eq!(read, Some(session("s1", now)));
        assert_eq!(store.get_session("s2", now).await.unwrap(), None);
        // Expired sessions are not served, even before the cleanup removes them.
        let later = now + Duration::hours(9);
        assert_eq!(store.get_session("s1", later).await.unwrap(), None);

        store
            .put_login(&login("l1", now + Duration::minutes(10)))
            .await
            .unwrap();
        let taken = store.take_login("l1", now).await.unwrap();
        assert_eq!(taken.map(|l| l.return_to), Some("/min-plan".to_string()));
        assert_eq!(
            store.take_login("l1", now).await.unwrap(),
            None,
            "single use"
        );
        store
            .put_login(&login("l2", now + Duration::minutes(10)))
            .await
            .unwrap();
        assert_eq!(
            store
                .take_login("l2", now + Duration::minutes(11))
                .await
                .unwrap(),
            None,
            "expired"
        );

        store.put_session(&session("s3", now)).await.unwrap();
        store
            .put_login(&login("l3", now + Duration::minutes(10)))
            .await
            .unwrap();
        assert_eq!(store.delete_expired(later).await.unwrap(), 3);
        assert_eq!(store.delete_expired(later).await.unwrap(), 0);

        store.put_session(&session("s4", now)).await.unwrap();
        assert!(store.delete_session("s4").await.unwrap());
        assert!(!store.delete_session("s4").await.unwrap());
        assert_eq!(store.get_session("s4", now).await.unwrap(), None);
    }

    #[tokio::test]
    async fn sqlite_sessions() {
        let dir = std::env::temp_dir().join(format!("paraply-sessions-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}", dir.join("paraply.db").display());
        let (_, sessions, _, _) = open_store_with_sessions(&url, &StoreSettings::with_pool_size(2))
            .await
            .unwrap();
        let outcome = tokio::spawn(behaves(sessions)).await;
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(failure) = outcome {
            std::panic::resume_unwind(failure.into_panic());
        }
    }

    #[tokio::test]
    async fn postgres_sessions() {
        let Some(db) = crate::testing::PostgresTestDatabase::create().await else {
            return;
        };
        let (_, sessions, _, _) =
            open_store_with_sessions(&db.url, &StoreSettings::with_pool_size(2))
                .await
                .unwrap();
        let outcome = tokio::spawn(behaves(sessions)).await;
        db.remove().await;
        if let Err(failure) = outcome {
            std::panic::resume_unwind(failure.into_panic());
        }
    }
}
