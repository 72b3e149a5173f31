//! The CapabilityStatement, generated from what is wired: the served types, the
//! interactions the engine executes and the parameters in the search registry.

use paraply_fhir::ResourceType;
use paraply_search::params_for;
use serde_json::{Value, json};

use crate::stamp::{format_instant, now};

/// Instance and type interactions every served type supports.
pub const TYPE_INTERACTIONS: &[&str] = &[
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
];

/// Whole-system interactions.
pub const SYSTEM_INTERACTIONS: &[&str] = &["transaction", "batch", "history-system"];

pub fn capability_statement() -> Value {
    let resources: Vec<Value> = ResourceType::ALL
        .iter()
        .map(|resource_type| {
            let mut search_params = vec![json!({
                "name": "_id",
                "definition": "http://hl7.org/fhir/SearchParameter/Resource-id",
                "type": "token",
                "documentation": "Logical id of the resource"
            })];
            search_params.extend(params_for(*resource_type).iter().map(|param| {
                json!({
                    "name": param.name,
                    "definition": format!(
                        "http://hl7.org/fhir/SearchParameter/{}-{}",
                        resource_type, param.name
                    ),
                    "type": param.kind.as_str(),
                    "documentation": param.documentation,
                })
            }));
            json!({
                "type": resource_type.as_str(),
                "interaction": TYPE_INTERACTIONS.iter().map(|code| json!({"code": code})).collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalUpdate": true,
                "conditionalDelete": "single",
                "searchParam": search_params,
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": format_instant(now()),
        "publisher": "Paraply",
        "kind": "instance",
        "software": {"name": "Paraply", "version": env!("CARGO_PKG_VERSION")},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            "documentation": "Patientkontrakt: the umbrella plan over all of a patient's plans",
            "resource": resources,
            "interaction": SYSTEM_INTERACTIONS.iter().map(|code| json!({"code": code})).collect::<Vec<_>>(),
        }]
    })
}
