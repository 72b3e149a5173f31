//! Small JSON builders for the FHIR datatypes the generator repeats, and the transaction
//! Bundle. No validation here: the tests run every generated resource through
//! `paraply_fhir::validate`.

use paraply_fhir::codes::REACHABLE_HOURS_URL;
use serde_json::{Value, json};

/// External code systems. Paraply's own and the identifier systems come from
/// `paraply_fhir` so there is one definition of each.
pub(crate) const ORGANIZATION_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/organization-type";
pub(crate) const CONSENT_SCOPE: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
pub(crate) const LOINC: &str = "http://loinc.org";
pub(crate) const V3_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub(crate) const V3_ROLE_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
pub(crate) const V3_PARTICIPATION_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
pub(crate) const CONSENT_ACTION: &str = "http://terminology.hl7.org/CodeSystem/consentaction";

/// `{"reference": "Type/id"}`.
pub(crate) fn reference(resource_type: &str, id: &str) -> Value {
    json!({ "reference": format!("{resource_type}/{id}") })
}

/// A CodeableConcept with one coding.
pub(crate) fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({ "coding": [{ "system": system, "code": code, "display": display }] })
}

pub(crate) fn identifier(system: &str, value: &str) -> Value {
    json!({ "system": system, "value": value })
}

/// `meta` claiming one of Paraply's profiles (`paraply_fhir::codes::profile`), so a
/// client and the server's profile checks know which patientkontrakt part a resource is.
pub(crate) fn claims(profile: &str) -> Value {
    json!({ "profile": [profile] })
}

/// The reachable-hours extension of a fixed contact: the weekdays and the hours, shaped like
/// `PractitionerRole.availableTime`.
pub(crate) fn reachable_hours(days: &[&str], start: &str, end: &str) -> Value {
    let mut parts: Vec<Value> = days
        .iter()
        .map(|d| json!({ "url": "daysOfWeek", "valueCode": d }))
        .collect();
    parts.push(json!({ "url": "availableStartTime", "valueTime": start }));
    parts.push(json!({ "url": "availableEndTime", "valueTime": end }));
    json!({ "url": REACHABLE_HOURS_URL, "extension": parts })
}

pub(crate) fn phone(value: &str, use_: &str) -> Value {
    json!({ "system": "phone", "value": value, "use": use_ })
}

/// The resource's `Type/id`, the key of every reference and of the PUT entry's url.
pub(crate) fn local_reference(resource: &Value) -> String {
    format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap_or_default(),
        resource["id"].as_str().unwrap_or_default()
    )
}

/// A transaction Bundle that PUTs every resource at its own `Type/id`: reloading the same
/// seed overwrites rather than duplicates, and references stay plain `Type/id`.
pub fn transaction(resources: &[Value]) -> Value {
    let entries: Vec<Value> = resources
        .iter()
        .map(|resource| {
            json!({
                "resource": resource,
                "request": { "method": "PUT", "url": local_reference(resource) },
            })
        })
        .collect();
    json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries })
}
