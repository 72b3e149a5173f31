//! The embedded conformance resources, read once into what the checker needs: each resource
//! profile's differential as typed rules, and the codes of Paraply's code systems and value
//! sets.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::embedded::EMBEDDED;

pub(crate) struct Catalog {
    /// Paraply's profiles of resource types (`kind: resource`), in file-name order.
    pub profiles: Vec<Profile>,
    /// Every StructureDefinition canonical, profiles and extensions alike.
    pub definitions: HashSet<String>,
    /// Code system canonical → its codes (nested concepts included).
    pub code_systems: HashMap<String, HashSet<String>>,
    /// Value set canonical → what it includes.
    pub value_sets: HashMap<String, Vec<Include>>,
}

/// One `ValueSet.compose.include`: a whole code system, or the listed codes of it.
pub(crate) struct Include {
    pub system: String,
    pub codes: Option<HashSet<String>>,
}

pub(crate) struct Profile {
    pub url: String,
    pub name: String,
    pub resource_type: String,
    /// The differential as rules, or why it could not be read; a resource claiming an
    /// unreadable profile gets that as an issue rather than passing unchecked.
    pub rules: Result<Vec<Rule>, String>,
}

/// What a differential element demands of the values at its path.
#[derive(Debug)]
pub(crate) struct Rule {
    /// Element names below the resource type: `["participant", "member"]`.
    pub path: Vec<String>,
    /// A slice counts and checks only the repetitions that belong to it.
    pub slice: Option<Slice>,
    pub min: Option<u64>,
    pub max: Option<Max>,
    pub fixed: Option<Value>,
    pub pattern: Option<Value>,
    /// A `required` binding to one of Paraply's value sets.
    pub required_value_set: Option<String>,
    /// Resource types a reference may point at (from `targetProfile`); empty: any.
    pub target_types: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Slice {
    pub name: String,
    pub membership: Membership,
}

/// How a repetition is recognised as belonging to a slice (the slicing's discriminator).
#[derive(Debug)]
pub(crate) enum Membership {
    /// `pattern`/`value` on `$this`: the repetition matches the slice's pattern or fixed value.
    Pattern(Value),
    /// `value` on `url`: an extension with this URL.
    ExtensionUrl(String),
    /// `type` on `<element>.resolve()`: the repetition's `<element>` refers to one of `types`.
    ReferenceTo { element: String, types: Vec<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Max {
    Unbounded,
    Count(u64),
}

pub(crate) fn catalog() -> &'static Catalog {
    static CATALOG: LazyLock<Catalog> = LazyLock::new(|| Catalog::read(EMBEDDED));
    &CATALOG
}

impl Catalog {
    pub(crate) fn read(files: &[(&str, &str, &str)]) -> Catalog {
        let resources: Vec<Value> = files
            .iter()
            .filter_map(|(_, _, json)| serde_json::from_str(json).ok())
            .collect();
        let mut catalog = Catalog {
            profiles: Vec::new(),
            definitions: HashSet::new(),
            code_systems: HashMap::new(),
            value_sets: HashMap::new(),
        };
        for resource in &resources {
            let url = str_at(resource, "url").unwrap_or_default().to_owned();
            match str_at(resource, "resourceType") {
                Some("CodeSystem") => {
                    let mut codes = HashSet::new();
                    collect_codes(resource.get("concept"), &mut codes);
                    catalog.code_systems.insert(url, codes);
                }
                Some("ValueSet") => {
                    catalog.value_sets.insert(url, includes(resource));
                }
                Some("StructureDefinition") => {
                    catalog.definitions.insert(url);
                }
                _ => {}
            }
        }
        // Profiles last: their bindings are resolved against the value sets above.
        for resource in &resources {
            if str_at(resource, "resourceType") == Some("StructureDefinition")
                && str_at(resource, "kind") == Some("resource")
            {
                let profile = Profile {
                    url: str_at(resource, "url").unwrap_or_default().to_owned(),
                    name: str_at(resource, "name").unwrap_or_default().to_owned(),
                    resource_type: str_at(resource, "type").unwrap_or_default().to_owned(),
                    rules: compile_differential(resource, &catalog.value_sets),
                };
                catalog.profiles.push(profile);
            }
        }
        catalog
    }
}

fn str_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn collect_codes(concepts: Option<&Value>, codes: &mut HashSet<String>) {
    for concept in concepts.and_then(Value::as_array).into_iter().flatten() {
        if let Some(code) = str_at(concept, "code") {
            codes.insert(code.to_owned());
        }
        collect_codes(concept.get("concept"), codes);
    }
}

fn includes(value_set: &Value) -> Vec<Include> {
    value_set
        .pointer("/compose/include")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|include| {
            let system = str_at(include, "system")?.to_owned();
            let codes = include.get("concept").and_then(Value::as_array).map(|c| {
                c.iter()
                    .filter_map(|concept| str_at(concept, "code").map(str::to_owned))
                    .collect()
            });
            Some(Include { system, codes })
        })
        .collect()
}

/// A canonical without its `|version`.
pub(crate) fn unversioned(canonical: &str) -> &str {
    canonical.split('|').next().unwrap_or(canonical)
}

/// Keys of a differential element the checker understands; anything else (constraints,
/// contentReference, …) makes the profile unreadable rather than silently half-checked.
const UNDERSTOOD_KEYS: &[&str] = &[
    "id",
    "path",
    "short",
    "definition",
    "comment",
    "requirements",
    "mustSupport",
    "min",
    "max",
    "binding",
    "type",
    "slicing",
    "sliceName",
];

/// One differential element, its `id` split into steps.
struct Element<'a> {
    id: &'a str,
    /// Element names below the resource type.
    steps: Vec<String>,
    /// Where a slice name sits in the id: on the last step (a slice), on an earlier step
    /// (an element inside a slice), or nowhere.
    slice_at: Option<(usize, String)>,
    json: &'a Map<String, Value>,
}

fn compile_differential(
    definition: &Value,
    value_sets: &HashMap<String, Vec<Include>>,
) -> Result<Vec<Rule>, String> {
    let resource_type = str_at(definition, "type").ok_or("no type")?;
    let elements = definition
        .pointer("/differential/element")
        .and_then(Value::as_array)
        .ok_or("no differential")?;
    let elements: Vec<Element> = elements
        .iter()
        .map(|e| element(resource_type, e))
        .collect::<Result<_, _>>()?;

    let mut rules = Vec::new();
    for element in &elements {
        if element.steps.is_empty() {
            continue; // the root element: only text
        }
        match &element.slice_at {
            None => rules.push(plain_rule(element, value_sets)?),
            Some((at, name)) if *at + 1 == element.steps.len() => {
                rules.push(slice_rule(element, name, &elements, value_sets)?);
            }
            Some(_) => {
                // Inside a slice: only the element a `type` discriminator reads is
                // understood, and it was used for the slice's membership.
                if !is_discriminator_child(element, &elements) {
                    return Err(format!("{}: constraints inside a slice", element.id));
                }
            }
        }
    }
    Ok(rules)
}

fn element<'a>(resource_type: &str, json: &'a Value) -> Result<Element<'a>, String> {
    let json = json.as_object().ok_or("an element is not an object")?;
    let id = json
        .get("id")
        .and_then(Value::as_str)
        .ok_or("an element without id")?;
    for key in json.keys() {
        if !(UNDERSTOOD_KEYS.contains(&key.as_str())
            || key.starts_with("fixed")
            || key.starts_with("pattern"))
        {
            return Err(format!("{id}: {key} is not understood"));
        }
    }
    let mut segments = id.split('.');
    if segments.next() != Some(resource_type) {
        return Err(format!("{id}: not an element of {resource_type}"));
    }
    let mut steps = Vec::new();
    let mut slice_at = None;
    for (index, segment) in segments.enumerate() {
        let (name, slice) = match segment.split_once(':') {
            Some((name, slice)) => (name, Some(slice)),
            None => (segment, None),
        };
        if name.ends_with("[x]") {
            return Err(format!("{id}: choice elements are not understood"));
        }
        if let Some(slice) = slice {
            if slice_at.is_some() {
                return Err(format!("{id}: slices within slices"));
            }
            slice_at = Some((index, slice.to_owned()));
        }
        steps.push(name.to_owned());
    }
    Ok(Element {
        id,
        steps,
        slice_at,
        json,
    })
}

fn plain_rule(
    element: &Element,
    value_sets: &HashMap<String, Vec<Include>>,
) -> Result<Rule, String> {
    let mut rule = base_rule(element, value_sets)?;
    rule.target_types = reference_targets(element)?;
    Ok(rule)
}

/// Cardinality, fixed, pattern and binding: what every kind of element may carry.
fn base_rule(
    element: &Element,
    value_sets: &HashMap<String, Vec<Include>>,
) -> Result<Rule, String> {
    let json = element.json;
    let max = match json.get("max").and_then(Value::as_str) {
        None => None,
        Some("*") => Some(Max::Unbounded),
        Some(n) => {
            Some(Max::Count(n.parse().map_err(|_| {
                format!("{}: max {n} is not a number", element.id)
            })?))
        }
    };
    let value_of = |prefix: &str| {
        json.iter()
            .find(|(key, _)| key.starts_with(prefix))
            .map(|(_, value)| value.clone())
    };
    let required_value_set = match json.get("binding") {
        Some(binding) if str_at(binding, "strength") == Some("required") => {
            let value_set = unversioned(str_at(binding, "valueSet").unwrap_or_default());
            if !value_sets.contains_key(value_set) {
                return Err(format!(
                    "{}: required binding to {value_set}, which is not one of Paraply's value sets",
                    element.id
                ));
            }
            Some(value_set.to_owned())
        }
        _ => None,
    };
    Ok(Rule {
        path: element.steps.clone(),
        slice: None,
        min: json.get("min").and_then(Value::as_u64),
        max,
        fixed: value_of("fixed"),
        pattern: value_of("pattern"),
        required_value_set,
        target_types: Vec::new(),
    })
}

/// The resource types of a `Reference` type's `targetProfile`s (core profiles only).
fn reference_targets(element: &Element) -> Result<Vec<String>, String> {
    let Some(types) = element.json.get("type").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let mut targets = Vec::new();
    for ty in types {
        if str_at(ty, "code") != Some("Reference") {
            return Err(format!(
                "{}: only Reference types are understood",
                element.id
            ));
        }
        for target in ty
            .get("targetProfile")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let target = target.as_str().unwrap_or_default();
            let Some(name) = target.strip_prefix("http://hl7.org/fhir/StructureDefinition/") else {
                return Err(format!(
                    "{}: target profile {target} is not a core type",
                    element.id
                ));
            };
            targets.push(name.to_owned());
        }
    }
    Ok(targets)
}

/// The `(type, path)` of the slicing of the element with this id, if it is sliced.
fn discriminator<'a>(elements: &'a [Element], sliced_id: &str) -> Option<(&'a str, &'a str)> {
    let sliced = elements.iter().find(|e| e.id == sliced_id)?;
    let discriminators = sliced
        .json
        .get("slicing")?
        .get("discriminator")?
        .as_array()?;
    match discriminators.as_slice() {
        [only] => Some((str_at(only, "type")?, str_at(only, "path")?)),
        _ => None,
    }
}

fn slice_rule(
    element: &Element,
    name: &str,
    elements: &[Element],
    value_sets: &HashMap<String, Vec<Include>>,
) -> Result<Rule, String> {
    let sliced_id = element
        .id
        .strip_suffix(&format!(":{name}"))
        .ok_or_else(|| format!("{}: slice name", element.id))?;
    let (kind, path) = discriminator(elements, sliced_id).ok_or_else(|| {
        format!(
            "{}: {sliced_id} has no slicing with one discriminator",
            element.id
        )
    })?;
    let mut rule = base_rule(element, value_sets)?;
    let membership = match (kind, path) {
        ("pattern" | "value", "$this") => {
            rule.target_types = reference_targets(element)?;
            Membership::Pattern(
                rule.pattern
                    .take()
                    .or_else(|| rule.fixed.take())
                    .ok_or_else(|| format!("{}: no pattern to tell the slice by", element.id))?,
            )
        }
        ("value", "url") => {
            let url = element
                .json
                .get("type")
                .and_then(|t| t.get(0))
                .and_then(|t| t.get("profile"))
                .and_then(|p| p.get(0))
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{}: an extension slice without profile", element.id))?;
            Membership::ExtensionUrl(url.to_owned())
        }
        ("type", path) => {
            let child_name = path
                .strip_suffix(".resolve()")
                .ok_or_else(|| format!("{}: type discriminator {path}", element.id))?;
            let child_id = format!("{}.{child_name}", element.id);
            let child = elements
                .iter()
                .find(|e| e.id == child_id)
                .ok_or_else(|| format!("{}: no element {child_id}", element.id))?;
            Membership::ReferenceTo {
                element: child_name.to_owned(),
                types: reference_targets(child)?,
            }
        }
        (kind, path) => {
            return Err(format!("{}: discriminator {kind} on {path}", element.id));
        }
    };
    rule.slice = Some(Slice {
        name: name.to_owned(),
        membership,
    });
    Ok(rule)
}

fn is_discriminator_child(element: &Element, elements: &[Element]) -> bool {
    let Some((slice_id, child)) = element.id.rsplit_once('.') else {
        return false;
    };
    let Some((sliced_id, _)) = slice_id.rsplit_once(':') else {
        return false;
    };
    matches!(
        discriminator(elements, sliced_id),
        Some(("type", path)) if path.strip_suffix(".resolve()") == Some(child)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_differential_is_understood() {
        let catalog = catalog();
        assert_eq!(catalog.profiles.len(), 11);
        for profile in &catalog.profiles {
            assert!(
                profile.rules.is_ok(),
                "{}: {:?}",
                profile.url,
                profile.rules
            );
        }
    }

    #[test]
    fn every_value_set_code_is_defined_by_its_code_system() {
        let catalog = catalog();
        for (url, includes) in &catalog.value_sets {
            for include in includes {
                let defined = catalog.code_systems.get(&include.system);
                let defined =
                    defined.unwrap_or_else(|| panic!("{url}: {} is not held", include.system));
                for code in include.codes.iter().flatten() {
                    assert!(defined.contains(code), "{url}: {code}");
                }
            }
        }
    }

    #[test]
    fn an_unsupported_differential_makes_the_profile_uncheckable_not_silently_lax() {
        let definition = r#"{
            "resourceType": "StructureDefinition", "url": "https://paraply.se/fhir/StructureDefinition/x",
            "name": "X", "kind": "resource", "type": "Task",
            "differential": {"element": [{"id": "Task.owner", "path": "Task.owner",
                "constraint": [{"key": "x-1", "severity": "error", "human": "h", "expression": "true"}]}]}
        }"#;
        let catalog = Catalog::read(&[("StructureDefinition", "x", definition)]);
        let rules = &catalog.profiles[0].rules;
        assert!(
            rules.as_ref().is_err_and(|why| why.contains("constraint")),
            "{rules:?}"
        );
    }
}
