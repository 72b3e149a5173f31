//! Small readers over FHIR JSON: the rules and the document read resources as
//! `serde_json::Value` (what the store keeps), so these keep the path-walking in one place.

use serde_json::Value;

/// A string element, or `None` when absent or not a string.
pub(crate) fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// A repeating element as a slice; absent (or not an array) reads as empty.
pub(crate) fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) fn resource_type(resource: &Value) -> Option<&str> {
    text(resource, "resourceType")
}

pub(crate) fn status(resource: &Value) -> Option<&str> {
    text(resource, "status")
}

/// `Type/id` of a resource, the form references to it take.
pub(crate) fn self_reference(resource: &Value) -> Option<String> {
    Some(format!(
        "{}/{}",
        resource_type(resource)?,
        text(resource, "id")?
    ))
}

/// A reference text in the `Type/id` form, from relative (`CareTeam/x`), versioned
/// (`CareTeam/x/_history/2`) or absolute (`https://host/fhir/CareTeam/x`) spellings.
/// Contained (`#x`) and placeholder (`urn:uuid:`) references name nothing stored: `None`.
pub(crate) fn normalize_reference(reference: &str) -> Option<String> {
    if reference.starts_with('#') || reference.starts_with("urn:") {
        return None;
    }
    let unversioned = match reference.find("/_history/") {
        Some(at) => &reference[..at],
        None => reference,
    };
    let mut segments = unversioned.rsplit('/');
    let id = segments.next().filter(|id| !id.is_empty())?;
    let resource_type = segments.next()?;
    let looks_like_type = resource_type
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_uppercase())
        && resource_type.chars().all(|c| c.is_ascii_alphanumeric());
    looks_like_type.then(|| format!("{resource_type}/{id}"))
}

/// The `Type/id` a `Reference` element points at.
pub(crate) fn reference_of(reference: &Value) -> Option<String> {
    text(reference, "reference").and_then(normalize_reference)
}

/// The `Type/id` the `Reference` element `key` of `value` points at.
pub(crate) fn reference_at(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(reference_of)
}

/// The ids of the `Reference`s in the repeating element `key` (unresolvable ones skipped).
pub(crate) fn references_at(value: &Value, key: &str) -> Vec<String> {
    list(value, key).iter().filter_map(reference_of).collect()
}

/// Whether a `CodeableConcept` has a coding `system|code`.
pub(crate) fn concept_has(concept: &Value, system: &str, code: &str) -> bool {
    list(concept, "coding")
        .iter()
        .any(|coding| text(coding, "system") == Some(system) && text(coding, "code") == Some(code))
}

/// The first code of `system` in a `CodeableConcept`.
pub(crate) fn concept_code<'a>(concept: &'a Value, system: &str) -> Option<&'a str> {
    list(concept, "coding")
        .iter()
        .find(|coding| text(coding, "system") == Some(system))
        .and_then(|coding| text(coding, "code"))
}

/// Whether any `CodeableConcept` of the repeating element `key` has `system|code`.
pub(crate) fn any_concept_has(value: &Value, key: &str, system: &str, code: &str) -> bool {
    list(value, key)
        .iter()
        .any(|concept| concept_has(concept, system, code))
}

/// The id of a `Patient/<id>` reference.
pub(crate) fn patient_id(reference: &str) -> Option<&str> {
    reference.strip_prefix("Patient/")
}

/// Whether a FHIR `Period` (dates or dateTimes, possibly partial) includes the day
/// `today` (`YYYY-MM-DD`). Comparing as many characters as each bound gives keeps
/// `2026` and `2026-04` meaningful without inventing a time zone.
pub(crate) fn period_includes(period: Option<&Value>, today: &str) -> bool {
    let Some(period) = period else {
        return true;
    };
    let prefix = |bound: &str| -> (String, String) {
        let len = bound.len().min(10).min(today.len());
        (bound[..len].to_owned(), today[..len].to_owned())
    };
    let started = text(period, "start").is_none_or(|start| {
        let (start, today) = prefix(start);
        start <= today
    });
    let not_ended = text(period, "end").is_none_or(|end| {
        let (end, today) = prefix(end);
        end >= today
    });
    started && not_ended
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_normalize_to_type_and_id() {
        assert_eq!(
            normalize_reference("CareTeam/x").as_deref(),
            Some("CareTeam/x")
        );
        assert_eq!(
            normalize_reference("CareTeam/x/_history/3").as_deref(),
            Some("CareTeam/x")
        );
        assert_eq!(
            normalize_reference("https://paraply.example.se/fhir/Patient/p1").as_deref(),
            Some("Patient/p1")
        );
        assert_eq!(normalize_reference("#contained"), None);
        assert_eq!(
            normalize_reference("urn:uuid:0d4b8e3c-1111-4222-8333-944455556666"),
            None
        );
    }

    #[test]
    fn a_period_includes_days_between_its_bounds_partial_dates_too() {
        let period = json!({"start": "2026-01-01", "end": "2026-04"});
        assert!(period_includes(Some(&period), "2026-04-30"));
        assert!(!period_includes(Some(&period), "2026-05-01"));
        assert!(!period_includes(Some(&period), "2025-12-31"));
        assert!(period_includes(None, "2026-05-01"));
    }
}
