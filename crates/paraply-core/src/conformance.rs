//! Conformance resources a domain publishes — its StructureDefinitions, CodeSystems,
//! ValueSets, SearchParameters, OperationDefinitions and Measures — served read-only at
//! `[base]/StructureDefinition/{id}` (and listed at `[base]/StructureDefinition`), with
//! their profiles named in the CapabilityStatement's `supportedProfile`.

use paraply_fhir::ResourceType;

/// The conformance resource types a catalog may serve.
pub const CONFORMANCE_TYPES: &[&str] = &[
    "StructureDefinition",
    "CodeSystem",
    "ValueSet",
    "SearchParameter",
    "OperationDefinition",
    "Measure",
];

/// A domain's conformance resources, as JSON text fixed at build time.
pub trait ConformanceCatalog: Send + Sync {
    /// The resource `resource_type/id`.
    fn resource(&self, resource_type: &str, id: &str) -> Option<&'static str>;
    /// Every resource of a type, in a stable order.
    fn resources_of(&self, resource_type: &str) -> Vec<&'static str>;
    /// The profiles (canonical URLs) of a served type.
    fn profiles_of(&self, resource_type: ResourceType) -> Vec<&'static str>;
}

/// The engine without a domain publishes nothing.
pub struct NoConformance;

impl ConformanceCatalog for NoConformance {
    fn resource(&self, _: &str, _: &str) -> Option<&'static str> {
        None
    }

    fn resources_of(&self, _: &str) -> Vec<&'static str> {
        Vec::new()
    }

    fn profiles_of(&self, _: ResourceType) -> Vec<&'static str> {
        Vec::new()
    }
}
