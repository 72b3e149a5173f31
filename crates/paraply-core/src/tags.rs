//! What a stored body says of itself that the access rules and the access log read: the
//! care-provider owner tag (`meta.tag`), the patients it belongs to (its patient link), and
//! the internal notes patients and relatives never see (I14), and the Subscription channel
//! headers nobody sees.

use paraply_fhir::codes::{
    CARE_PROVIDER_TAG_SYSTEM, NOTE_VISIBILITY_URL, SUBSCRIPTION_SIGNING_SECRET_EXTENSION,
};
use paraply_fhir::{ResourceId, ResourceType};
use paraply_search::{IndexValue, PatientLink, param_rows, patient_link};
use serde_json::{Map, Value, json};

/// The owner code of a stored body's care-provider tag: the care provider whose staff
/// created the resource.
pub fn owner_of(body: &str) -> Option<String> {
    if !body.contains(CARE_PROVIDER_TAG_SYSTEM) {
        return None;
    }
    let value: Value = serde_json::from_str(body).ok()?;
    value
        .pointer("/meta/tag")?
        .as_array()?
        .iter()
        .find(|tag| tag.get("system").and_then(Value::as_str) == Some(CARE_PROVIDER_TAG_SYSTEM))
        .and_then(|tag| tag.get("code").and_then(Value::as_str))
        .map(str::to_owned)
}

pub(crate) fn set_owner(body: &mut Value, owner: Option<String>) {
    let Some(map) = body.as_object_mut() else {
        return;
    };
    let meta = map
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let mut tags: Vec<Value> = meta
        .get("tag")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter(|t| {
                    t.get("system").and_then(Value::as_str) != Some(CARE_PROVIDER_TAG_SYSTEM)
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if let Some(code) = owner {
        tags.push(json!({"system": CARE_PROVIDER_TAG_SYSTEM, "code": code}));
    }
    if tags.is_empty() {
        meta.remove("tag");
    } else {
        meta.insert("tag".into(), Value::Array(tags));
    }
    if meta.is_empty() {
        map.remove("meta");
    }
}

/// The patients a resource body belongs to (by its patient link), for the access log.
pub(crate) fn patients_of(
    resource_type: ResourceType,
    id: &ResourceId,
    body: &str,
) -> Vec<ResourceId> {
    if patient_link(resource_type) == PatientLink::None {
        return Vec::new();
    }
    match serde_json::from_str::<Value>(body) {
        Ok(value) => patients_of_value(resource_type, id, &value),
        Err(_) => Vec::new(),
    }
}

pub(crate) fn patients_of_value(
    resource_type: ResourceType,
    id: &ResourceId,
    value: &Value,
) -> Vec<ResourceId> {
    match patient_link(resource_type) {
        PatientLink::Itself => vec![id.clone()],
        _ => patients_of_body(resource_type, value),
    }
}

/// The resource a body's second patient link ([`paraply_search::patient_link_via`]) names:
/// the Appointment an AppointmentResponse answers. Its patients are the body's too.
pub(crate) fn linked_via(
    resource_type: ResourceType,
    body: &str,
) -> Option<(ResourceType, ResourceId)> {
    let (param, target) = paraply_search::patient_link_via(resource_type)?;
    let value: Value = serde_json::from_str(body).ok()?;
    param_rows(resource_type, &[param], &value)
        .into_iter()
        .find_map(|row| match row.value {
            IndexValue::Reference {
                target_type: Some(found),
                target_id: Some(id),
                ..
            } if found == target => id.parse().ok().map(|id| (target, id)),
            _ => None,
        })
}

/// The patients a body names through its patient link (none for a Patient itself).
pub(crate) fn patients_of_body(resource_type: ResourceType, value: &Value) -> Vec<ResourceId> {
    match patient_link(resource_type) {
        PatientLink::Itself | PatientLink::None => Vec::new(),
        PatientLink::Param(param) => param_rows(resource_type, &[param], value)
            .into_iter()
            .filter_map(|row| match row.value {
                IndexValue::Reference {
                    target_type: Some(ResourceType::Patient),
                    target_id: Some(id),
                    ..
                } => id.parse().ok(),
                _ => None,
            })
            .collect(),
    }
}

/// Drops `channel.header` and the signing secret from a stored Subscription body: they hold
/// the credentials the server sends to the subscriber's endpoint and signs with, which no
/// reader needs to see.
pub(crate) fn without_channel_headers(body: String) -> String {
    if !body.contains("\"header\"") && !body.contains(SUBSCRIPTION_SIGNING_SECRET_EXTENSION) {
        return body;
    }
    let Ok(mut value) = serde_json::from_str::<Value>(&body) else {
        return body;
    };
    strip_channel_headers(&mut value);
    serde_json::to_string(&value).unwrap_or(body)
}

/// Drops `channel.header` and the signing secret from every Subscription in `value`, at any depth (a Bundle's
/// entries, contained resources).
pub(crate) fn strip_channel_headers(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("resourceType").and_then(Value::as_str) == Some("Subscription")
                && let Some(Value::Object(channel)) = map.get_mut("channel")
            {
                channel.remove("header");
                if let Some(Value::Array(extensions)) = channel.get_mut("extension") {
                    extensions.retain(|extension| {
                        extension.get("url").and_then(Value::as_str)
                            != Some(SUBSCRIPTION_SIGNING_SECRET_EXTENSION)
                    });
                    if extensions.is_empty() {
                        channel.remove("extension");
                    }
                }
            }
            map.values_mut().for_each(strip_channel_headers);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_channel_headers),
        _ => {}
    }
}

/// Drops internal notes (I14) from a body shown to a patient or relative.
pub(crate) fn without_internal_notes(body: String) -> String {
    if !body.contains(NOTE_VISIBILITY_URL) {
        return body;
    }
    let Ok(mut value) = serde_json::from_str::<Value>(&body) else {
        return body;
    };
    strip_notes(&mut value);
    serde_json::to_string(&value).unwrap_or(body)
}

fn strip_notes(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(notes)) = map.get_mut("note") {
                notes.retain(|note| !is_internal(note));
                if notes.is_empty() {
                    map.remove("note");
                }
            }
            map.values_mut().for_each(strip_notes);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_notes),
        _ => {}
    }
}

fn is_internal(note: &Value) -> bool {
    note.get("extension")
        .and_then(Value::as_array)
        .is_some_and(|extensions| {
            extensions.iter().any(|e| {
                e.get("url").and_then(Value::as_str) == Some(NOTE_VISIBILITY_URL)
                    && e.get("valueCode").and_then(Value::as_str) == Some("internal")
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_notes_never_reach_citizens() {
        let body = json!({
            "resourceType": "CareTeam",
            "note": [
                {"text": "Ring gärna på förmiddagen"},
                {"text": "Intern: svår att nå",
                 "extension": [{"url": NOTE_VISIBILITY_URL, "valueCode": "internal"}]}
            ]
        })
        .to_string();
        let shown = without_internal_notes(body);
        assert!(shown.contains("förmiddagen"));
        assert!(!shown.contains("svår att nå"));
    }

    #[test]
    fn subscription_channel_headers_are_never_shown() {
        let body = json!({
            "resourceType": "Subscription",
            "status": "active",
            "channel": {"type": "rest-hook", "endpoint": "https://x.example/hook",
                        "header": ["Authorization: Bearer hemligt"],
                        "extension": [{"url": SUBSCRIPTION_SIGNING_SECRET_EXTENSION,
                                       "valueString": "signering-hemligt"}]},
            "contained": [{"resourceType": "Subscription",
                           "channel": {"header": ["X-Key: också hemligt"]}}]
        })
        .to_string();
        let shown = without_channel_headers(body);
        assert!(shown.contains("https://x.example/hook"));
        assert!(!shown.contains("hemligt"), "{shown}");
    }

    #[test]
    fn owner_tag_is_set_replaced_and_read_back() {
        let mut body = json!({"resourceType": "CarePlan", "meta": {"tag": [
            {"system": CARE_PROVIDER_TAG_SYSTEM, "code": "forged"},
            {"system": "x", "code": "keep"}
        ]}});
        set_owner(&mut body, Some("SE2321000016-0001".into()));
        let text = body.to_string();
        assert_eq!(owner_of(&text).as_deref(), Some("SE2321000016-0001"));
        assert!(text.contains("keep") && !text.contains("forged"));
        set_owner(&mut body, None);
        assert_eq!(owner_of(&body.to_string()), None);
    }

    #[test]
    fn patients_of_follows_the_patient_link() {
        let id: ResourceId = "c1".parse().unwrap_or_else(|_| unreachable!());
        let body =
            json!({"resourceType": "CareTeam", "subject": {"reference": "Patient/p1"}}).to_string();
        let patients = patients_of(ResourceType::CareTeam, &id, &body);
        assert_eq!(patients.len(), 1);
        assert_eq!(patients[0].as_str(), "p1");
    }
}
