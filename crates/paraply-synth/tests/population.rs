//! The generated population: deterministic, valid R4, internally consistent, and shaped
//! like DOMAIN.md §3–4 says.

use std::collections::{BTreeMap, BTreeSet};

use paraply_synth::{
    PatientResources, SynthOptions, generate, is_valid_personnummer, write_ndjson,
};
use serde_json::Value;

fn options(patients: u64, seed: u64) -> SynthOptions {
    SynthOptions {
        patients,
        seed,
        ..SynthOptions::default()
    }
}

fn patients(patients: u64, seed: u64) -> Vec<PatientResources> {
    generate(&options(patients, seed))
        .unwrap()
        .patients()
        .collect()
}

/// Every bundle of a run, serialized: what "byte for byte" compares.
fn serialized(options: &SynthOptions) -> String {
    let population = generate(options).unwrap();
    let mut out = String::new();
    for bundle in population.shared_bundles() {
        out.push_str(&bundle.to_string());
        out.push('\n');
    }
    for bundle in population.patient_bundles() {
        out.push_str(&bundle.bundle.to_string());
        out.push('\n');
    }
    out
}

fn key(resource: &Value) -> String {
    format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    )
}

/// Every `reference` string anywhere in a value.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("reference", Value::String(s)) => out.push(s.clone()),
                    _ => references(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

fn codes(concepts: &Value) -> Vec<(String, String)> {
    concepts
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["coding"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            (
                c["system"].as_str().unwrap_or_default().to_owned(),
                c["code"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let a = serialized(&options(40, 7));
    let b = serialized(&options(40, 7));
    assert_eq!(a, b);
    let c = serialized(&options(40, 8));
    assert_ne!(a, c);
}

#[test]
fn a_patient_does_not_depend_on_population_size_or_bundle_grouping() {
    let small = generate(&options(10, 3)).unwrap().patient(5);
    let large = generate(&options(500, 3)).unwrap().patient(5);
    assert_eq!(small, large);

    let one = serialized(&options(12, 3));
    let grouped = serialized(&SynthOptions {
        patients_per_bundle: 5,
        ..options(12, 3)
    });
    let entries = |text: &str| -> Vec<String> {
        text.lines()
            .flat_map(|line| {
                let bundle: Value = serde_json::from_str(line).unwrap();
                bundle["entry"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert_eq!(entries(&one), entries(&grouped));
}

#[test]
fn personnummer_are_valid_unique_and_match_gender_and_birth_date() {
    let mut seen = BTreeSet::new();
    for patient in patients(300, 11) {
        for resource in &patient.resources {
            let kind = resource["resourceType"].as_str().unwrap();
            if kind != "Patient" && kind != "RelatedPerson" {
                continue;
            }
            let pnr = resource["identifier"][0]["value"].as_str().unwrap();
            assert_eq!(
                resource["identifier"][0]["system"],
                "http://electronichealth.se/identifier/personnummer"
            );
            assert!(is_valid_personnummer(pnr), "{pnr}");
            assert!(seen.insert(pnr.to_owned()), "{pnr} used twice");
            let birth = resource["birthDate"].as_str().unwrap().replace('-', "");
            assert_eq!(&pnr[..8], birth);
            let male = (pnr.as_bytes()[10] - b'0') % 2 == 1;
            assert_eq!(resource["gender"], if male { "male" } else { "female" });
            if kind == "Patient" {
                let year: i32 = pnr[..4].parse().unwrap();
                assert!((1920..=2015).contains(&year));
            }
        }
    }
}

#[test]
fn patients_average_20_to_40_resources() {
    let all = patients(200, 1);
    let counts: Vec<usize> = all.iter().map(|p| p.resources.len()).collect();
    let total: usize = counts.iter().sum();
    let average = total as f64 / counts.len() as f64;
    eprintln!(
        "resources per patient: average {average:.1}, min {}, max {}",
        counts.iter().min().unwrap(),
        counts.iter().max().unwrap()
    );
    assert!((20.0..=40.0).contains(&average), "average {average}");
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &all {
        for r in &p.resources {
            *by_type
                .entry(r["resourceType"].as_str().unwrap())
                .or_default() += 1;
        }
    }
    eprintln!("per type over 200 patients: {by_type:?}");
}

#[test]
fn every_entry_is_a_put_to_its_own_type_and_id() {
    let population = generate(&SynthOptions {
        patients_per_bundle: 3,
        ..options(20, 5)
    })
    .unwrap();
    let bundles = population
        .shared_bundles()
        .into_iter()
        .chain(population.patient_bundles().map(|b| b.bundle));
    let mut seen = BTreeSet::new();
    for bundle in bundles {
        assert_eq!(bundle["resourceType"], "Bundle");
        assert_eq!(bundle["type"], "transaction");
        for entry in bundle["entry"].as_array().unwrap() {
            assert_eq!(entry["request"]["method"], "PUT");
            let url = entry["request"]["url"].as_str().unwrap();
            assert_eq!(url, key(&entry["resource"]));
            assert!(seen.insert(url.to_owned()), "{url} twice");
        }
    }
}

#[test]
fn every_reference_points_into_the_bundle_or_the_shared_resources() {
    let population = generate(&options(200, 2)).unwrap();
    let shared: BTreeSet<String> = population.shared_resources().iter().map(key).collect();
    for bundle in population.patient_bundles() {
        let entries = bundle.bundle["entry"].as_array().unwrap();
        let local: BTreeSet<String> = entries.iter().map(|e| key(&e["resource"])).collect();
        let mut refs = Vec::new();
        references(&bundle.bundle, &mut refs);
        for r in refs {
            assert!(
                local.contains(&r) || shared.contains(&r),
                "patient {}: dangling {r}",
                bundle.first_patient
            );
        }
    }
    let mut refs = Vec::new();
    for resource in population.shared_resources() {
        references(&resource, &mut refs);
    }
    for r in refs {
        assert!(shared.contains(&r), "shared: dangling {r}");
    }
}

#[test]
fn every_resource_is_valid_r4() {
    let population = generate(&options(50, 9)).unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    let all = population
        .shared_resources()
        .into_iter()
        .chain(population.patients().flat_map(|p| p.resources));
    for resource in all {
        checked += 1;
        if let Err(invalid) = paraply_fhir::validate(&resource) {
            failures.push(format!("{}: {:?}", key(&resource), invalid.issues()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} invalid:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}

/// DOMAIN.md §4: the invariants the server will enforce hold in the generated data.
#[test]
fn patients_keep_the_patientkontrakt_invariants() {
    const ROLE: &str = paraply_fhir::codes::FAST_KONTAKT_ROLE_SYSTEM;
    let population = generate(&options(300, 4)).unwrap();
    let shared: BTreeMap<String, Value> = population
        .shared_resources()
        .into_iter()
        .map(|r| (key(&r), r))
        .collect();
    let huvudman_type = |reference: &Value| -> String {
        let org = &shared[reference["reference"].as_str().unwrap()];
        codes(&org["type"])[0].1.clone()
    };
    let mut with_sip = 0;
    let mut with_doctor = 0;
    for patient in population.patients() {
        let by_key: BTreeMap<String, &Value> =
            patient.resources.iter().map(|r| (key(r), r)).collect();
        let resources = &patient.resources;
        let of_type = |t: &'static str| resources.iter().filter(move |r| r["resourceType"] == t);
        let fast: Vec<&Value> = of_type("CareTeam")
            .filter(|t| {
                codes(&t["category"]).contains(&(
                    paraply_fhir::codes::CARE_TEAM_CATEGORY_SYSTEM.into(),
                    "fast-kontakt".into(),
                ))
            })
            .collect();
        let roles: Vec<String> = fast
            .iter()
            .map(|t| {
                // I4: exactly one participant.
                assert_eq!(t["participant"].as_array().unwrap().len(), 1);
                let role = codes(&t["participant"][0]["role"]);
                assert_eq!(role[0].0, ROLE);
                role[0].1.clone()
            })
            .collect();
        let count = |code: &str| roles.iter().filter(|r| *r == code).count();
        assert!(count("2") <= 1, "I1");
        assert!(count("4") <= 1, "I3");
        assert!(
            (1..=9).contains(&(count("1") + count("3") + count("4"))),
            "I2"
        );
        with_doctor += count("2");

        // I5: one umbrella; every other plan is part of it.
        let plans: Vec<&Value> = of_type("CarePlan").collect();
        let umbrella: Vec<&&Value> = plans
            .iter()
            .filter(|p| codes(&p["category"])[0].1 == "patientkontrakt")
            .collect();
        assert_eq!(umbrella.len(), 1);
        let umbrella_key = key(umbrella[0]);
        for plan in &plans {
            if key(plan) != umbrella_key {
                assert_eq!(plan["partOf"][0]["reference"], umbrella_key.as_str());
            }
        }
        // I6–I8, I10 for the SIP.
        if let Some(sip) = plans.iter().find(|p| codes(&p["category"])[0].1 == "SIP") {
            with_sip += 1;
            let consent = by_key[sip["supportingInfo"][0]["reference"].as_str().unwrap()];
            assert_eq!(consent["status"], "active");
            let mut sides = [
                huvudman_type(&sip["author"]),
                huvudman_type(&sip["contributor"][0]),
            ];
            sides.sort();
            assert_eq!(sides, ["kommun".to_owned(), "region".to_owned()]);
            let task_owners: Vec<&Value> = sip["activity"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|a| by_key.get(a["reference"]["reference"].as_str().unwrap()))
                .filter(|r| r["resourceType"] == "Task")
                .map(|t| &t["owner"])
                .collect();
            assert!(task_owners.len() >= 2, "I8");
            let meetings = of_type("Appointment").filter(|a| !a["serviceType"].is_null());
            for meeting in meetings {
                let actors: Vec<&str> = meeting["participant"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["actor"]["reference"].as_str().unwrap())
                    .collect();
                assert!(actors.contains(&key(&patient.resources[0]).as_str()), "I10");
                assert_eq!(
                    meeting["supportingInformation"][0]["reference"],
                    key(sip).as_str()
                );
            }
        }
        for task in of_type("Task") {
            assert!(task["owner"].is_object(), "every Task has an owner");
        }
        // I9: booked agreed appointments have the patient's acceptance and its answer.
        for appointment in of_type("Appointment").filter(|a| a["status"] == "booked") {
            assert_eq!(appointment["participant"][0]["status"], "accepted");
            let answered = of_type("AppointmentResponse").any(|r| {
                r["appointment"]["reference"] == key(appointment).as_str()
                    && r["actor"] == appointment["participant"][0]["actor"]
            });
            assert!(answered, "I9 {}", key(appointment));
        }
    }
    // Rough shares: ~30 % SIP, ~60 % with a fast läkarkontakt.
    assert!((60..=120).contains(&with_sip), "{with_sip} SIPs of 300");
    assert!(
        (140..=220).contains(&with_doctor),
        "{with_doctor} doctors of 300"
    );
}

#[test]
fn ndjson_has_one_file_per_type_and_matches_the_bundles() {
    let dir = std::env::temp_dir().join(format!("paraply-synth-test-{}", std::process::id()));
    let opts = options(15, 6);
    let report = write_ndjson(&dir, &opts).unwrap();
    let population = generate(&opts).unwrap();
    let expected: Vec<String> = population
        .shared_resources()
        .into_iter()
        .chain(population.patients().flat_map(|p| p.resources))
        .map(|r| r.to_string())
        .collect();
    assert_eq!(report.resources, expected.len() as u64);
    assert_eq!(report.patients, 15);
    let mut lines = Vec::new();
    for (resource_type, count) in &report.files {
        let text = std::fs::read_to_string(dir.join(format!("{resource_type}.ndjson"))).unwrap();
        let file_lines: Vec<String> = text.lines().map(str::to_owned).collect();
        assert_eq!(file_lines.len() as u64, *count);
        for line in &file_lines {
            let value: Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["resourceType"], resource_type.as_str());
        }
        lines.extend(file_lines);
    }
    lines.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(lines, expected);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn too_many_patients_or_empty_bundles_are_refused() {
    assert!(generate(&options(paraply_synth::MAX_PATIENTS + 1, 1)).is_err());
    assert!(
        generate(&SynthOptions {
            patients_per_bundle: 0,
            ..options(1, 1)
        })
        .is_err()
    );
}
