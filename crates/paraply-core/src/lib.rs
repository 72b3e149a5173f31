//! The FHIR engine: read, write, history, search, batch and transaction, and `$operations`,
//! over any [`paraply_store::Store`]. Requests arrive as [`FhirRequest`]s and leave as
//! [`Outcome`]s or [`CoreError`]s; no HTTP, no SQL, and no domain rule of its own.
//!
//! It is generic on purpose, with three extension points a domain fills ([`Extensions`]):
//! [`ResourceCheck`]s on every resource written, [`WriteRule`]s that run inside every write
//! transaction before it commits, and [`Operation`]s in one typed table. Every write takes
//! one path ([`write`]), whoever makes it. Reads hand back the stored JSON text untouched.
//! The access rules, the access log and provenance are the engine's own: they apply to
//! every domain. [`reindex`] brings a database's search index up to date with the
//! parameter registry before a server starts answering.

mod access;
mod access_log;
mod access_record;
mod audit;
mod audit_log;
mod audit_row;
mod audit_search;
mod bundle;
mod capabilities;
mod conformance;
mod context;
mod engine;
mod error;
mod identity;
mod operations;
mod provenance;
mod reindex;
mod request;
mod rules;
mod stamp;
mod tags;
mod validation;
mod versions;
mod write;

pub use access::AccessSettings;
pub use audit_log::{DeferredAudit, MIN_RETENTION_YEARS, purge_access_log};
pub use capabilities::{Security, add_security, capability_statement};
pub use conformance::{CONFORMANCE_TYPES, ConformanceCatalog, NoConformance};
pub use context::{Caller, Purpose, RequestContext};
pub use engine::{CitizenIdentity, Extensions, Fhir, Outcome};
pub use error::{CoreError, Method};
pub use operations::{
    Audience, Operation, OperationAudit, OperationCall, OperationContext, OperationDef,
    OperationLevel, OperationRef, Operations,
};
pub use reindex::{Reindexed, reindex};
pub use request::{FhirRequest, HistoryParams, Interaction, parse_query};
pub use rules::{Change, DerivedWrite, WriteRule};
pub use stamp::format_instant;
pub use tags::owner_of;
pub use validation::{ResourceCheck, Validator};
