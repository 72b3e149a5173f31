//! `GET Patient/{id}/$access-log`: the patient's view of the access log (DOMAIN.md §1, §5):
//! who read or wrote their data — by unit and care provider, not by staff member —, when,
//! what kind of data, why (and whether it was an emergency access), and whether it was
//! allowed.
//!
//! The answer is a `searchset` Bundle of AuditEvents, newest first, each reduced to what the
//! patient may see: the staff member's HSA-id and PractitionerRole, the token issuer, other
//! patients named by the same event, the search query, the request id, the emergency reason
//! text (free text written by staff) and failure details are dropped. Every entry is still
//! a valid AuditEvent. Pages continue with the search cursor (`_page`); links are relative
//! to the FHIR base, which only the HTTP edge knows.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use paraply_fhir::{ResourceId, ResourceType};
use paraply_search::{PageCursor, SearchQuery, Total};
use paraply_store::{SearchMatch, Store, StoreError};
use serde_json::{Map, Value, json};

use crate::audit::{CARE_PROVIDER_ROLE, CLIENT_ID_SYSTEM, OBJECT_ROLE, ROLE_CLASS, UNIT_ROLE};
use crate::error::CoreError;

/// One page of the access log of `patient`, newest first: `count` events, after `page`
/// (a cursor from a previous answer's `next` link).
pub async fn access_log(
    store: &dyn Store,
    patient: &ResourceId,
    count: u32,
    page: Option<PageCursor>,
) -> Result<Value, CoreError> {
    let patient_reference = format!("Patient/{patient}");
    let mut query = SearchQuery::parse(
        ResourceType::AuditEvent,
        [("patient", patient_reference.as_str()), ("_sort", "-date")],
    )?;
    query.count = count;
    // A total would count the whole log on every page; `next` says whether more follow.
    query.total = Total::None;
    let backwards = page.as_ref().is_some_and(|p| p.backwards);
    query.page = page.clone();
    let found = store.search(&query).await?;

    let own_url = format!("Patient/{patient}/$access-log?_count={count}");
    let mut self_url = own_url.clone();
    if let Some(page) = &page {
        self_url.push_str(&format!("&_page={}", page.encode()));
    }
    let mut links = vec![json!({"relation": "self", "url": self_url})];
    let next = |last: &SearchMatch| PageCursor {
        values: last.sort_values.clone(),
        id: last.resource.id.to_string(),
        backwards: false,
    };
    if let (true, Some(last)) = (found.more || backwards, found.matches.last()) {
        links.push(json!({
            "relation": "next",
            "url": format!("{own_url}&_page={}", next(last).encode())
        }));
    }
    let entries = found
        .matches
        .iter()
        .filter_map(|m| m.resource.body.as_deref())
        .map(|body| {
            let event: Value = serde_json::from_str(body)
                .map_err(|e| CoreError::Store(StoreError::Corrupt(e.to_string())))?;
            Ok(json!({
                "resource": for_patient(&event, &patient_reference),
                "search": {"mode": "match"}
            }))
        })
        .collect::<Result<Vec<_>, CoreError>>()?;
    let mut bundle = Map::new();
    bundle.insert("resourceType".into(), json!("Bundle"));
    bundle.insert("type".into(), json!("searchset"));
    bundle.insert("link".into(), Value::Array(links));
    if !entries.is_empty() {
        bundle.insert("entry".into(), Value::Array(entries));
    }
    Ok(Value::Object(bundle))
}

/// The stored AuditEvent reduced to what its patient may see (see the module docs).
fn for_patient(event: &Value, patient_reference: &str) -> Value {
    let mut out = Map::new();
    for key in ["resourceType", "id"] {
        copy(event, &mut out, key);
    }
    if let Some(security) = event.pointer("/meta/security") {
        out.insert("meta".into(), json!({"security": security}));
    }
    for key in ["type", "subtype", "action", "recorded", "outcome"] {
        copy(event, &mut out, key);
    }
    if let Some(purposes) = event.get("purposeOfEvent") {
        out.insert("purposeOfEvent".into(), codings_only(purposes));
    }
    let agents: Vec<Value> = array(event, "agent")
        .filter_map(agent_for_patient)
        .collect();
    out.insert("agent".into(), Value::Array(agents));
    copy(event, &mut out, "source");
    let entities: Vec<Value> = array(event, "entity")
        .filter_map(|entity| entity_for_patient(entity, patient_reference))
        .collect();
    if !entities.is_empty() {
        out.insert("entity".into(), Value::Array(entities));
    }
    Value::Object(out)
}

fn copy(from: &Value, to: &mut Map<String, Value>, key: &str) {
    if let Some(value) = from.get(key) {
        to.insert(key.into(), value.clone());
    }
}

fn array<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// CodeableConcepts without their free `text` (the emergency reason).
fn codings_only(concepts: &Value) -> Value {
    Value::Array(
        concepts
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|concept| concept.get("coding"))
            .map(|coding| json!({"coding": coding}))
            .collect(),
    )
}

fn has_code(concept: Option<&Value>, system: &str, code: &str) -> bool {
    concept
        .and_then(|c| c.get("coding"))
        .and_then(Value::as_array)
        .is_some_and(|codings| {
            codings
                .iter()
                .any(|c| c["system"] == system && c["code"] == code)
        })
}

/// The requestor without a staff member's identity, and the unit and care provider; the
/// server's own agent is left out.
fn agent_for_patient(agent: &Value) -> Option<Value> {
    let agent_type = agent.get("type");
    if has_code(agent_type, ROLE_CLASS, UNIT_ROLE)
        || has_code(agent_type, ROLE_CLASS, CARE_PROVIDER_ROLE)
    {
        return Some(json!({
            "type": agent_type,
            "who": agent.get("who"),
            "requestor": false
        }));
    }
    if agent.get("requestor") != Some(&Value::Bool(true)) {
        return None;
    }
    let mut out = Map::new();
    copy(agent, &mut out, "type");
    let who = agent.get("who");
    let citizen = who
        .and_then(|w| w.get("reference"))
        .and_then(Value::as_str)
        .filter(|r| r.starts_with("Patient/") || r.starts_with("RelatedPerson/"));
    let system = who
        .and_then(|w| w.pointer("/identifier/system"))
        .is_some_and(|s| s == CLIENT_ID_SYSTEM);
    if let Some(reference) = citizen {
        out.insert("who".into(), json!({"reference": reference}));
    } else if system {
        copy(agent, &mut out, "who");
    }
    out.insert("requestor".into(), json!(true));
    if let Some(purposes) = agent.get("purposeOfUse") {
        out.insert("purposeOfUse".into(), codings_only(purposes));
    }
    Some(Value::Object(out))
}

/// This patient's own entity, and the kind of resource read or searched (not which one,
/// and not the query, which may name others).
fn entity_for_patient(entity: &Value, patient_reference: &str) -> Option<Value> {
    let reference = entity.pointer("/what/reference").and_then(Value::as_str);
    let role = entity.pointer("/role/code").and_then(Value::as_str);
    let from_object_role = entity
        .pointer("/role/system")
        .is_some_and(|s| s == OBJECT_ROLE);
    match (role, from_object_role) {
        (Some("1"), true) => (reference == Some(patient_reference)).then(|| entity.clone()),
        (Some("4"), true) => {
            let kind = reference?.split('/').next()?;
            Some(
                json!({"what": {"type": kind}, "type": entity.get("type"), "role": entity.get("role")}),
            )
        }
        (Some("24"), true) => {
            let query = STANDARD.decode(entity.get("query")?.as_str()?).ok()?;
            let query = String::from_utf8(query).ok()?;
            let kind = query.split('?').next().filter(|k| !k.is_empty())?;
            Some(
                json!({"what": {"type": kind}, "type": entity.get("type"), "role": entity.get("role")}),
            )
        }
        _ => None,
    }
}
