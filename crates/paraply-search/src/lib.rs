//! FHIR search grammar: query pairs plus the parameter registry become a typed
//! [`SearchQuery`], and resources become the [`IndexRow`]s a search matches against.
//!
//! This crate knows no SQL and does no IO: storage receives only the typed query and the
//! index rows, so a parameter is parsed once, here, with its definition in hand.

mod index;
mod query;
mod registry;

pub use index::{IndexRow, IndexValue, index_rows};
pub use query::{Clause, SearchError, SearchQuery, TokenSystem, TokenValue};
pub use registry::{ParamKind, SearchParamDef, params_for};
