//! Index rows: what a stored resource offers to searches, extracted on write.

use paraply_fhir::{ResourceType, canonical_system};
use serde_json::Value;

use crate::registry::{ParamKind, params_for};

/// One searchable value of one parameter of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRow {
    pub param: &'static str,
    pub value: IndexValue,
}

/// The typed value an index row holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexValue {
    Token {
        system: Option<String>,
        code: String,
    },
}

/// Every index row of `resource`, following the registry for its type.
pub fn index_rows(resource_type: ResourceType, resource: &Value) -> Vec<IndexRow> {
    let mut rows = Vec::new();
    for def in params_for(resource_type) {
        for element in def.elements {
            match def.kind {
                ParamKind::Token => {
                    for identifier in values_of(resource.get(*element)) {
                        if let Some(code) = identifier.get("value").and_then(Value::as_str) {
                            let system = identifier
                                .get("system")
                                .and_then(Value::as_str)
                                .map(|s| canonical_system(s).to_owned());
                            rows.push(IndexRow {
                                param: def.name,
                                value: IndexValue::Token {
                                    system,
                                    code: code.to_owned(),
                                },
                            });
                        }
                    }
                }
            }
        }
    }
    rows
}

/// An element's values whether it repeats (array) or not (object).
fn values_of(element: Option<&Value>) -> impl Iterator<Item = &Value> {
    let (many, one) = match element {
        Some(Value::Array(items)) => (items.as_slice(), None),
        Some(other) => (&[][..], Some(other)),
        None => (&[][..], None),
    };
    many.iter().chain(one)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identifiers_become_token_rows_with_canonical_systems() {
        let patient = json!({"resourceType": "Patient", "identifier": [
            {"system": "urn:oid:1.2.752.129.2.1.3.1", "value": "191212121212"},
            {"value": "no-system"},
            {"system": "x"}
        ]});
        let rows = index_rows(ResourceType::Patient, &patient);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].value,
            IndexValue::Token {
                system: Some(paraply_fhir::PERSONNUMMER.into()),
                code: "191212121212".into()
            }
        );
    }

    #[test]
    fn document_master_identifier_is_indexed() {
        let doc = json!({"resourceType": "DocumentReference",
            "masterIdentifier": {"system": "s", "value": "m"}});
        assert_eq!(index_rows(ResourceType::DocumentReference, &doc).len(), 1);
    }
}
