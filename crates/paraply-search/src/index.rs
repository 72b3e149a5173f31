//! Index rows: what a stored resource offers to searches, extracted on write in the same
//! transaction as the version they describe, and the definitions ([`param_definitions`])
//! that tell a database whose rows were extracted by an older registry what to re-extract.

use paraply_fhir::{ResourceType, canonical_system};
use serde_json::Value;

use crate::date::{DateRange, parse_date_range};
use crate::normalize::normalize;
use crate::registry::{ElementPath, Filter, ParamKind, SearchParamDef, params_for};

/// One searchable value of one parameter of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    /// The parameter name; `identifier:of-type` rows serve the `:of-type` modifier.
    pub param: &'static str,
    pub value: IndexValue,
}

/// The typed value an index row holds.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexValue {
    /// A code, identifier or contact value; `text` is the normalized display or
    /// CodeableConcept text, for `:text`.
    Token {
        system: Option<String>,
        code: Option<String>,
        text: Option<String>,
    },
    /// `normalized` is lower-cased without accents, for the default and `:contains`
    /// searches; `exact` as written, for `:exact`.
    String {
        normalized: String,
        exact: String,
    },
    /// A literal reference: type and id when the reference names a resource
    /// (`Patient/1`, also absolute), `url` as written without a version.
    Reference {
        target_type: Option<ResourceType>,
        target_id: Option<String>,
        url: String,
    },
    Date(DateRange),
    Uri(String),
    Quantity {
        value: f64,
        system: Option<String>,
        code: Option<String>,
    },
}

/// The index rows (and token conditions) that serve `identifier:of-type`.
pub const OF_TYPE_PARAM: &str = "identifier:of-type";

/// Every index row of `resource`, following the registry for its type.
pub fn index_rows(resource_type: ResourceType, resource: &Value) -> Vec<IndexRow> {
    rows_of(params_for(resource_type), resource)
}

/// The index rows of some parameters of `resource` only, [`OF_TYPE_PARAM`] among them if
/// asked: the access log asks a read resource for its `patient` and need not extract the
/// rest; a reindex re-extracts only the parameters whose definitions changed.
pub fn param_rows(resource_type: ResourceType, params: &[&str], resource: &Value) -> Vec<IndexRow> {
    let wanted = |name: &str| params.contains(&name);
    let defs = params_for(resource_type)
        .filter(|def| wanted(def.name) || (derives_of_type(def) && wanted(OF_TYPE_PARAM)));
    let mut rows = rows_of(defs, resource);
    // `identifier` was extracted for its `:of-type` rows, or the other way round.
    rows.retain(|row| wanted(row.param));
    rows
}

/// Bump when a change to this module changes the rows that an unchanged resource and
/// parameter definition give (how a kind of value is read or normalized): every parameter's
/// definition then changes with it, so every database is reindexed on its next start.
const EXTRACTION_VERSION: u32 = 1;

/// What the index rows of one parameter of one type are extracted by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamDefinition {
    /// The parameter name, as in [`IndexRow::param`].
    pub param: &'static str,
    /// A stable text of everything this parameter's rows depend on: the extraction version,
    /// the kind and every element path with its filters. Targets and the canonical URL are
    /// left out: no row depends on them, so changing them needs no reindex. Equal texts mean
    /// equal rows for every resource.
    pub definition: String,
}

/// The definitions of every parameter [`index_rows`] extracts for `resource_type`, in
/// registry order, including the derived [`OF_TYPE_PARAM`].
pub fn param_definitions(resource_type: ResourceType) -> Vec<ParamDefinition> {
    let mut out: Vec<ParamDefinition> = Vec::new();
    let mut add = |param: &'static str, definition: String| {
        // Two definitions of one name would both extract rows under it; both count.
        match out.iter_mut().find(|known| known.param == param) {
            Some(known) => {
                known.definition.push_str(" + ");
                known.definition.push_str(&definition);
            }
            None => out.push(ParamDefinition { param, definition }),
        }
    };
    for def in params_for(resource_type) {
        add(def.name, definition_of(def.kind.as_str(), def.paths));
        if derives_of_type(def) {
            add(OF_TYPE_PARAM, definition_of("of-type", def.paths));
        }
    }
    out
}

/// `1;token;participant.role | telecom[contact-system=phone]`: written out by hand, not with
/// `Debug`, so that the text changes only when the definition does.
fn definition_of(kind: &str, paths: &[ElementPath]) -> String {
    let paths: Vec<String> = paths
        .iter()
        .map(|path| {
            let mut text = path.steps.join(".");
            if let Some(choice) = path.choice {
                text.push_str(&format!("(as {choice})"));
            }
            if let Some(target) = path.resolve_is {
                text.push_str(&format!("(resolve is {target})"));
            }
            match path.filter {
                Some(Filter::ContactSystem(system)) => {
                    text.push_str(&format!("[contact-system={system}]"));
                }
                Some(Filter::CodingSystem(system)) => {
                    text.push_str(&format!("[coding-system={system}]"));
                }
                None => {}
            }
            text
        })
        .collect();
    format!("{EXTRACTION_VERSION};{kind};{}", paths.join(" | "))
}

/// Whether `def` also yields [`OF_TYPE_PARAM`] rows (see [`identifier_of_type`]).
fn derives_of_type(def: &SearchParamDef) -> bool {
    def.kind == ParamKind::Token && def.name == "identifier"
}

fn rows_of(defs: impl Iterator<Item = &'static SearchParamDef>, resource: &Value) -> Vec<IndexRow> {
    let mut rows = Vec::new();
    for def in defs {
        for path in def.paths {
            for node in nodes_at(resource, path) {
                extract(def, path, node, &mut rows);
            }
        }
    }
    rows
}

/// The values at `path` below `resource`, arrays flattened, choice elements resolved
/// (`deceased` finds `deceasedBoolean`; with `choice` only that one).
pub(crate) fn nodes_at<'a>(resource: &'a Value, path: &ElementPath) -> Vec<&'a Value> {
    let mut current = vec![resource];
    for (i, step) in path.steps.iter().enumerate() {
        let last = i + 1 == path.steps.len();
        let mut next = Vec::new();
        for node in current {
            let Some(map) = node.as_object() else {
                continue;
            };
            let found: Vec<&Value> = match (last, path.choice) {
                (true, Some(choice)) => map.get(&format!("{step}{choice}")).into_iter().collect(),
                _ => match map.get(*step) {
                    Some(value) => vec![value],
                    None => map
                        .iter()
                        .filter(|(key, _)| {
                            key.strip_prefix(step).is_some_and(|rest| {
                                rest.starts_with(|c: char| c.is_ascii_uppercase())
                            })
                        })
                        .map(|(_, value)| value)
                        .collect(),
                },
            };
            for value in found {
                match value {
                    Value::Array(items) => next.extend(items.iter()),
                    other => next.push(other),
                }
            }
        }
        current = next;
    }
    current
}

fn extract(
    def: &'static SearchParamDef,
    path: &ElementPath,
    node: &Value,
    rows: &mut Vec<IndexRow>,
) {
    let mut push = |value| {
        rows.push(IndexRow {
            param: def.name,
            value,
        })
    };
    match def.kind {
        ParamKind::Token => {
            for token in tokens(node, path.filter) {
                push(token);
            }
            if let Some(of_type) = identifier_of_type(def, node) {
                rows.push(of_type);
            }
        }
        ParamKind::String => {
            for text in strings(node) {
                push(IndexValue::String {
                    normalized: normalize(text),
                    exact: text.to_owned(),
                });
            }
        }
        ParamKind::Reference => {
            if let Some(reference) = reference(node)
                && match (path.resolve_is, &reference) {
                    (Some(required), IndexValue::Reference { target_type, .. }) => {
                        *target_type == Some(required)
                    }
                    _ => true,
                }
            {
                push(reference);
            }
        }
        ParamKind::Date => {
            if let Some(range) = date(node) {
                push(IndexValue::Date(range));
            }
        }
        ParamKind::Uri => {
            if let Some(uri) = node.as_str() {
                push(IndexValue::Uri(uri.to_owned()));
            }
        }
        ParamKind::Quantity => {
            if let Some(quantity) = quantity(node) {
                push(quantity);
            }
        }
    }
}

/// Contact point systems: a ContactPoint's `system` says phone or email, not a code system.
const CONTACT_SYSTEMS: &[&str] = &["phone", "fax", "email", "pager", "url", "sms", "other"];

fn text_of(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(normalize)
}

fn tokens(node: &Value, filter: Option<Filter>) -> Vec<IndexValue> {
    let str_of = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    match node {
        Value::String(code) => vec![IndexValue::Token {
            system: None,
            code: Some(code.clone()),
            text: None,
        }],
        Value::Bool(flag) => vec![IndexValue::Token {
            system: None,
            code: Some(flag.to_string()),
            text: None,
        }],
        Value::Object(map)
            if map.contains_key("coding")
                || (map.contains_key("text") && !map.contains_key("value")) =>
        {
            let concept_text = text_of(map.get("text"));
            let mut out: Vec<IndexValue> = map
                .get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|coding| match filter {
                    Some(Filter::CodingSystem(system)) => {
                        coding.get("system").and_then(Value::as_str) == Some(system)
                    }
                    _ => true,
                })
                .map(|coding| IndexValue::Token {
                    system: str_of(coding, "system").map(|s| canonical_system(&s).to_owned()),
                    code: str_of(coding, "code"),
                    text: text_of(coding.get("display")).or_else(|| concept_text.clone()),
                })
                .collect();
            if out.is_empty() && concept_text.is_some() && filter.is_none() {
                out.push(IndexValue::Token {
                    system: None,
                    code: None,
                    text: concept_text,
                });
            }
            out
        }
        Value::Object(map) if map.contains_key("value") => {
            let system = str_of(node, "system");
            let is_contact = system
                .as_deref()
                .is_some_and(|s| CONTACT_SYSTEMS.contains(&s));
            if let Some(Filter::ContactSystem(wanted)) = filter
                && system.as_deref() != Some(wanted)
            {
                return Vec::new();
            }
            let system = if is_contact {
                None
            } else {
                system.map(|s| canonical_system(&s).to_owned())
            };
            vec![IndexValue::Token {
                system,
                code: str_of(node, "value"),
                text: text_of(map.get("type").and_then(|t| t.get("text"))),
            }]
        }
        Value::Object(map) if map.contains_key("code") || map.contains_key("system") => {
            if let Some(Filter::CodingSystem(system)) = filter
                && map.get("system").and_then(Value::as_str) != Some(system)
            {
                return Vec::new();
            }
            vec![IndexValue::Token {
                system: str_of(node, "system").map(|s| canonical_system(&s).to_owned()),
                code: str_of(node, "code"),
                text: text_of(map.get("display")),
            }]
        }
        _ => Vec::new(),
    }
}

/// `identifier:of-type=type-system|type-code|value` is indexed as a token whose system is
/// the type's and whose code is `type-code|value`.
fn identifier_of_type(def: &SearchParamDef, node: &Value) -> Option<IndexRow> {
    if !derives_of_type(def) {
        return None;
    }
    let value = node.get("value")?.as_str()?;
    let coding = node.get("type")?.get("coding")?.as_array()?.first()?;
    let code = coding.get("code")?.as_str()?;
    Some(IndexRow {
        param: OF_TYPE_PARAM,
        value: IndexValue::Token {
            system: coding
                .get("system")
                .and_then(Value::as_str)
                .map(str::to_owned),
            code: Some(format!("{code}|{value}")),
            text: None,
        },
    })
}

fn strings(node: &Value) -> Vec<&str> {
    match node {
        Value::String(text) => vec![text.as_str()],
        Value::Object(map) => {
            let mut out = Vec::new();
            for key in [
                "text",
                "family",
                "given",
                "prefix",
                "suffix",
                "line",
                "city",
                "district",
                "state",
                "postalCode",
                "country",
            ] {
                match map.get(key) {
                    Some(Value::String(text)) => out.push(text.as_str()),
                    Some(Value::Array(items)) => out.extend(items.iter().filter_map(Value::as_str)),
                    _ => {}
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

/// Parses a literal reference (`Patient/1`, `Patient/1/_history/2`,
/// `https://host/fhir/Patient/1`) or a canonical URL.
pub(crate) fn reference(node: &Value) -> Option<IndexValue> {
    let text = match node {
        Value::String(canonical) => canonical.as_str(),
        Value::Object(map) => map.get("reference")?.as_str()?,
        _ => return None,
    };
    if text.starts_with('#') {
        return None;
    }
    let without_version = match text.find("/_history/") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut segments = without_version.rsplit('/');
    let id = segments.next();
    let type_name = segments.next();
    let parsed = match (type_name.and_then(|t| t.parse::<ResourceType>().ok()), id) {
        (Some(target_type), Some(id)) if id.parse::<paraply_fhir::ResourceId>().is_ok() => {
            (Some(target_type), Some(id.to_owned()))
        }
        _ => (None, None),
    };
    Some(IndexValue::Reference {
        target_type: parsed.0,
        target_id: parsed.1,
        url: without_version.to_owned(),
    })
}

fn date(node: &Value) -> Option<DateRange> {
    match node {
        Value::String(text) => parse_date_range(text),
        Value::Object(map) => {
            // Period: open ends reach to the beginning or end of time.
            let start = map
                .get("start")
                .and_then(Value::as_str)
                .and_then(parse_date_range);
            let end = map
                .get("end")
                .and_then(Value::as_str)
                .and_then(parse_date_range);
            if start.is_none() && end.is_none() {
                return None;
            }
            Some(DateRange {
                start: start.map_or(DateRange::MIN, |r| r.start),
                end: end.map_or(DateRange::MAX, |r| r.end),
            })
        }
        _ => None,
    }
}

fn quantity(node: &Value) -> Option<IndexValue> {
    let value = node.get("value")?;
    let value: f64 = value.to_string().parse().ok()?;
    Some(IndexValue::Quantity {
        value,
        system: node
            .get("system")
            .and_then(Value::as_str)
            .map(str::to_owned),
        code: node.get("code").and_then(Value::as_str).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_one_parameter_are_that_parameters_rows_of_all() {
        let team = serde_json::json!({"resourceType": "CareTeam", "status": "active",
            "subject": {"reference": "Patient/p1"},
            "participant": [{"member": {"reference": "PractitionerRole/r1"}}]});
        let all: Vec<IndexRow> = index_rows(ResourceType::CareTeam, &team)
            .into_iter()
            .filter(|row| row.param == "patient")
            .collect();
        assert!(!all.is_empty());
        assert_eq!(param_rows(ResourceType::CareTeam, &["patient"], &team), all);
    }

    #[test]
    fn of_type_rows_are_extracted_alone_or_with_identifier() {
        let patient = json!({"resourceType": "Patient", "identifier": [{"type": {"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "system": "s", "value": "42"}],
            "gender": "male"});
        let params_of = |params: &[&str]| -> Vec<&str> {
            param_rows(ResourceType::Patient, params, &patient)
                .iter()
                .map(|row| row.param)
                .collect()
        };
        assert_eq!(params_of(&[OF_TYPE_PARAM]), [OF_TYPE_PARAM]);
        assert_eq!(params_of(&["identifier"]), ["identifier"]);
        assert_eq!(
            params_of(&["gender", "identifier", OF_TYPE_PARAM]),
            ["gender", "identifier", OF_TYPE_PARAM]
        );
    }

    #[test]
    fn every_extracted_parameter_has_one_definition() {
        for &resource_type in ResourceType::ALL {
            let defined: Vec<&str> = param_definitions(resource_type)
                .iter()
                .map(|d| d.param)
                .collect();
            let mut unique = defined.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), defined.len(), "{resource_type}");
            for def in params_for(resource_type) {
                assert!(defined.contains(&def.name), "{resource_type}.{}", def.name);
            }
        }
        let patient = param_definitions(ResourceType::Patient);
        let of_type = patient.iter().find(|d| d.param == OF_TYPE_PARAM);
        assert_eq!(
            of_type.map(|d| d.definition.as_str()),
            Some("1;of-type;identifier")
        );
        let phone = patient.iter().find(|d| d.param == "phone");
        assert_eq!(
            phone.map(|d| d.definition.as_str()),
            Some("1;token;telecom[contact-system=phone]")
        );
    }

    #[test]
    fn definitions_change_with_what_rows_depend_on_and_only_that() {
        let def = crate::registry::CARE_PLAN_HUVUDMAN;
        let text = |def: &SearchParamDef| definition_of(def.kind.as_str(), def.paths);
        let base = text(&def);
        assert_eq!(base, "1;reference;author | contributor");
        let changed_path = SearchParamDef {
            paths: &[ElementPath {
                steps: &["author"],
                resolve_is: Some(ResourceType::Organization),
                filter: None,
                choice: None,
            }],
            ..def
        };
        let changed_kind = SearchParamDef {
            kind: ParamKind::Uri,
            ..def
        };
        let other_targets = SearchParamDef {
            targets: &[ResourceType::Organization, ResourceType::Patient],
            url: "https://example.org/other",
            ..def
        };
        assert_ne!(text(&changed_path), base);
        assert_ne!(text(&changed_kind), base);
        assert_eq!(text(&other_targets), base, "targets do not change rows");
    }
    use paraply_fhir::PERSONNUMMER;
    use serde_json::json;

    fn rows(resource: Value, param: &str) -> Vec<IndexValue> {
        let t: ResourceType = resource["resourceType"].as_str().unwrap().parse().unwrap();
        index_rows(t, &resource)
            .into_iter()
            .filter(|r| r.param == param)
            .map(|r| r.value)
            .collect()
    }

    #[test]
    fn identifiers_become_tokens_with_canonical_systems() {
        let patient = json!({"resourceType": "Patient", "identifier": [
            {"system": "urn:oid:1.2.752.129.2.1.3.1", "value": "191212121212"}]});
        assert_eq!(
            rows(patient, "identifier"),
            vec![IndexValue::Token {
                system: Some(PERSONNUMMER.into()),
                code: Some("191212121212".into()),
                text: None
            }]
        );
    }

    #[test]
    fn codeable_concepts_index_every_coding_and_the_text() {
        let team = json!({"resourceType": "CareTeam", "category": [{"coding": [
            {"system": "s", "code": "fast-kontakt", "display": "Fast Kontakt"}]}]});
        assert_eq!(
            rows(team, "category"),
            vec![IndexValue::Token {
                system: Some("s".into()),
                code: Some("fast-kontakt".into()),
                text: Some("fast kontakt".into())
            }]
        );
    }

    #[test]
    fn references_respect_resolve_is() {
        let appointment = json!({"resourceType": "Appointment", "status": "booked", "participant": [
            {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
            {"actor": {"reference": "PractitionerRole/r1"}, "status": "accepted"}]});
        let patients = rows(appointment.clone(), "patient");
        assert_eq!(patients.len(), 1);
        assert_eq!(rows(appointment, "actor").len(), 2);
    }

    #[test]
    fn absolute_and_versioned_references_name_type_and_id() {
        let Some(IndexValue::Reference {
            target_type,
            target_id,
            url,
        }) = reference(&json!({"reference": "https://x.se/fhir/Patient/p1/_history/3"}))
        else {
            panic!("a reference");
        };
        assert_eq!(
            (target_type, target_id.as_deref()),
            (Some(ResourceType::Patient), Some("p1"))
        );
        assert_eq!(url, "https://x.se/fhir/Patient/p1");
    }

    #[test]
    fn names_index_each_part_without_accents() {
        let patient = json!({"resourceType": "Patient", "name": [{"family": "Ågren", "given": ["Åsa", "Lena"]}]});
        let names = rows(patient, "name");
        assert_eq!(names.len(), 3);
        assert_eq!(
            names[0],
            IndexValue::String {
                normalized: "agren".into(),
                exact: "Ågren".into()
            }
        );
    }

    #[test]
    fn periods_and_choice_elements_become_date_ranges() {
        let plan = json!({"resourceType": "CarePlan", "period": {"start": "2026-01-01"}});
        let [IndexValue::Date(range)] = rows(plan, "date")[..] else {
            panic!("one date")
        };
        assert_eq!(range.end, DateRange::MAX);
        let patient = json!({"resourceType": "Patient", "deceasedDateTime": "2020-02-02"});
        assert_eq!(rows(patient, "death-date").len(), 1);
    }

    #[test]
    fn phone_and_email_split_telecom() {
        let patient = json!({"resourceType": "Patient", "telecom": [
            {"system": "phone", "value": "+46 8 123"}, {"system": "email", "value": "a@b.se"}]});
        assert_eq!(rows(patient.clone(), "phone").len(), 1);
        assert_eq!(
            rows(patient, "email"),
            vec![IndexValue::Token {
                system: None,
                code: Some("a@b.se".into()),
                text: None
            }]
        );
    }

    #[test]
    fn huvudman_type_reads_only_its_code_system() {
        let org = json!({"resourceType": "Organization", "type": [
            {"coding": [{"system": paraply_fhir::codes::HUVUDMAN_TYPE_SYSTEM, "code": "kommun"}]},
            {"coding": [{"system": "other", "code": "prov"}]}]});
        assert_eq!(rows(org.clone(), "huvudman-type").len(), 1);
        assert_eq!(rows(org, "type").len(), 2);
    }

    #[test]
    fn identifier_type_serves_of_type() {
        let patient = json!({"resourceType": "Patient", "identifier": [{"type": {"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "system": "s", "value": "42"}]});
        let of_type = rows(patient, "identifier:of-type");
        assert_eq!(
            of_type,
            vec![IndexValue::Token {
                system: Some("http://terminology.hl7.org/CodeSystem/v2-0203".into()),
                code: Some("MR|42".into()),
                text: None
            }]
        );
    }
}
