//! FHIR R4 vocabulary on top of fhirbolt: resource types, ids, identifier systems,
//! validation of incoming resources, and OperationOutcome issues. No IO.
//!
//! This is the only crate that calls fhirbolt's generic (de)serializers: their code is
//! generated in the calling crate and is costly to compile, so everything else goes
//! through the small non-generic functions here.

mod bindings;
pub mod codes;
mod id;
mod identifier;
mod outcome;
mod resource_type;
mod validate;

pub use bindings::required_top_level_elements;
pub use id::{InvalidId, ResourceId, VersionId};
pub use identifier::{
    HSA_ID, ORGANISATIONSNUMMER, PERSONNUMMER, SAMORDNINGSNUMMER, canonical_system,
};
pub use outcome::{Issue, IssueType, Severity, operation_outcome};
pub use resource_type::{ResourceType, UnknownResourceType};
pub use validate::{Invalid, resource_type_of, validate};
