//! The FHIR interactions: read, write, history, search, batch and transaction, over any
//! [`paraply_store::Store`]. Requests arrive as [`FhirRequest`]s and leave as
//! [`Outcome`]s or [`CoreError`]s; no HTTP, no SQL.
//!
//! Every resource written is validated here (via `paraply-fhir`) and stamped with `id` and
//! `meta`; reads hand back the stored JSON text untouched. [`reindex`] brings a database's
//! search index up to date with the parameter registry before a server starts answering.

mod access;
mod access_log;
mod audit;
mod audit_log;
mod bundle;
mod capabilities;
mod context;
mod engine;
mod error;
mod provenance;
mod reindex;
mod request;
mod stamp;

pub use access::AccessSettings;
pub use capabilities::{Security, add_security, capability_statement, search_parameter};
pub use context::{Caller, Purpose, RequestContext};
pub use engine::{Fhir, Outcome};
pub use error::{CoreError, Method};
pub use reindex::{Reindexed, reindex};
pub use request::{FhirRequest, HistoryParams, Interaction, parse_query};
pub use stamp::format_instant;
