//! The search parameters Paraply indexes, as typed data: the official R4 definitions of the
//! served types (generated into [`r4`]) plus Paraply's own (DOMAIN.md §5, and
//! `Consent?provision-type`, which the access rules of §4 read).

mod r4;

use paraply_fhir::ResourceType;
use paraply_fhir::codes::{CANONICAL_BASE, HUVUDMAN_TYPE_SYSTEM};

/// The R4 search parameter types Paraply implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    Token,
    String,
    Reference,
    Date,
    Uri,
    Quantity,
}

impl ParamKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ParamKind::Token => "token",
            ParamKind::String => "string",
            ParamKind::Reference => "reference",
            ParamKind::Date => "date",
            ParamKind::Uri => "uri",
            ParamKind::Quantity => "quantity",
        }
    }
}

/// A restriction on which values of an element a parameter indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `ContactPoint.where(system='phone')`.
    ContactSystem(&'static str),
    /// Only codings of this code system (Paraply's `huvudman-type`).
    CodingSystem(&'static str),
}

/// One element path a parameter reads, below the resource: `participant.actor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementPath {
    pub steps: &'static [&'static str],
    /// `where(resolve() is Patient)`: only references to this type.
    pub resolve_is: Option<ResourceType>,
    pub filter: Option<Filter>,
    /// `(X as dateTime)`: only this choice of a choice element (`DateTime`).
    pub choice: Option<&'static str>,
}

/// One search parameter of one resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParamDef {
    pub name: &'static str,
    pub kind: ParamKind,
    pub paths: &'static [ElementPath],
    /// Served types a reference parameter may point at.
    pub targets: &'static [ResourceType],
    /// The canonical URL of the parameter's definition.
    pub url: &'static str,
}

impl SearchParamDef {
    /// Paraply's own parameters (not in R4), published as SearchParameter resources.
    pub fn is_paraply_defined(&self) -> bool {
        self.url.starts_with(CANONICAL_BASE)
    }
}

const fn path(steps: &'static [&'static str]) -> ElementPath {
    ElementPath {
        steps,
        resolve_is: None,
        filter: None,
        choice: None,
    }
}

/// `CareTeam?participant-role=urn:oid:1.2.752.129.5.1.69|2`: the role of a participant
/// (fast vårdkontakt, fast läkarkontakt, …).
pub const CARE_TEAM_PARTICIPANT_ROLE: SearchParamDef = SearchParamDef {
    name: "participant-role",
    kind: ParamKind::Token,
    paths: &[path(&["participant", "role"])],
    targets: &[],
    url: "https://paraply.se/fhir/SearchParameter/CareTeam-participant-role",
};

/// `CarePlan?huvudman=Organization/x`: a huvudman taking part in the plan, as the one with
/// overall responsibility (author) or as a contributor.
pub const CARE_PLAN_HUVUDMAN: SearchParamDef = SearchParamDef {
    name: "huvudman",
    kind: ParamKind::Reference,
    paths: &[path(&["author"]), path(&["contributor"])],
    targets: &[ResourceType::Organization],
    url: "https://paraply.se/fhir/SearchParameter/CarePlan-huvudman",
};

/// `Organization?huvudman-type=kommun`: region, kommun, privat-utforare or annan.
pub const ORGANIZATION_HUVUDMAN_TYPE: SearchParamDef = SearchParamDef {
    name: "huvudman-type",
    kind: ParamKind::Token,
    paths: &[ElementPath {
        steps: &["type"],
        resolve_is: None,
        filter: Some(Filter::CodingSystem(HUVUDMAN_TYPE_SYSTEM)),
        choice: None,
    }],
    targets: &[],
    url: "https://paraply.se/fhir/SearchParameter/Organization-huvudman-type",
};

/// `Consent?provision-type=deny`: whether the consent's base provision permits or denies
/// (`http://hl7.org/fhir/consent-provision-type`). R4 has no parameter for it, and the access
/// rules need it to tell a relative's or a care provider's permit from a spärr (a deny).
pub const CONSENT_PROVISION_TYPE: SearchParamDef = SearchParamDef {
    name: "provision-type",
    kind: ParamKind::Token,
    paths: &[path(&["provision", "type"])],
    targets: &[],
    url: "https://paraply.se/fhir/SearchParameter/Consent-provision-type",
};

/// Paraply's own parameters with what a SearchParameter resource publishes about them:
/// the type they apply to, their FHIRPath expression and a description.
pub const PARAPLY_DEFINITIONS: &[(ResourceType, &SearchParamDef, &str, &str)] = &[
    (
        ResourceType::CareTeam,
        &CARE_TEAM_PARTICIPANT_ROLE,
        "CareTeam.participant.role",
        "The role of a participant: fast vårdkontakt, fast läkarkontakt, fast omsorgskontakt or the contact with overall coordination responsibility (urn:oid:1.2.752.129.5.1.69)",
    ),
    (
        ResourceType::CarePlan,
        &CARE_PLAN_HUVUDMAN,
        "CarePlan.author | CarePlan.contributor",
        "A huvudman (region, kommun) taking part in the plan, with overall responsibility (author) or as a contributor",
    ),
    (
        ResourceType::Organization,
        &ORGANIZATION_HUVUDMAN_TYPE,
        "Organization.type",
        "The kind of huvudman an organization is: region, kommun, privat-utforare or annan",
    ),
    (
        ResourceType::Consent,
        &CONSENT_PROVISION_TYPE,
        "Consent.provision.type",
        "Whether the consent's base provision permits or denies (http://hl7.org/fhir/consent-provision-type: deny, permit); a deny naming a unit or care provider is a spärr",
    ),
];

/// Paraply's own parameters of a type.
pub fn paraply_params(resource_type: ResourceType) -> &'static [SearchParamDef] {
    match resource_type {
        ResourceType::CareTeam => &[CARE_TEAM_PARTICIPANT_ROLE],
        ResourceType::CarePlan => &[CARE_PLAN_HUVUDMAN],
        ResourceType::Organization => &[ORGANIZATION_HUVUDMAN_TYPE],
        ResourceType::Consent => &[CONSENT_PROVISION_TYPE],
        _ => &[],
    }
}

/// Top-level elements `_summary=true` keeps, when the R4 definitions at hand cover the type.
pub fn summary_elements(resource_type: ResourceType) -> Option<&'static [&'static str]> {
    r4::r4_summary_elements(resource_type)
}

/// Every indexed parameter of a type: R4's, then Paraply's (`_id` and `_lastUpdated` are
/// columns of every stored version, not index rows).
pub fn params_for(resource_type: ResourceType) -> impl Iterator<Item = &'static SearchParamDef> {
    r4::COMMON
        .iter()
        .chain(r4::r4_params(resource_type))
        .chain(paraply_params(resource_type))
}

/// The definition of `name` on `resource_type`.
pub fn find(resource_type: ResourceType, name: &str) -> Option<&'static SearchParamDef> {
    params_for(resource_type).find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_searches_are_registered() {
        use ResourceType::*;
        for (t, name, kind) in [
            (CarePlan, "patient", ParamKind::Reference),
            (CarePlan, "status", ParamKind::Token),
            (CarePlan, "category", ParamKind::Token),
            (CarePlan, "part-of", ParamKind::Reference),
            (CarePlan, "care-team", ParamKind::Reference),
            (CarePlan, "huvudman", ParamKind::Reference),
            (CareTeam, "participant", ParamKind::Reference),
            (CareTeam, "participant-role", ParamKind::Token),
            (Appointment, "date", ParamKind::Date),
            (Appointment, "actor", ParamKind::Reference),
            (Appointment, "service-type", ParamKind::Token),
            (Task, "owner", ParamKind::Reference),
            (Consent, "patient", ParamKind::Reference),
            (AuditEvent, "date", ParamKind::Date),
            (Patient, "identifier", ParamKind::Token),
            (Patient, "family", ParamKind::String),
            (Organization, "huvudman-type", ParamKind::Token),
            (Consent, "provision-type", ParamKind::Token),
            (Encounter, "length", ParamKind::Quantity),
        ] {
            let def = find(t, name).unwrap_or_else(|| panic!("{t}?{name} is not registered"));
            assert_eq!(def.kind, kind, "{t}?{name}");
        }
        let patient = find(CarePlan, "patient").unwrap();
        assert_eq!(patient.paths[0].resolve_is, Some(Patient));
        assert_eq!(patient.targets, &[Patient]);
    }

    /// The generated registry agrees with the official R4 definitions: every parameter of a
    /// served type of a supported kind is there, with its type.
    #[test]
    fn registry_matches_the_official_r4_search_parameters() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fhir-r4/definitions/search-parameters.json"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("SKIPPED: {path} is absent; registry not cross-checked");
            return;
        };
        let bundle: serde_json::Value = serde_json::from_str(&text).expect("definitions parse");
        let skipped = [
            "_id",
            "_lastUpdated",
            "_text",
            "_content",
            "_query",
            "_list",
            "_has",
            "_type",
            "near",
            "relationship",
        ];
        let mut checked = 0;
        for entry in bundle["entry"].as_array().into_iter().flatten() {
            let definition = &entry["resource"];
            let code = definition["code"].as_str().unwrap_or_default();
            let kind = definition["type"].as_str().unwrap_or_default();
            if skipped.contains(&code) || matches!(kind, "composite" | "special") {
                continue;
            }
            for base in definition["base"].as_array().into_iter().flatten() {
                let base = base.as_str().unwrap_or_default();
                let types: Vec<ResourceType> = match base {
                    "Resource" | "DomainResource" => ResourceType::ALL.to_vec(),
                    other => other.parse().into_iter().collect(),
                };
                for t in types {
                    let def = find(t, code).unwrap_or_else(|| {
                        panic!("{t}?{code} ({kind}) is missing from the registry")
                    });
                    assert_eq!(def.kind.as_str(), kind, "{t}?{code}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 300, "only {checked} parameters checked");
    }
}
