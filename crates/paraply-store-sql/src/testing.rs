//! Fresh PostgreSQL databases for tests: every test that talks to PostgreSQL creates its own
//! database on the server `PARAPLY_TEST_DATABASE_URL` names and drops it afterwards, so runs
//! never collide. Without that variable the tests say loudly that PostgreSQL was skipped.
//! Test support only: the server never calls it.

use std::io::Write;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The variable naming the PostgreSQL server tests may use.
pub const POSTGRES_URL_VAR: &str = "PARAPLY_TEST_DATABASE_URL";

/// A fresh, empty database on the test server; [`PostgresTestDatabase::remove`] drops it.
pub struct PostgresTestDatabase {
    admin_url: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl PostgresTestDatabase {
    /// `None` (after saying so loudly on stderr) when no server is configured. Panics when
    /// the configured server cannot create a database: a test cannot run then.
    pub async fn create() -> Option<PostgresTestDatabase> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
            // Straight to the stderr handle: the test harness captures `eprintln!`, and a
            // skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "PostgreSQL SKIPPED: {POSTGRES_URL_VAR} is not set"
            );
            return None;
        };
        let name = format!("paraply_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to the PostgreSQL test server");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Some(PostgresTestDatabase {
            admin_url,
            name,
            url,
        })
    }

    /// Best effort: a leftover `paraply_t_*` database is harmless.
    pub async fn remove(self) {
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = sqlx::query(AssertSqlSafe(drop)).execute(&mut admin).await;
            let _ = admin.close().await;
        }
    }
}

/// `url` with its database path replaced by `name` (the query string is kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let host = rest.split_once('/').map_or(rest, |(host, _)| host);
    match query {
        Some(query) => format!("{scheme}://{host}/{name}?{query}"),
        None => format!("{scheme}://{host}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_swapped_and_the_query_kept() {
        assert_eq!(
            with_database("postgres://u@h:5432/test?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h/test", "x"),
            "postgres://u@h/x"
        );
        assert_eq!(with_database("postgresql://h", "x"), "postgresql://h/x");
    }
}
