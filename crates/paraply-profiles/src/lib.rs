//! Paraply's FHIR conformance resources and a checker for its profiles.
//!
//! Owns: the JSON files of `fhir-profiles/` (StructureDefinitions, CodeSystems, ValueSets,
//! SearchParameters, OperationDefinitions), embedded at compile time and served as written,
//! and [`check_profiles`], which checks a resource against the differential of every Paraply
//! profile it claims in `meta.profile`: cardinalities, fixed and pattern values, slices,
//! reference target types and required bindings to Paraply's value sets.
//!
//! Does not own: validation against the base R4 model (`paraply-fhir`), the cross-resource
//! rules I1–I10, or HTTP. It reads no files at run time and has no async code; the files are
//! parsed once, on first use.

mod catalog;
mod check;

use serde_json::Value;

pub use check::ProfileIssue;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// The canonical base of everything Paraply defines; the same as
/// `paraply_fhir::codes::CANONICAL_BASE` (a test holds them equal, so this crate need not
/// compile fhirbolt).
const CANONICAL_BASE: &str = "https://paraply.se/fhir";

/// The JSON text of one conformance resource, as served at `GET /fhir/{resource_type}/{id}`.
pub fn conformance_resource(resource_type: &str, id: &str) -> Option<&'static str> {
    embedded::EMBEDDED
        .iter()
        .find(|(t, i, _)| *t == resource_type && *i == id)
        .map(|(_, _, json)| *json)
}

/// Every conformance resource: (resource type, id, JSON text), in file-name order.
pub fn conformance_resources() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    embedded::EMBEDDED.iter().copied()
}

/// The canonical URLs of Paraply's profiles of one resource type (for the
/// CapabilityStatement's `supportedProfile`), in file-name order.
pub fn profiles_of(resource_type: &str) -> Vec<&'static str> {
    catalog::catalog()
        .profiles
        .iter()
        .filter(|p| p.resource_type == resource_type)
        .map(|p| p.url.as_str())
        .collect()
}

/// Checks `resource` against every Paraply profile it claims in `meta.profile`. A claimed
/// URL under Paraply's canonical base that names no profile of this resource type is an
/// issue; profiles of other canonicals are not Paraply's to check and are ignored.
pub fn check_profiles(resource: &Value) -> Vec<ProfileIssue> {
    check::check_profiles(catalog::catalog(), resource)
}
