//! Property tests: arbitrary JSON never panics the validator, and every refusal carries
//! issues (which the HTTP edge turns into an OperationOutcome).
//!
//! 256 cases by default so CI stays fast; the issue's target is 100 000:
//! `PARAPLY_PROPTEST_CASES=100000 cargo test -p paraply-fhir --test properties`.

use paraply_fhir::{Invalid, ResourceType, validate};
use paraply_proptest_support::{JsonShape, arbitrary_key, config};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Element names fhirbolt knows on many types, so generated objects often get past the
/// first unknown-element check and reach deeper parsing.
const ELEMENT_NAMES: &[&str] = &[
    "id",
    "meta",
    "status",
    "subject",
    "category",
    "coding",
    "system",
    "code",
    "display",
    "reference",
    "participant",
    "member",
    "role",
    "identifier",
    "value",
    "period",
    "start",
    "end",
    "text",
    "div",
    "extension",
    "url",
    "valueString",
    "_given",
    "given",
    "name",
    "birthDate",
    "active",
    "partOf",
    "provision",
    "type",
    "actor",
    "data",
    "contained",
    "resourceType",
    "",
];

fn arbitrary_json() -> impl Strategy<Value = Value> {
    paraply_proptest_support::arbitrary_json(
        JsonShape {
            keys: ELEMENT_NAMES,
            depth: 4,
            size: 64,
            branch: 6,
        },
        prop_oneof![Just(String::new()), "[0-9]{4}-[0-9]{2}-[0-9]{2}"].boxed(),
    )
}

/// A served type, a near miss, garbage, a non-string or nothing.
fn resource_type_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        4 => proptest::sample::select(ResourceType::ALL)
            .prop_map(|t| Some(Value::String(t.as_str().to_owned()))),
        1 => Just(Some(Value::String("patient".to_owned()))),
        1 => Just(Some(Value::String("Bundle".to_owned()))),
        1 => any::<String>().prop_map(|s| Some(Value::String(s))),
        1 => arbitrary_json().prop_map(Some),
        1 => Just(None),
    ]
}

/// Mostly objects with a `resourceType`, sometimes any JSON value at all.
fn candidate_resource() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (resource_type_value(), proptest::collection::vec((arbitrary_key(ELEMENT_NAMES), arbitrary_json()), 0..8))
            .prop_map(|(resource_type, elements)| {
                let mut object: Map<String, Value> = elements.into_iter().collect();
                if let Some(resource_type) = resource_type {
                    object.insert("resourceType".to_owned(), resource_type);
                }
                Value::Object(object)
            }),
        1 => arbitrary_json(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_json_is_accepted_or_refused_with_issues(resource in candidate_resource()) {
        match validate(&resource) {
            Ok(resource_type) => {
                let named = resource.get("resourceType").and_then(Value::as_str);
                prop_assert_eq!(named, Some(resource_type.as_str()));
            }
            Err(refusal) => {
                prop_assert!(matches!(refusal, Invalid::Structure(_) | Invalid::Content(_)));
                prop_assert!(!refusal.issues().is_empty(), "a refusal without issues: {refusal:?}");
                for issue in refusal.issues() {
                    prop_assert!(!issue.diagnostics.is_empty(), "an issue without diagnostics: {issue:?}");
                }
            }
        }
    }
}
