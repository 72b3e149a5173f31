//! The SQL implementations of [`paraply_store::Store`]: [`SqliteStore`] (one file, for a
//! single node) and [`PostgresStore`] (shared by several stateless nodes).
//!
//! This crate owns the schema (the versioned migrations in `migrations/sqlite` and
//! `migrations/postgres` at the workspace root, embedded at compile time), the translation of
//! [`paraply_search::SearchQuery`] into SQL, and the mapping of database errors to
//! [`StoreError`]. It does not parse, validate or index FHIR resources: it stores the JSON
//! text and index rows it is given and hands the text back byte for byte.
//!
//! **Invariant:** a version conflict is decided by the database (a compare-and-swap `UPDATE`
//! plus unique indexes), never by a read followed by a write in Rust.

mod access;
mod access_log;
mod common;
mod error;
mod export;
mod facts;
mod group;
mod maintenance;
mod outbox;
#[cfg(test)]
mod plans;
mod postgres;
mod search;
mod sessions;
mod sql;
mod sqlite;
pub mod testing;

use std::sync::Arc;

use paraply_store::{Store, StoreError};

pub use postgres::{PostgresOptions, PostgresStore};
pub use sessions::{OpenedStores, open_store_with_sessions};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};

/// How [`open_store_with_sessions`] opens a database, whichever backend the URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSettings {
    /// The read pool for SQLite (writes always use one connection) and the whole pool for
    /// PostgreSQL.
    pub pool_size: u32,
    /// SQLite only: when a commit reaches the disk. PostgreSQL keeps the server's
    /// `synchronous_commit` (by default `on`: a commit is flushed before it is acknowledged).
    pub sqlite_synchronous: Synchronous,
    /// SQLite only: the size at which resource writes are refused (see
    /// [`SqliteOptions::max_size_bytes`]).
    pub sqlite_max_size_bytes: Option<u64>,
}

impl StoreSettings {
    /// `pool_size` connections, every other setting at its durable default.
    pub fn with_pool_size(pool_size: u32) -> Self {
        StoreSettings {
            pool_size,
            sqlite_synchronous: Synchronous::default(),
            sqlite_max_size_bytes: None,
        }
    }
}

/// Opens the store a database URL names: `sqlite:` (a file, created if missing) or
/// `postgres:`/`postgresql:`, with `pool_size` connections (see [`StoreSettings`]) and
/// durable commits. Any other scheme is an error.
pub async fn open_store(url: &str, pool_size: u32) -> Result<Arc<dyn Store>, StoreError> {
    open_store_with_sessions(url, &StoreSettings::with_pool_size(pool_size))
        .await
        .map(|(store, _, _, _)| store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_url_scheme_is_refused_and_named() {
        let Err(StoreError::Database(message)) = open_store("mysql://u:secret@h/db", 2).await
        else {
            panic!("expected an error");
        };
        assert!(message.contains("'mysql:'"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }
}
