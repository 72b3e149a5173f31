//! The search parameters Paraply indexes, as typed data following the R4 definitions.

use paraply_fhir::ResourceType;

/// The R4 search parameter types Paraply implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Token,
}

impl ParamKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ParamKind::Token => "token",
        }
    }
}

/// One search parameter: its name, type, the element it reads and the types it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParamDef {
    pub name: &'static str,
    pub kind: ParamKind,
    /// The JSON element (or elements, for `DocumentReference.identifier`) read for the index.
    pub elements: &'static [&'static str],
    pub documentation: &'static str,
}

const IDENTIFIER: SearchParamDef = SearchParamDef {
    name: "identifier",
    kind: ParamKind::Token,
    elements: &["identifier"],
    documentation: "A business identifier of the resource (system|value)",
};

const DOCUMENT_IDENTIFIER: SearchParamDef = SearchParamDef {
    name: "identifier",
    kind: ParamKind::Token,
    elements: &["masterIdentifier", "identifier"],
    documentation: "Master Version Specific Identifier or another identifier of the document",
};

/// The indexed parameters of a type (besides `_id`, which every type has).
pub fn params_for(resource_type: ResourceType) -> &'static [SearchParamDef] {
    use ResourceType::*;
    match resource_type {
        // R4 defines no `identifier` search parameter for these types.
        AuditEvent | Provenance | Subscription => &[],
        DocumentReference => &[DOCUMENT_IDENTIFIER],
        _ => &[IDENTIFIER],
    }
}

/// The definition of `name` on `resource_type`, if Paraply indexes it.
pub fn find(resource_type: ResourceType, name: &str) -> Option<&'static SearchParamDef> {
    params_for(resource_type).iter().find(|p| p.name == name)
}
