//! Checking one resource against the rules of the Paraply profiles it claims.

use serde_json::Value;

use crate::CANONICAL_BASE;
use crate::catalog::{Catalog, Include, Max, Membership, Profile, Rule, unversioned};

/// One way a resource falls short of a profile it claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileIssue {
    /// The claimed profile's canonical URL, as the resource names it.
    pub profile: String,
    /// FHIRPath of the offending or missing element: `CareTeam.participant[0].member`.
    pub expression: String,
    /// What is wrong, in English, naming the profile.
    pub message: String,
}

pub(crate) fn check_profiles(catalog: &Catalog, resource: &Value) -> Vec<ProfileIssue> {
    let Some(resource_type) = resource.get("resourceType").and_then(Value::as_str) else {
        return Vec::new();
    };
    let claims = resource
        .pointer("/meta/profile")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut issues = Vec::new();
    for (index, claim) in claims.iter().enumerate() {
        let Some(claim) = claim.as_str() else {
            continue;
        };
        let url = unversioned(claim);
        if !url.starts_with(&format!("{CANONICAL_BASE}/")) {
            continue;
        }
        let issue = |message: String| ProfileIssue {
            profile: claim.to_owned(),
            expression: format!("{resource_type}.meta.profile[{index}]"),
            message,
        };
        match catalog.profiles.iter().find(|p| p.url == url) {
            Some(profile) if profile.resource_type != resource_type => issues.push(issue(format!(
                "Profile {} ({url}) is a profile of {}, not of {resource_type}",
                profile.name, profile.resource_type
            ))),
            Some(profile) => match &profile.rules {
                Ok(rules) => {
                    let mut checker = Checker {
                        catalog,
                        profile,
                        claim,
                        resource_type,
                        issues: &mut issues,
                    };
                    for rule in rules {
                        checker.check_rule(resource, rule);
                    }
                }
                Err(why) => issues.push(issue(format!(
                    "Profile {} ({url}) cannot be checked: {why}",
                    profile.name
                ))),
            },
            None if catalog.definitions.contains(url) => issues.push(issue(format!(
                "{url} is a Paraply extension, not a profile of {resource_type}"
            ))),
            None => issues.push(issue(format!("{url} is not a Paraply profile"))),
        }
    }
    issues
}

struct Checker<'a> {
    catalog: &'a Catalog,
    profile: &'a Profile,
    claim: &'a str,
    resource_type: &'a str,
    issues: &'a mut Vec<ProfileIssue>,
}

/// A value found in the resource with the FHIRPath that reaches it.
struct Found<'v> {
    expression: String,
    value: &'v Value,
}

impl Checker<'_> {
    fn report(&mut self, expression: String, message: String) {
        self.issues.push(ProfileIssue {
            profile: self.claim.to_owned(),
            expression,
            message: format!("Profile {}: {message}", self.profile.name),
        });
    }

    fn check_rule(&mut self, resource: &Value, rule: &Rule) {
        let Some((name, parent_steps)) = rule.path.split_last() else {
            return;
        };
        let mut parents = vec![Found {
            expression: self.resource_type.to_owned(),
            value: resource,
        }];
        for step in parent_steps {
            parents = parents.iter().flat_map(|p| children(p, step)).collect();
        }
        let element = match &rule.slice {
            Some(slice) => format!("{name}:{}", slice.name),
            None => name.clone(),
        };
        for parent in &parents {
            let all = children(parent, name);
            let present = all.len().max(primitive_extension_count(parent.value, name));
            let (items, count) = match &rule.slice {
                Some(slice) => {
                    let members: Vec<Found> = all
                        .into_iter()
                        .filter(|f| belongs(&slice.membership, f.value))
                        .collect();
                    let count = members.len();
                    (members, count)
                }
                None => (all, present),
            };
            let here = format!("{}.{name}", parent.expression);
            if let Some(min) = rule.min
                && (count as u64) < min
            {
                self.report(
                    here.clone(),
                    format!("{element} needs at least {min}, found {count}"),
                );
            }
            if let Some(Max::Count(max)) = rule.max
                && count as u64 > max
            {
                let message = if max == 0 {
                    format!("{element} is not allowed")
                } else {
                    format!("{element} allows at most {max}, found {count}")
                };
                self.report(here, message);
            }
            for item in &items {
                self.check_value(rule, &element, item);
            }
        }
    }

    fn check_value(&mut self, rule: &Rule, element: &str, item: &Found) {
        if let Some(fixed) = &rule.fixed
            && item.value != fixed
        {
            self.report(
                item.expression.clone(),
                format!("{element} must be exactly {fixed}"),
            );
        }
        if let Some(pattern) = &rule.pattern
            && !matches_pattern(item.value, pattern)
        {
            self.report(
                item.expression.clone(),
                format!("{element} must match the pattern {pattern}"),
            );
        }
        if let Some(value_set) = &rule.required_value_set {
            let includes = self.catalog.value_sets.get(value_set);
            let includes = includes.map(Vec::as_slice).unwrap_or_default();
            if !in_value_set(self.catalog, includes, item.value) {
                self.report(
                    item.expression.clone(),
                    format!(
                        "{element} must have a code from the value set {value_set} (required binding)"
                    ),
                );
            }
        }
        if !rule.target_types.is_empty()
            && let Some(target) = reference_type(item.value)
            && !rule.target_types.iter().any(|t| t == target)
        {
            self.report(
                item.expression.clone(),
                format!(
                    "{element} refers to a {target}, but may refer only to {}",
                    rule.target_types.join(" or ")
                ),
            );
        }
    }
}

/// The values of `name` in `parent`, one per repetition.
fn children<'v>(parent: &Found<'v>, name: &str) -> Vec<Found<'v>> {
    match parent.value.get(name) {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(index, value)| Found {
                expression: format!("{}.{name}[{index}]", parent.expression),
                value,
            })
            .collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(value) => vec![Found {
            expression: format!("{}.{name}", parent.expression),
            value,
        }],
    }
}

/// A primitive present only as `_name` (an extension without a value) still counts as
/// present for cardinality.
fn primitive_extension_count(parent: &Value, name: &str) -> usize {
    match parent.get(format!("_{name}")) {
        Some(Value::Array(items)) => items.len(),
        Some(Value::Null) | None => 0,
        Some(_) => 1,
    }
}

fn belongs(membership: &Membership, value: &Value) -> bool {
    match membership {
        Membership::Pattern(pattern) => matches_pattern(value, pattern),
        Membership::ExtensionUrl(url) => value.get("url").and_then(Value::as_str) == Some(url),
        Membership::ReferenceTo { element, types } => value
            .get(element)
            .and_then(reference_type)
            .is_some_and(|target| types.iter().any(|t| t == target)),
    }
}

/// FHIR pattern semantics: every property of the pattern is in the value; a pattern array's
/// items each match some item of the value's array; primitives are equal.
fn matches_pattern(value: &Value, pattern: &Value) -> bool {
    match (value, pattern) {
        (Value::Object(value), Value::Object(pattern)) => pattern
            .iter()
            .all(|(key, p)| value.get(key).is_some_and(|v| matches_pattern(v, p))),
        (Value::Array(values), Value::Array(patterns)) => patterns
            .iter()
            .all(|p| values.iter().any(|v| matches_pattern(v, p))),
        (value, pattern) => value == pattern,
    }
}

/// Whether a `code`, `Coding` or `CodeableConcept` (any of its codings) is in the value set.
fn in_value_set(catalog: &Catalog, includes: &[Include], value: &Value) -> bool {
    let includes_code = |system: Option<&str>, code: &str| {
        includes.iter().any(|include| {
            system.is_none_or(|s| s == include.system)
                && match &include.codes {
                    Some(codes) => codes.contains(code),
                    None => catalog
                        .code_systems
                        .get(&include.system)
                        .is_some_and(|codes| codes.contains(code)),
                }
        })
    };
    let coding_in = |coding: &Value| match (
        coding.get("system").and_then(Value::as_str),
        coding.get("code").and_then(Value::as_str),
    ) {
        (Some(system), Some(code)) => includes_code(Some(system), code),
        _ => false,
    };
    match value {
        Value::String(code) => includes_code(None, code),
        Value::Object(map) => match map.get("coding") {
            Some(Value::Array(codings)) => codings.iter().any(coding_in),
            _ => coding_in(value),
        },
        _ => false,
    }
}

/// The resource type a literal reference names (`Patient/1`, `https://x/fhir/Patient/1`,
/// `Patient/1/_history/2`); `None` for contained (`#x`), `urn:uuid:` and logical references,
/// which cannot be told here.
fn reference_type(reference: &Value) -> Option<&str> {
    let literal = reference.get("reference")?.as_str()?;
    if literal.starts_with('#') || literal.starts_with("urn:") {
        return None;
    }
    let literal = literal.split("/_history/").next().unwrap_or(literal);
    let mut segments = literal.rsplit('/');
    let _id = segments.next()?;
    let resource_type = segments.next()?;
    resource_type
        .starts_with(|c: char| c.is_ascii_uppercase())
        .then_some(resource_type)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::check_profiles;

    const B: &str = "https://paraply.se/fhir";

    fn fast_kontakt() -> Value {
        json!({
            "resourceType": "CareTeam",
            "meta": {"profile": [format!("{B}/StructureDefinition/fast-kontakt")]},
            "status": "active",
            "category": [{"coding": [{"system": format!("{B}/CodeSystem/care-team-category"), "code": "fast-kontakt"}]}],
            "subject": {"reference": "Patient/p1"},
            "participant": [{
                "role": [{"coding": [{"system": "urn:oid:1.2.752.129.5.1.69", "code": "2"}]}],
                "member": {"reference": "PractitionerRole/r1"}
            }]
        })
    }

    fn expressions(resource: &Value) -> Vec<String> {
        check_profiles(resource)
            .into_iter()
            .map(|issue| issue.expression)
            .collect()
    }

    #[test]
    fn a_conforming_fast_kontakt_has_no_issues() {
        assert_eq!(check_profiles(&fast_kontakt()), vec![]);
    }

    #[test]
    fn a_missing_required_element_is_named_with_the_profile() {
        let mut team = fast_kontakt();
        team.as_object_mut().unwrap().remove("subject");
        let issues = check_profiles(&team);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].expression, "CareTeam.subject");
        assert!(
            issues[0].message.contains("FastKontakt"),
            "{}",
            issues[0].message
        );
        assert!(
            issues[0].message.contains("at least 1"),
            "{}",
            issues[0].message
        );
        assert_eq!(
            issues[0].profile,
            format!("{B}/StructureDefinition/fast-kontakt")
        );
    }

    #[test]
    fn every_repetition_of_a_parent_needs_its_required_child() {
        let mut team = fast_kontakt();
        team["participant"].as_array_mut().unwrap().push(
            json!({"role": [{"coding": [{"system": "urn:oid:1.2.752.129.5.1.69", "code": "1"}]}]}),
        );
        let found = expressions(&team);
        assert!(
            found.contains(&"CareTeam.participant[1].member".to_owned()),
            "{found:?}"
        );
        assert!(
            !found.contains(&"CareTeam.participant[0].member".to_owned()),
            "{found:?}"
        );
        // The profile also allows only one participant.
        assert!(
            found.contains(&"CareTeam.participant".to_owned()),
            "{found:?}"
        );
    }

    #[test]
    fn a_forbidden_element_is_an_issue() {
        let mut team = fast_kontakt();
        team["participant"][0]["onBehalfOf"] = json!({"reference": "Organization/o1"});
        assert_eq!(
            expressions(&team),
            vec!["CareTeam.participant[0].onBehalfOf"]
        );
    }

    #[test]
    fn a_value_other_than_the_fixed_one_is_an_issue() {
        let task = json!({
            "resourceType": "Task",
            "meta": {"profile": [format!("{B}/StructureDefinition/insats")]},
            "status": "requested",
            "intent": "order",
            "basedOn": [{"reference": "CarePlan/sip-1"}],
            "for": {"reference": "Patient/p1"},
            "owner": {"reference": "Organization/kommun-1"}
        });
        let issues = check_profiles(&task);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].expression, "Task.intent");
        assert!(
            issues[0].message.contains("\"plan\""),
            "{}",
            issues[0].message
        );
    }

    #[test]
    fn a_pattern_allows_more_codings_but_not_another_code() {
        let mut team = fast_kontakt();
        team["category"][0]["coding"]
            .as_array_mut()
            .unwrap()
            .push(json!({"system": "http://loinc.org", "code": "LA27976-2"}));
        assert_eq!(check_profiles(&team), vec![]);

        team["category"][0]["coding"][0]["code"] = json!("sip-team");
        assert_eq!(expressions(&team), vec!["CareTeam.category[0]"]);
    }

    #[test]
    fn a_slice_needs_one_matching_repetition_among_others() {
        let sip = |categories: Value| {
            json!({
                "resourceType": "CarePlan",
                "meta": {"profile": [format!("{B}/StructureDefinition/sip")]},
                "status": "draft",
                "intent": "plan",
                "partOf": [{"reference": "CarePlan/pk-1"}],
                "category": categories,
                "subject": {"reference": "Patient/p1"},
                "author": {"reference": "Organization/region-1"}
            })
        };
        let other = json!({"coding": [{"system": "http://example.org/local", "code": "x"}]});
        let sip_code =
            json!({"coding": [{"system": format!("{B}/CodeSystem/plan-type"), "code": "SIP"}]});
        assert_eq!(
            check_profiles(&sip(json!([other.clone(), sip_code]))),
            vec![]
        );

        let issues = check_profiles(&sip(json!([other])));
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].expression, "CarePlan.category");
        assert!(
            issues[0].message.contains("category:sip"),
            "{}",
            issues[0].message
        );
    }

    #[test]
    fn a_code_outside_the_required_value_set_is_an_issue() {
        let mut team = fast_kontakt();
        team["participant"][0]["role"][0]["coding"][0]["code"] = json!("5");
        assert_eq!(expressions(&team), vec!["CareTeam.participant[0].role[0]"]);

        let mut team = fast_kontakt();
        team["participant"][0]["role"][0]["coding"][0]["system"] = json!("urn:oid:1.2.3");
        assert_eq!(expressions(&team), vec!["CareTeam.participant[0].role[0]"]);
    }

    #[test]
    fn a_linked_plan_cannot_be_a_sip() {
        let plan = json!({
            "resourceType": "CarePlan",
            "meta": {"profile": [format!("{B}/StructureDefinition/linked-plan")]},
            "status": "active",
            "intent": "plan",
            "partOf": [{"reference": "CarePlan/pk-1"}],
            "category": [{"coding": [{"system": format!("{B}/CodeSystem/plan-type"), "code": "SIP"}]}],
            "subject": {"reference": "Patient/p1"}
        });
        let issues = check_profiles(&plan);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].expression, "CarePlan.category[0]");
        assert!(
            issues[0].message.contains("linked-plan-type"),
            "{}",
            issues[0].message
        );
    }

    #[test]
    fn a_reference_to_a_type_the_profile_excludes_is_an_issue() {
        let mut team = fast_kontakt();
        team["participant"][0]["member"] = json!({"reference": "Practitioner/x"});
        let issues = check_profiles(&team);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].expression, "CareTeam.participant[0].member");
        assert!(
            issues[0].message.contains("PractitionerRole"),
            "{}",
            issues[0].message
        );

        // A transaction Bundle's urn:uuid cannot be told apart here: left to the server.
        team["participant"][0]["member"] =
            json!({"reference": "urn:uuid:0e0f5c3a-1b1e-4a8e-9d4e-6f1d2c3b4a59"});
        assert_eq!(check_profiles(&team), vec![]);
        team["participant"][0]["member"] =
            json!({"reference": "https://other.example/fhir/PractitionerRole/r9/_history/2"});
        assert_eq!(check_profiles(&team), vec![]);
    }

    #[test]
    fn an_agreed_appointment_needs_the_patient_as_participant() {
        let appointment = |actor: &str| {
            json!({
                "resourceType": "Appointment",
                "meta": {"profile": [format!("{B}/StructureDefinition/agreed-appointment")]},
                "status": "proposed",
                "participant": [
                    {"actor": {"reference": "PractitionerRole/r1"}, "status": "accepted"},
                    {"actor": {"reference": actor}, "status": "needs-action"}
                ]
            })
        };
        assert_eq!(check_profiles(&appointment("Patient/p1")), vec![]);
        let issues = check_profiles(&appointment("RelatedPerson/rp1"));
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].expression, "Appointment.participant");
        assert!(
            issues[0].message.contains("participant:patient"),
            "{}",
            issues[0].message
        );
    }

    #[test]
    fn an_extension_slice_limits_its_repetitions() {
        let mut team = fast_kontakt();
        let route = json!({"url": format!("{B}/StructureDefinition/contact-route"), "valueString": "Ring växeln"});
        team["extension"] = json!([route.clone(), route]);
        let issues = check_profiles(&team);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert!(
            issues[0]
                .message
                .contains("extension:contactRoute allows at most 1"),
            "{}",
            issues[0].message
        );
    }

    #[test]
    fn an_unknown_paraply_profile_is_an_issue_and_foreign_profiles_are_ignored() {
        let mut team = fast_kontakt();
        team["meta"]["profile"] = json!([
            "http://hl7.org/fhir/StructureDefinition/CareTeam",
            format!("{B}/StructureDefinition/no-such-profile"),
            format!("{B}/StructureDefinition/contact-route"),
            format!("{B}/StructureDefinition/sip"),
        ]);
        let issues = check_profiles(&team);
        let found: Vec<&str> = issues.iter().map(|i| i.expression.as_str()).collect();
        assert_eq!(
            found,
            [
                "CareTeam.meta.profile[1]",
                "CareTeam.meta.profile[2]",
                "CareTeam.meta.profile[3]"
            ]
        );
        assert!(
            issues[0].message.contains("not a Paraply profile"),
            "{}",
            issues[0].message
        );
        assert!(
            issues[1].message.contains("extension"),
            "{}",
            issues[1].message
        );
        assert!(
            issues[2]
                .message
                .contains("profile of CarePlan, not of CareTeam"),
            "{}",
            issues[2].message
        );
    }

    #[test]
    fn a_versioned_claim_is_checked_as_the_profile() {
        let mut team = fast_kontakt();
        team["meta"]["profile"] = json!([format!("{B}/StructureDefinition/fast-kontakt|0.1.0")]);
        team.as_object_mut().unwrap().remove("subject");
        assert_eq!(expressions(&team), vec!["CareTeam.subject"]);
    }

    #[test]
    fn claiming_a_profile_that_cannot_be_read_is_an_issue_not_a_pass() {
        let definition = r#"{
            "resourceType": "StructureDefinition", "url": "https://paraply.se/fhir/StructureDefinition/x",
            "name": "X", "kind": "resource", "type": "Task",
            "differential": {"element": [{"id": "Task.input.value[x]", "path": "Task.input.value[x]", "min": 1}]}
        }"#;
        let catalog = crate::catalog::Catalog::read(&[("StructureDefinition", "x", definition)]);
        let task = json!({"resourceType": "Task", "meta": {"profile": [format!("{B}/StructureDefinition/x")]}});
        let issues = super::check_profiles(&catalog, &task);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].expression, "Task.meta.profile[0]");
        assert!(
            issues[0].message.contains("cannot be checked"),
            "{}",
            issues[0].message
        );
    }

    #[test]
    fn a_resource_without_claims_has_no_issues() {
        let mut team = fast_kontakt();
        team.as_object_mut().unwrap().remove("meta");
        team.as_object_mut().unwrap().remove("subject");
        assert_eq!(check_profiles(&team), vec![]);
    }
}
