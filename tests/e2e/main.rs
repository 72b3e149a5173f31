//! End-to-end tests: the real server on `127.0.0.1:0`, over HTTP, on SQLite and (when
//! `PARAPLY_TEST_DATABASE_URL` is set) PostgreSQL.

mod access;
mod bad_input;
mod bundles;
mod crud;
mod disk_full;
mod errors;
mod examples;
mod export;
mod measures;
mod nodes;
mod operations;
mod patientkontrakt;
mod portal;
mod reindex;
mod search;
pub(crate) mod subscriptions;

pub use paraply_tests::*;
pub use serde_json::{Value, json};
