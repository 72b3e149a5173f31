//! The CapabilityStatement, generated from what is wired: the served types, the
//! interactions the engine executes, the parameters in the search registry, the operations
//! table and the conformance resources (profiles) a domain publishes.

use paraply_fhir::ResourceType;
use paraply_search::{ParamKind, params_for};
use serde_json::{Value, json};

use crate::conformance::{CONFORMANCE_TYPES, ConformanceCatalog};
use crate::operations::{OperationDef, Operations};
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

/// What the access log serves as AuditEvent: read (version 1 only), its instance history,
/// and search by the parameters it keeps ([`crate::audit_search::SEARCH_PARAMS`]); never
/// written by a client.
fn audit_event_entry() -> Value {
    let mut search_params = vec![
        json!({"name": "_id", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id", "type": "token"}),
    ];
    search_params.extend(
        params_for(ResourceType::AuditEvent)
            .filter(|p| crate::audit_search::SEARCH_PARAMS.contains(&p.name))
            .map(|p| json!({"name": p.name, "definition": p.url, "type": p.kind.as_str()})),
    );
    let interactions: Vec<Value> = ["read", "vread", "history-instance", "search-type"]
        .iter()
        .map(|code| json!({"code": code}))
        .collect();
    json!({
        "type": "AuditEvent",
        "interaction": interactions,
        "versioning": "no-version",
        "readHistory": false,
        "updateCreate": false,
        "documentation": "The access log (I15), written by the server only: every access to patient data, append-only and hash-chained",
        "searchParam": search_params,
    })
}

fn resource_entry(
    resource_type: ResourceType,
    operations: &Operations,
    conformance: &dyn ConformanceCatalog,
) -> Value {
    if resource_type == ResourceType::AuditEvent {
        return audit_event_entry();
    }
    let mut search_params = vec![
        json!({"name": "_id", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id", "type": "token"}),
        json!({"name": "_lastUpdated", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated", "type": "date"}),
    ];
    search_params.extend(params_for(resource_type).map(
        |param| json!({"name": param.name, "definition": param.url, "type": param.kind.as_str()}),
    ));
    let includes: Vec<String> = params_for(resource_type)
        .filter(|p| p.kind == ParamKind::Reference)
        .map(|p| format!("{resource_type}:{}", p.name))
        .collect();
    let revincludes: Vec<String> = ResourceType::ALL
        .iter()
        .filter(|source| **source != ResourceType::AuditEvent)
        .flat_map(|source| {
            params_for(*source)
                .filter(|p| p.kind == ParamKind::Reference && p.targets.contains(&resource_type))
                .map(move |p| format!("{source}:{}", p.name))
        })
        .collect();
    let mut entry = json!({
        "type": resource_type.as_str(),
        "interaction": TYPE_INTERACTIONS.iter().map(|code| json!({"code": code})).collect::<Vec<_>>(),
        "versioning": "versioned-update",
        "readHistory": true,
        "updateCreate": true,
        "conditionalCreate": true,
        "conditionalUpdate": true,
        "conditionalDelete": "single",
        "searchInclude": includes,
        "searchRevInclude": revincludes,
        "searchParam": search_params,
    });
    let operations: Vec<Value> = operations
        .on_type(resource_type)
        .map(operation_entry)
        .collect();
    if !operations.is_empty() {
        entry["operation"] = Value::Array(operations);
    }
    let profiles = conformance.profiles_of(resource_type);
    if !profiles.is_empty() {
        entry["supportedProfile"] = json!(profiles);
    }
    entry
}

fn operation_entry(definition: &OperationDef) -> Value {
    json!({
        "name": definition.name,
        "definition": definition.definition,
        "documentation": definition.documentation,
    })
}

/// The conformance resources a catalog serves: read and listed, never written.
fn conformance_entry(type_name: &str, operations: &Operations) -> Value {
    let mut entry = json!({
        "type": type_name,
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "documentation": "Paraply's own definitions (fhir-profiles/), read-only",
    });
    let invoked: Vec<Value> = operations
        .on_conformance(type_name)
        .map(operation_entry)
        .collect();
    if !invoked.is_empty() {
        entry["operation"] = Value::Array(invoked);
    }
    entry
}

/// The CapabilityStatement of the engine with `operations` (its table) and `conformance`.
pub fn capability_statement(
    operations: &Operations,
    conformance: &dyn ConformanceCatalog,
) -> Value {
    let mut resources: Vec<Value> = ResourceType::ALL
        .iter()
        .map(|t| resource_entry(*t, operations, conformance))
        .collect();
    resources.extend(
        CONFORMANCE_TYPES
            .iter()
            .filter(|t| !conformance.resources_of(t).is_empty())
            .map(|t| conformance_entry(t, operations)),
    );
    let system_operations: Vec<Value> = operations.on_system().map(operation_entry).collect();
    let mut statement = json!({
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
            "searchParam": [
                {"name": "_count", "type": "number", "documentation": "Page size (default 50, at most 1000)"},
                {"name": "_sort", "type": "string", "documentation": "Sort keys; '-' for descending. Ties, and searches without _sort, follow the order of writes: a resource updated between page reads may come again on a later page, never skipped"},
                {"name": "_include", "type": "special"},
                {"name": "_revinclude", "type": "special"},
                {"name": "_summary", "type": "token"},
                {"name": "_elements", "type": "string"},
                {"name": "_total", "type": "token", "documentation": "accurate: always counted. Absent or estimate: Bundle.total only when the first page holds every match. none: never. _summary=count and _count=0 always count"},
                {"name": "_has", "type": "special"}
            ],
        }]
    });
    if !system_operations.is_empty() {
        statement["rest"][0]["operation"] = Value::Array(system_operations);
    }
    statement
}

/// How clients authenticate, for the CapabilityStatement's `rest.security`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// `--auth none`: no authentication (development on loopback).
    None,
    /// SMART on FHIR with bearer tokens. The endpoints are those of the issuer the SMART
    /// configuration publishes, when its discovery document could be read.
    Smart {
        authorize: Option<String>,
        token: Option<String>,
    },
}

/// Puts `rest.security` into a CapabilityStatement built by [`capability_statement`]. The
/// engine does not know the deployment's issuers; the HTTP edge does and calls this.
pub fn add_security(statement: &mut Value, security: &Security) {
    let section = match security {
        Security::None => json!({
            "cors": true,
            "description": "No authentication: this server runs with --auth none (development only)."
        }),
        Security::Smart { authorize, token } => {
            let mut section = json!({
                "cors": true,
                "service": [{
                    "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR"
                    }],
                    "text": "SMART on FHIR: OAuth 2.0 bearer access tokens"
                }],
                "description": "Every request but the CapabilityStatement needs an OAuth 2.0 bearer access token (SMART App Launch v2) from a trusted issuer; see /.well-known/smart-configuration."
            });
            let uris: Vec<Value> = [("authorize", authorize), ("token", token)]
                .into_iter()
                .filter_map(|(name, uri)| {
                    uri.as_ref()
                        .map(|uri| json!({"url": name, "valueUri": uri}))
                })
                .collect();
            if !uris.is_empty()
                && let Some(map) = section.as_object_mut()
            {
                map.insert(
                    "extension".into(),
                    json!([{
                        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                        "extension": uris
                    }]),
                );
            }
            section
        }
    };
    if let Some(rest) = statement
        .get_mut("rest")
        .and_then(|r| r.get_mut(0))
        .and_then(Value::as_object_mut)
    {
        rest.insert("security".into(), section);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::NoConformance;

    #[test]
    fn smart_security_names_the_service_and_the_oauth_uris() {
        let mut statement = capability_statement(&Operations::with(Vec::new()), &NoConformance);
        add_security(
            &mut statement,
            &Security::Smart {
                authorize: Some("https://idp/authorize".into()),
                token: Some("https://idp/token".into()),
            },
        );
        let security = &statement["rest"][0]["security"];
        assert_eq!(security["cors"], true);
        assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
        let uris = &security["extension"][0];
        assert_eq!(
            uris["url"],
            "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
        );
        assert_eq!(uris["extension"][0]["valueUri"], "https://idp/authorize");
        assert_eq!(uris["extension"][1]["url"], "token");
    }

    #[test]
    fn unknown_endpoints_leave_out_the_extension() {
        let mut statement = capability_statement(&Operations::with(Vec::new()), &NoConformance);
        add_security(
            &mut statement,
            &Security::Smart {
                authorize: None,
                token: None,
            },
        );
        assert!(statement["rest"][0]["security"]["extension"].is_null());
        add_security(&mut statement, &Security::None);
        assert!(statement["rest"][0]["security"]["service"].is_null());
    }
}
