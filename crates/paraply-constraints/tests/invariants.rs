//! The R4 invariants against the official examples and hand-made breaches.

use std::path::PathBuf;
use std::time::Instant;

use paraply_constraints::check_invariants;
use serde_json::{Value, json};

const SERVED: &[&str] = &[
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "RelatedPerson",
    "HealthcareService",
    "Location",
    "CarePlan",
    "CareTeam",
    "Goal",
    "Appointment",
    "AppointmentResponse",
    "Task",
    "Consent",
    "Encounter",
    "Communication",
    "CommunicationRequest",
    "DocumentReference",
    "AuditEvent",
    "Provenance",
    "Subscription",
    "Composition",
];

fn examples_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fhir-r4/examples");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: {} is absent", dir.display());
        None
    }
}

/// Every resource of a served type in the examples, including Bundle entries.
fn served_examples() -> Vec<(String, Value)> {
    let Some(dir) = examples_dir() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let resource: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        collect(&name, resource, &mut out);
    }
    out
}

fn collect(name: &str, resource: Value, out: &mut Vec<(String, Value)>) {
    let resource_type = resource["resourceType"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if resource_type == "Bundle" {
        for (i, entry) in resource["entry"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            if entry["resource"].is_object() {
                collect(
                    &format!("{name} entry[{i}]"),
                    entry["resource"].clone(),
                    out,
                );
            }
        }
    } else if SERVED.contains(&resource_type.as_str()) {
        out.push((name.to_owned(), resource));
    }
}

#[test]
fn every_official_example_of_a_served_type_keeps_the_invariants() {
    let examples = served_examples();
    let mut failures = Vec::new();
    for (name, resource) in &examples {
        let resource_type = resource["resourceType"].as_str().unwrap();
        for issue in check_invariants(resource_type, resource) {
            failures.push(format!(
                "{name}: {} at {}: {}",
                issue.key, issue.expression, issue.message
            ));
        }
    }
    println!("{} examples checked", examples.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_care_team_member_that_is_a_practitioner_role_acting_on_behalf_of_is_refused_with_ctm_1() {
    let team = json!({
        "resourceType": "CareTeam",
        "status": "active",
        "participant": [
            {"member": {"reference": "Practitioner/ok"}, "onBehalfOf": {"reference": "Organization/1"}},
            {"member": {"reference": "PractitionerRole/42"}, "onBehalfOf": {"reference": "Organization/1"}}
        ]
    });
    let issues = check_invariants("CareTeam", &team);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].key, "ctm-1");
    assert_eq!(issues[0].expression, "CareTeam.participant[1]");
}

#[test]
fn a_care_team_member_that_is_a_practitioner_role_without_on_behalf_of_is_accepted() {
    let team = json!({
        "resourceType": "CareTeam",
        "participant": [{"member": {"reference": "PractitionerRole/42"}}]
    });
    assert!(check_invariants("CareTeam", &team).is_empty());
}

#[test]
fn a_period_ending_before_it_starts_is_refused_with_per_1_wherever_it_is() {
    let plan = json!({
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/1"},
        "period": {"start": "2024-05-02", "end": "2024-05-01"},
        "identifier": [{"value": "x", "period": {"start": "2024-05-02T10:00:00+02:00", "end": "2024-05-02T08:30:00+01:00"}}]
    });
    let issues = check_invariants("CarePlan", &plan);
    let found: Vec<(&str, &str)> = issues
        .iter()
        .map(|i| (i.key.as_str(), i.expression.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            ("per-1", "CarePlan.identifier[0].period"),
            ("per-1", "CarePlan.period")
        ]
    );
}

#[test]
fn periods_at_different_precisions_or_across_zones_are_not_refused() {
    let plan = json!({
        "resourceType": "CarePlan",
        "period": {"start": "2024-05-02", "end": "2024-05-02T08:00:00Z"},
        "identifier": [{"period": {"start": "2024-05-02T10:00:00+02:00", "end": "2024-05-02T09:00:00+01:00"}}]
    });
    assert!(check_invariants("CarePlan", &plan).is_empty());
}

#[test]
fn an_extension_with_both_value_and_extensions_is_refused_with_ext_1() {
    let patient = json!({
        "resourceType": "Patient",
        "extension": [{"url": "http://example.org/x", "valueString": "a", "extension": [{"url": "y", "valueBoolean": true}]}]
    });
    let issues = check_invariants("Patient", &patient);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(
        (issues[0].key.as_str(), issues[0].expression.as_str()),
        ("ext-1", "Patient.extension[0]")
    );
}

#[test]
fn resource_level_invariants_are_checked() {
    let appointment = json!({"resourceType": "Appointment", "status": "booked", "start": "2024-05-02T10:00:00Z",
        "participant": [{"status": "accepted"}]});
    let keys: Vec<String> = check_invariants("Appointment", &appointment)
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(keys, vec!["app-2", "app-3", "app-1"]);

    let organization = json!({"resourceType": "Organization", "telecom": [{"system": "phone", "value": "1", "use": "home"}]});
    let keys: Vec<String> = check_invariants("Organization", &organization)
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(keys, vec!["org-1", "org-3"]);
}

#[test]
fn a_local_reference_must_name_a_contained_resource() {
    let patient = json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "org", "name": "A"}],
        "managingOrganization": {"reference": "#org"}, "generalPractitioner": [{"reference": "#missing"}]});
    let issues = check_invariants("Patient", &patient);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(
        (issues[0].key.as_str(), issues[0].expression.as_str()),
        ("ref-1", "Patient.generalPractitioner[0]")
    );
}

#[test]
fn checking_a_three_kilobyte_care_plan_takes_well_under_a_millisecond() {
    let mut activities = Vec::new();
    for i in 0..12 {
        activities.push(
            json!({"detail": {"status": "in-progress", "description": format!("Insats {i}"),
            "scheduledPeriod": {"start": "2024-01-01", "end": "2024-12-31"},
            "performer": [{"reference": format!("PractitionerRole/{i}")}]}}),
        );
    }
    let plan = json!({"resourceType": "CarePlan", "id": "sip-1", "meta": {"profile": ["http://example.org/sip"]},
        "status": "active", "intent": "plan", "title": "Samordnad individuell plan",
        "category": [{"coding": [{"system": "http://example.org/plan-type", "code": "SIP"}]}],
        "subject": {"reference": "Patient/1"}, "period": {"start": "2024-01-01"},
        "author": {"reference": "Organization/region"}, "contributor": [{"reference": "Organization/kommun"}],
        "careTeam": [{"reference": "CareTeam/t"}], "activity": activities});
    let size = serde_json::to_vec(&plan).unwrap().len();
    assert!(check_invariants("CarePlan", &plan).is_empty());
    let rounds = 2000;
    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(check_invariants("CarePlan", std::hint::black_box(&plan)));
    }
    let each = start.elapsed() / rounds;
    println!("check_invariants on a {size}-byte CarePlan: {each:?} each");
    // Unoptimised test builds are several times slower; the budget holds for release builds.
    if !cfg!(debug_assertions) {
        assert!(each.as_micros() < 1000, "{each:?}");
    }
}
