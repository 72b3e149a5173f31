//! Validation of incoming resources against the R4 model.
//!
//! fhirbolt's strict parse decides what is structurally valid (unknown elements, wrong
//! types, missing required elements). Its errors carry no position, so on failure the
//! offending element is found by removing elements one at a time until the error changes
//! (only on the error path; valid writes pay one parse). A round trip through fhirbolt then
//! catches what its parser coerces silently (`"active": "true"`, `null`, empty arrays), and
//! two tables add what it does not model: required elements and required code bindings.

use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::Value;

use crate::bindings::{REQUIRED_BINDINGS, REQUIRED_ELEMENTS};
use crate::outcome::{Issue, IssueType};
use crate::resource_type::ResourceType;

/// Why a resource was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// Not a parseable R4 resource: unknown elements, wrong JSON types (HTTP 400).
    Structure(Vec<Issue>),
    /// Parseable, but breaks the R4 rules: missing required elements, codes outside a
    /// required value set (HTTP 422).
    Content(Vec<Issue>),
}

impl Invalid {
    pub fn issues(&self) -> &[Issue] {
        match self {
            Invalid::Structure(issues) | Invalid::Content(issues) => issues,
        }
    }
}

const STRICT: DeserializationConfig = DeserializationConfig {
    mode: DeserializationMode::Strict,
};

/// fhirbolt's strict parse of a resource already checked by [`first_empty`]: fhirbolt 0.4
/// panics on some empty values, which are invalid FHIR JSON anyway. A panic inside it is
/// still caught and reported as invalid input rather than taking the request down. The
/// resource goes in as text, not as a cloned tree: serializing is cheaper than cloning.
fn parse_unchecked(resource: &Value) -> Result<Resource, String> {
    let bytes = serde_json::to_vec(resource).map_err(|e| e.to_string())?;
    std::panic::catch_unwind(move || {
        fhirbolt::json::from_slice::<Resource>(&bytes, Some(STRICT)).map_err(|e| e.to_string())
    })
    .unwrap_or_else(|_| Err("the resource could not be parsed as FHIR R4".to_owned()))
}

/// [`parse_unchecked`] for a resource that may hold empty values (while [`locate`] removes
/// elements one by one).
fn parse(resource: &Value) -> Result<Resource, String> {
    match first_empty(resource, "") {
        Some((_, reason)) => Err(reason),
        None => parse_unchecked(resource),
    }
}

/// The first null, empty string, empty array or empty object (FHIR JSON §2.6.2: elements
/// never have empty values).
fn first_empty(node: &Value, path: &str) -> Option<(String, String)> {
    let empty = match node {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    };
    if empty {
        return Some((path.to_owned(), empty_reason(node)));
    }
    match node {
        Value::Object(map) => map.iter().find_map(|(key, value)| {
            // `_given: [null, {…}]` keeps primitive extensions aligned with their values.
            if key.starts_with('_') && value.is_array() {
                return None;
            }
            first_empty(value, &format!("{path}.{key}"))
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| first_empty(item, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// The served resource type named by `resourceType`.
pub fn resource_type_of(resource: &Value) -> Result<ResourceType, Invalid> {
    let Some(name) = resource.get("resourceType").and_then(Value::as_str) else {
        return Err(Invalid::Structure(vec![
            Issue::error(
                IssueType::Structure,
                "a resource must be a JSON object with a string 'resourceType'",
            )
            .at("resourceType"),
        ]));
    };
    name.parse::<ResourceType>().map_err(|e| {
        Invalid::Structure(vec![
            Issue::error(IssueType::NotSupported, e.to_string()).at("resourceType"),
        ])
    })
}

/// Checks one resource of a served type; `Ok` gives its type.
pub fn validate(resource: &Value) -> Result<ResourceType, Invalid> {
    let resource_type = resource_type_of(resource)?;
    let type_name = resource_type.as_str();
    if let Some((path, reason)) = first_empty(resource, type_name) {
        return Err(Invalid::Structure(vec![
            Issue::error(IssueType::Structure, reason).at(path),
        ]));
    }

    let parsed = match parse_unchecked(resource) {
        Ok(parsed) => parsed,
        Err(message) => return Err(describe_parse_failure(resource, type_name, &message)),
    };
    let round_trip = fhirbolt::json::to_json_value(parsed, None)
        .map_err(|e| Invalid::Structure(vec![Issue::error(IssueType::Structure, e.to_string())]))?;
    if let Some((path, reason)) = first_difference(resource, &round_trip, type_name) {
        return Err(Invalid::Structure(vec![
            Issue::error(IssueType::Structure, reason).at(path),
        ]));
    }

    let mut issues = Vec::new();
    check_required_elements(resource, type_name, &mut issues);
    check_required_bindings(resource, type_name, &mut issues);
    if issues.is_empty() {
        Ok(resource_type)
    } else {
        Err(Invalid::Content(issues))
    }
}

/// A step from a JSON node to a child.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn fhirpath(type_name: &str, steps: &[Step]) -> String {
    let mut path = type_name.to_owned();
    for step in steps {
        match step {
            Step::Key(key) => {
                path.push('.');
                path.push_str(key);
            }
            Step::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

fn node_at<'a>(root: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    steps.iter().try_fold(root, |node, step| match step {
        Step::Key(key) => node.get(key),
        Step::Index(i) => node.get(i),
    })
}

fn without(root: &Value, steps: &[Step]) -> Value {
    let mut copy = root.clone();
    if let Some((last, parents)) = steps.split_last() {
        let mut node = &mut copy;
        for step in parents {
            let next = match step {
                Step::Key(key) => node.get_mut(key),
                Step::Index(i) => node.get_mut(*i),
            };
            match next {
                Some(next) => node = next,
                None => return copy,
            }
        }
        match (last, node) {
            (Step::Key(key), Value::Object(map)) => {
                map.shift_remove(key);
            }
            (Step::Index(i), Value::Array(items)) if *i < items.len() => {
                items.remove(*i);
            }
            _ => {}
        }
    }
    copy
}

/// Finds the deepest element whose removal changes the parse error.
fn locate(resource: &Value, message: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    'descend: loop {
        let children: Vec<Step> = match node_at(resource, &steps) {
            Some(Value::Object(map)) => map
                .keys()
                .filter(|k| !steps.is_empty() || k.as_str() != "resourceType")
                .map(|k| Step::Key(k.clone()))
                .collect(),
            Some(Value::Array(items)) => (0..items.len()).map(Step::Index).collect(),
            _ => break,
        };
        for child in children {
            let mut candidate = steps.clone();
            candidate.push(child);
            if parse(&without(resource, &candidate)).err().as_deref() != Some(message) {
                steps = candidate;
                continue 'descend;
            }
        }
        break;
    }
    steps
}

fn backtick_name(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    let rest = rest.strip_prefix('`')?;
    rest.split('`').next().map(str::to_owned)
}

fn describe_parse_failure(resource: &Value, type_name: &str, message: &str) -> Invalid {
    if let Some(field) = backtick_name(message, "missing field ") {
        // Removing any other required element changes this message too, so `locate`
        // cannot find it; the required-element table names it with its exact path.
        let mut issues = Vec::new();
        check_required_elements(resource, type_name, &mut issues);
        if issues.is_empty() {
            issues.push(Issue::error(
                IssueType::Required,
                format!("missing required element '{field}'"),
            ));
        }
        return Invalid::Content(issues);
    }
    let steps = locate(resource, message);
    let at = fhirpath(type_name, &steps);
    if let Some(field) = backtick_name(message, "unknown field ") {
        let at = if at.ends_with(&format!(".{field}")) {
            at
        } else {
            format!("{at}.{field}")
        };
        return Invalid::Structure(vec![
            Issue::error(
                IssueType::Structure,
                format!("unknown element '{field}' (not part of FHIR R4 {type_name})"),
            )
            .at(at),
        ]);
    }
    let detail = match message {
        "ParseBoolError" => "expected a JSON boolean".to_owned(),
        m if m.contains("ParseIntError") || m.contains("invalid digit") => {
            "expected a JSON number".to_owned()
        }
        m => m.to_owned(),
    };
    Invalid::Structure(vec![
        Issue::error(
            IssueType::Structure,
            format!("invalid value at {at}: {detail}"),
        )
        .at(at),
    ])
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first place where the input and fhirbolt's rendering of it differ, with a reason.
fn first_difference(input: &Value, output: &Value, path: &str) -> Option<(String, String)> {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let child = format!("{path}.{key}");
                match b.get(key) {
                    Some(other) => {
                        if let Some(diff) = first_difference(value, other, &child) {
                            return Some(diff);
                        }
                    }
                    None => {
                        return Some((child, empty_reason(value)));
                    }
                }
            }
            b.keys().find(|k| !a.contains_key(*k)).map(|k| {
                (
                    format!("{path}.{k}"),
                    "element was not expected here".to_owned(),
                )
            })
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Some((
                    path.to_owned(),
                    "arrays must not contain null or empty items".to_owned(),
                ));
            }
            a.iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}[{i}]")))
        }
        (a, b) if a == b => None,
        (a, b) if std::mem::discriminant(a) != std::mem::discriminant(b) => Some((
            path.to_owned(),
            format!(
                "wrong JSON type: expected {}, found {}",
                json_kind(b),
                json_kind(a)
            ),
        )),
        (_, _) => Some((
            path.to_owned(),
            "value is not valid for its FHIR type".to_owned(),
        )),
    }
}

fn empty_reason(value: &Value) -> String {
    match value {
        Value::Null => "null is not allowed in FHIR JSON; leave the element out".to_owned(),
        Value::Array(items) if items.is_empty() => {
            "empty arrays are not allowed in FHIR JSON; leave the element out".to_owned()
        }
        Value::Object(map) if map.is_empty() => {
            "empty objects are not allowed in FHIR JSON; leave the element out".to_owned()
        }
        Value::String(s) if s.is_empty() => {
            "empty strings are not allowed in FHIR JSON; leave the element out".to_owned()
        }
        _ => "element is empty or not valid here".to_owned(),
    }
}

/// Calls `visit` with each node at `segments` below `node` and its FHIRPath.
fn visit_path<'a>(
    node: &'a Value,
    segments: &[&str],
    path: String,
    visit: &mut dyn FnMut(&'a Value, String),
) {
    match node {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                visit_path(item, segments, format!("{path}[{i}]"), visit);
            }
        }
        _ => match segments.split_first() {
            None => visit(node, path),
            Some((first, rest)) => {
                if let Some(child) = node.get(*first) {
                    visit_path(child, rest, format!("{path}.{first}"), visit);
                }
            }
        },
    }
}

fn check_required_elements(resource: &Value, type_name: &str, issues: &mut Vec<Issue>) {
    for required in REQUIRED_ELEMENTS {
        let Some(rest) = required
            .strip_prefix(type_name)
            .and_then(|r| r.strip_prefix('.'))
        else {
            continue;
        };
        let segments: Vec<&str> = rest.split('.').collect();
        let Some((element, parents)) = segments.split_last() else {
            continue;
        };
        visit_path(
            resource,
            parents,
            type_name.to_owned(),
            &mut |parent, path| {
                let Some(map) = parent.as_object() else {
                    return;
                };
                let present = match element.strip_suffix("[x]") {
                    Some(stem) => map.keys().any(|k| {
                        k.strip_prefix(stem).is_some_and(|suffix| {
                            suffix.starts_with(|c: char| c.is_ascii_uppercase())
                        })
                    }),
                    None => map.contains_key(*element) || map.contains_key(&format!("_{element}")),
                };
                if !present {
                    issues.push(
                        Issue::error(
                            IssueType::Required,
                            format!("missing required element '{element}' ({required}, min 1)"),
                        )
                        .at(format!("{path}.{element}")),
                    );
                }
            },
        );
    }
}

fn check_required_bindings(resource: &Value, type_name: &str, issues: &mut Vec<Issue>) {
    for (binding, codes) in REQUIRED_BINDINGS {
        let Some(rest) = binding
            .strip_prefix(type_name)
            .and_then(|r| r.strip_prefix('.'))
        else {
            continue;
        };
        let segments: Vec<&str> = rest.split('.').collect();
        visit_path(
            resource,
            &segments,
            type_name.to_owned(),
            &mut |value, path| {
                if let Some(code) = value.as_str()
                    && !codes.contains(&code)
                {
                    issues.push(
                    Issue::error(
                        IssueType::CodeInvalid,
                        format!(
                            "'{code}' is not a valid code for {binding} (required binding: one of {})",
                            codes.join(", ")
                        ),
                    )
                    .at(path),
                );
                }
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issue(result: Result<ResourceType, Invalid>) -> (bool, Issue) {
        match result {
            Ok(t) => panic!("{t} was accepted"),
            Err(Invalid::Structure(i)) => (true, i[0].clone()),
            Err(Invalid::Content(i)) => (false, i[0].clone()),
        }
    }

    fn care_plan() -> Value {
        json!({"resourceType": "CarePlan", "status": "active", "intent": "plan",
               "subject": {"reference": "Patient/1"},
               "activity": [{"detail": {"kind": "Task", "status": "scheduled"}}]})
    }

    #[test]
    fn valid_resource_passes_and_keeps_decimal_precision() {
        assert_eq!(validate(&care_plan()), Ok(ResourceType::CarePlan));
        let text =
            r#"{"resourceType":"Location","position":{"longitude":18.0650,"latitude":59.30}}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(validate(&value), Ok(ResourceType::Location));
        assert_eq!(serde_json::to_string(&value).unwrap(), text);
    }

    #[test]
    fn unknown_nested_element_is_named_by_path() {
        let mut plan = care_plan();
        plan["activity"][0]["detail"]["colour"] = json!("red");
        let (structural, issue) = issue(validate(&plan));
        assert!(structural);
        assert_eq!(
            issue.expression.as_deref(),
            Some("CarePlan.activity[0].detail.colour")
        );
    }

    #[test]
    fn wrong_json_type_is_named_by_path() {
        for bad in [json!("yes"), json!("true"), json!(1)] {
            let patient = json!({"resourceType": "Patient", "active": bad});
            let (structural, issue) = issue(validate(&patient));
            assert!(structural, "{bad}");
            assert_eq!(issue.expression.as_deref(), Some("Patient.active"), "{bad}");
        }
    }

    #[test]
    fn null_and_empty_arrays_are_refused() {
        let (_, issue1) = issue(validate(&json!({"resourceType": "Patient", "name": []})));
        assert_eq!(issue1.expression.as_deref(), Some("Patient.name"));
        let (_, issue2) = issue(validate(
            &json!({"resourceType": "Patient", "gender": null}),
        ));
        assert_eq!(issue2.expression.as_deref(), Some("Patient.gender"));
    }

    #[test]
    fn missing_required_element_is_422_with_path() {
        let mut plan = care_plan();
        plan.as_object_mut().unwrap().remove("intent");
        let (structural, issue) = issue(validate(&plan));
        assert!(!structural);
        assert_eq!(issue.code, IssueType::Required);
        assert_eq!(issue.expression.as_deref(), Some("CarePlan.intent"));
    }

    #[test]
    fn nested_missing_required_element_is_named() {
        let mut plan = care_plan();
        plan["activity"][0]["detail"]
            .as_object_mut()
            .unwrap()
            .remove("status");
        let (structural, issue) = issue(validate(&plan));
        assert!(!structural);
        assert_eq!(
            issue.expression.as_deref(),
            Some("CarePlan.activity[0].detail.status")
        );
    }

    #[test]
    fn code_outside_required_value_set_is_422() {
        let mut plan = care_plan();
        plan["status"] = json!("aktiv");
        let (structural, issue) = issue(validate(&plan));
        assert!(!structural);
        assert_eq!(issue.code, IssueType::CodeInvalid);
        assert_eq!(issue.expression.as_deref(), Some("CarePlan.status"));
    }

    #[test]
    fn unsupported_type_is_refused() {
        let (_, issue) = issue(validate(&json!({"resourceType": "Observation"})));
        assert_eq!(issue.code, IssueType::NotSupported);
    }
}

/// The official R4 examples of the served types are valid, and stay byte-for-byte as
/// written (decimals included) through validation.
#[cfg(test)]
mod official_examples {
    use super::*;

    #[test]
    fn every_official_example_of_a_served_type_validates() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fhir-r4/examples"
        );
        let Ok(entries) = std::fs::read_dir(dir) else {
            eprintln!("SKIPPED: {dir} is absent; official examples not validated");
            return;
        };
        let mut checked = 0;
        let mut failures = Vec::new();
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let Ok(value) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if resource_type_of(&value).is_err() {
                continue;
            }
            checked += 1;
            if let Err(invalid) = validate(&value) {
                failures.push(format!(
                    "{}: {:?}",
                    entry.path().display(),
                    invalid.issues()
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {checked} failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
        assert!(checked > 100, "only {checked} examples checked");
    }
}
