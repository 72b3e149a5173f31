//! `_summary` and `_elements`: the parts of a resource a search asked for, marked
//! `SUBSETTED` so no client mistakes them for the whole (R4 search §3.1.1.5).

use paraply_fhir::{ResourceType, required_top_level_elements};
use serde_json::{Map, Value, json};

use crate::query::Summary;
use crate::registry::summary_elements;

const SUBSETTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// Whether `key` is the element `name` or one choice of it (`deceased` → `deceasedBoolean`),
/// or a primitive's extension (`_status`).
fn is_element(key: &str, name: &str) -> bool {
    let key = key.strip_prefix('_').unwrap_or(key);
    key == name
        || key
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
}

/// Reduces `resource` as `_summary`/`_elements` ask; `false` when nothing was removed.
pub fn subset(
    resource_type: ResourceType,
    resource: &mut Map<String, Value>,
    summary: Summary,
    elements: &[String],
) -> bool {
    let type_name = resource_type.as_str();
    let always = ["resourceType", "id", "meta"];
    let required: Vec<&str> = required_top_level_elements(type_name).collect();
    let keep: Box<dyn Fn(&str) -> bool> = match summary {
        Summary::True => match summary_elements(resource_type) {
            Some(names) => Box::new(move |key| {
                always.contains(&key) || names.iter().any(|n| is_element(key, n))
            }),
            None => return false,
        },
        Summary::Text => Box::new(move |key| {
            always.contains(&key) || key == "text" || required.iter().any(|n| is_element(key, n))
        }),
        Summary::Data => Box::new(|key| key != "text"),
        Summary::Count | Summary::False if !elements.is_empty() => Box::new(move |key| {
            always.contains(&key)
                || required.iter().any(|n| is_element(key, n))
                || elements.iter().any(|n| is_element(key, n))
        }),
        Summary::Count | Summary::False => return false,
    };
    let before = resource.len();
    resource.retain(|key, _| keep(key));
    if resource.len() == before {
        return false;
    }
    let meta = resource.entry("meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        let tags = meta.entry("tag").or_insert_with(|| json!([]));
        if let Some(tags) = tags.as_array_mut() {
            tags.push(json!({"system": SUBSETTED_SYSTEM, "code": "SUBSETTED"}));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Map<String, Value> {
        json!({"resourceType": "CarePlan", "id": "1", "meta": {"versionId": "1"},
               "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
               "status": "active", "intent": "plan", "subject": {"reference": "Patient/1"},
               "note": [{"text": "internal"}]})
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    #[test]
    fn summary_true_keeps_summary_elements_and_marks_the_subset() {
        let mut resource = plan();
        assert!(subset(
            ResourceType::CarePlan,
            &mut resource,
            Summary::True,
            &[]
        ));
        assert!(resource.contains_key("status") && resource.contains_key("subject"));
        assert!(!resource.contains_key("note") && !resource.contains_key("text"));
        assert_eq!(resource["meta"]["tag"][0]["code"], "SUBSETTED");
    }

    #[test]
    fn elements_keep_what_was_asked_and_what_is_mandatory() {
        let mut resource = plan();
        assert!(subset(
            ResourceType::CarePlan,
            &mut resource,
            Summary::False,
            &["note".to_owned()]
        ));
        let keys: Vec<&str> = resource.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "resourceType",
                "id",
                "meta",
                "status",
                "intent",
                "subject",
                "note"
            ]
        );
    }

    #[test]
    fn data_drops_only_the_narrative() {
        let mut resource = plan();
        assert!(subset(
            ResourceType::CarePlan,
            &mut resource,
            Summary::Data,
            &[]
        ));
        assert!(!resource.contains_key("text") && resource.contains_key("note"));
        let mut untouched = plan();
        assert!(!subset(
            ResourceType::CarePlan,
            &mut untouched,
            Summary::False,
            &[]
        ));
    }
}
