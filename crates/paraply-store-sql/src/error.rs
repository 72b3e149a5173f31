//! The one conversion of sqlx errors into [`StoreError`].
//!
//! Messages name the kind of failure and the database's error code, never SQL text or bound
//! values: they may end up in logs, and bound values are patient data.

use paraply_store::StoreError;

/// Any sqlx failure.
pub(crate) fn db_error(error: sqlx::Error) -> StoreError {
    let message = match &error {
        sqlx::Error::Database(e) => {
            let code = e.code().unwrap_or_default();
            // SQLITE_FULL (13, also when `max_page_count` is reached) and PostgreSQL's
            // disk_full (53100): the write is refused, the database is intact.
            if matches!(code.as_ref(), "13" | "53100") {
                return StoreError::Full(e.message().to_owned());
            }
            format!(
                "the database refused the statement ({:?}, code {code})",
                e.kind()
            )
        }
        sqlx::Error::PoolTimedOut => "timed out waiting for a database connection".into(),
        sqlx::Error::PoolClosed => "the database connection pool is closed".into(),
        sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::StorageFull => {
            return StoreError::Full(e.to_string());
        }
        sqlx::Error::Io(e) => format!("database I/O failed: {e}"),
        sqlx::Error::Tls(e) => format!("database TLS failed: {e}"),
        sqlx::Error::Configuration(e) => format!("invalid database configuration: {e}"),
        sqlx::Error::Migrate(e) => format!("database migration failed: {e}"),
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => {
            return StoreError::Corrupt("a stored row could not be decoded".into());
        }
        _ => "unexpected database failure".into(),
    };
    StoreError::Database(message)
}
