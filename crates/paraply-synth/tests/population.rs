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
        for resource in entries.iter().map(|e| &e["resource"]) {
            // `#id` points at a resource contained in the same resource (a plan's patient groups).
            let contained: BTreeSet<String> = resource["contained"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| format!("#{}", c["id"].as_str().unwrap()))
                .collect();
            let mut refs = Vec::new();
            references(resource, &mut refs);
            for r in refs {
                assert!(
                    local.contains(&r) || shared.contains(&r) || contained.contains(&r),
                    "patient {}: dangling {r}",
                    bundle.first_patient
                );
            }
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

/// The patientkontrakt rules of the server (DOMAIN.md §4, I1–I10 as the server reads them),
/// written out over plain JSON so a generator mistake cannot hide behind the server's own
/// code: every generated patient must load into a server that enforces them.
mod rules {
    use std::collections::BTreeMap;

    use paraply_fhir::codes::{
        BOOK, CARE_TEAM_CATEGORY_SYSTEM, CONSENT_ACTION_SYSTEM, FAST_KONTAKT,
        FAST_KONTAKT_ROLE_SYSTEM, HUVUDMAN_TYPE_SYSTEM, PATIENTKONTRAKT, PLAN_CATEGORY_SYSTEM,
        PLAN_TYPE_SYSTEM, SERVICE_TYPE_SYSTEM, SIP_MOTE, SIP_TEAM, profile,
    };
    use serde_json::Value;

    use super::{codes, key};

    /// Resources by `Type/id`: the shared world plus one patient's own.
    pub struct Resources<'a> {
        pub shared: &'a BTreeMap<String, Value>,
        pub own: BTreeMap<String, &'a Value>,
    }

    fn has_code(concepts: &Value, system: &str, code: &str) -> bool {
        codes(concepts).contains(&(system.to_owned(), code.to_owned()))
    }

    fn claims(resource: &Value, url: &str) -> bool {
        resource["meta"]["profile"]
            .as_array()
            .is_some_and(|p| p.iter().any(|u| u == url))
    }

    fn reference(value: &Value) -> &str {
        value["reference"].as_str().unwrap_or_default()
    }

    fn active(resource: &Value) -> bool {
        resource["status"] == "active"
    }

    fn is_umbrella(plan: &Value) -> bool {
        has_code(&plan["category"], PLAN_CATEGORY_SYSTEM, PATIENTKONTRAKT)
    }

    fn plan_type(plan: &Value) -> Option<String> {
        codes(&plan["category"])
            .into_iter()
            .find(|(system, _)| system == PLAN_TYPE_SYSTEM)
            .map(|(_, code)| code)
    }

    impl Resources<'_> {
        fn get(&self, reference: &str) -> Option<&Value> {
            self.own
                .get(reference)
                .copied()
                .or_else(|| self.shared.get(reference))
        }

        fn of_type<'s>(&'s self, t: &'s str) -> impl Iterator<Item = &'s Value> + 's {
            self.own
                .values()
                .copied()
                .filter(move |r| r["resourceType"] == t)
        }

        /// The huvudman (its type and `Organization/id`) a reference resolves to.
        fn huvudman(&self, reference: &str) -> Option<(String, String)> {
            let mut at = reference.to_owned();
            // partOf chains are short; the bound only stops a cycle.
            for _ in 0..10 {
                let resource = self.get(&at)?;
                match resource["resourceType"].as_str()? {
                    "PractitionerRole" => {
                        at = super::rules::reference(&resource["organization"]).to_owned()
                    }
                    "Organization" => {
                        if let Some((_, code)) = codes(&resource["type"])
                            .into_iter()
                            .find(|(system, _)| system == HUVUDMAN_TYPE_SYSTEM)
                        {
                            return Some((code, at));
                        }
                        at = super::rules::reference(&resource["partOf"]).to_owned();
                    }
                    _ => return None,
                }
            }
            None
        }

        fn huvudman_type(&self, reference: &str) -> Option<String> {
            self.huvudman(reference).map(|(t, _)| t)
        }

        /// Active närstående consents naming `related`, with whether they allow booking.
        fn narstaende_consent(&self, related: &str) -> Option<bool> {
            self.of_type("Consent")
                .filter(|c| active(c) && c["provision"]["type"] == "permit")
                .filter(|c| {
                    c["provision"]["actor"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|a| reference(&a["reference"]) == related)
                })
                .map(|c| {
                    c["provision"]["action"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|a| {
                            has_code(&Value::Array(vec![a.clone()]), CONSENT_ACTION_SYSTEM, BOOK)
                        })
                })
                .reduce(|a, b| a || b)
        }
    }

    /// Every breach of I1–I10, the ctm-1 invariant and the profile claims in one patient's
    /// resources, as readable lines; empty when the patient is fine.
    pub fn breaches(patient_key: &str, r: &Resources<'_>) -> Vec<String> {
        let mut out = Vec::new();
        let mut fail = |rule: &str, resource: &Value, what: &str| {
            out.push(format!("{patient_key} {rule} {}: {what}", key(resource)));
        };

        // FastKontakt CareTeams: I1–I4 and ctm-1.
        let mut active_roles = Vec::new();
        for team in r.of_type("CareTeam") {
            for participant in team["participant"].as_array().into_iter().flatten() {
                if !participant["onBehalfOf"].is_null()
                    && !reference(&participant["member"]).starts_with("Practitioner/")
                {
                    fail(
                        "ctm-1",
                        team,
                        "onBehalfOf with a member that is not a Practitioner",
                    );
                }
            }
            if has_code(&team["category"], CARE_TEAM_CATEGORY_SYSTEM, SIP_TEAM)
                && !claims(team, profile::SIP_TEAM)
            {
                fail("profile", team, "SIP team without the sip-team claim");
            }
            if !has_code(&team["category"], CARE_TEAM_CATEGORY_SYSTEM, FAST_KONTAKT) {
                continue;
            }
            if !claims(team, profile::FAST_KONTAKT) {
                fail("profile", team, "fast-kontakt without its claim");
            }
            let participants = team["participant"].as_array().cloned().unwrap_or_default();
            if reference(&team["subject"]) != patient_key || participants.len() != 1 {
                fail("I4", team, "needs the subject and exactly one participant");
                continue;
            }
            let role = codes(&participants[0]["role"])
                .into_iter()
                .find(|(system, _)| system == FAST_KONTAKT_ROLE_SYSTEM);
            if !reference(&participants[0]["member"]).starts_with("PractitionerRole/") {
                fail("I4", team, "member is not a PractitionerRole");
            }
            match role {
                Some((_, code)) if ["1", "2", "3", "4"].contains(&code.as_str()) => {
                    if active(team) {
                        active_roles.push(code);
                    }
                }
                _ => fail("I4", team, "no role from 1.2.752.129.5.1.69"),
            }
        }
        let count = |codes: &[&str]| {
            active_roles
                .iter()
                .filter(|c| codes.contains(&c.as_str()))
                .count()
        };
        let patient = r.own[patient_key];
        if count(&["2"]) > 1 {
            fail("I1", patient, "more than one fast läkarkontakt");
        }
        if count(&["1", "4"]) > 9 {
            fail("I2", patient, "more than nine fasta vårdkontakter");
        }
        if count(&["4"]) > 1 {
            fail("I3", patient, "more than one coordinating contact");
        }

        // Plans: I5–I8.
        let plans: Vec<&Value> = r
            .of_type("CarePlan")
            .filter(|p| is_umbrella(p) || plan_type(p).is_some())
            .collect();
        let umbrellas: Vec<&Value> = plans
            .iter()
            .copied()
            .filter(|p| is_umbrella(p) && active(p))
            .collect();
        if umbrellas.len() != 1 {
            fail("I5", patient, "needs exactly one active umbrella");
        }
        for plan in &plans {
            if reference(&plan["subject"]) != patient_key {
                fail("I5", plan, "plan of another subject");
            }
            if is_umbrella(plan) {
                if !claims(plan, profile::PATIENTKONTRAKT) {
                    fail("profile", plan, "umbrella without its claim");
                }
                if !plan["partOf"].is_null() {
                    fail("I5", plan, "umbrella with partOf");
                }
                continue;
            }
            let is_sip = plan_type(plan).as_deref() == Some("SIP");
            let url = if is_sip {
                profile::SIP
            } else {
                profile::LINKED_PLAN
            };
            if !claims(plan, url) {
                fail("profile", plan, "plan without its claim");
            }
            if ["draft", "active", "on-hold"].contains(&plan["status"].as_str().unwrap_or_default())
            {
                let parent = plan["partOf"]
                    .as_array()
                    .and_then(|p| p.first())
                    .and_then(|p| r.get(reference(p)));
                if !parent.is_some_and(|p| is_umbrella(p) && active(p)) {
                    fail("I5", plan, "partOf does not name the active umbrella");
                }
            }
            if !is_sip || plan["status"] == "entered-in-error" {
                continue;
            }
            let sip_key = key(plan);
            // I6.
            let consented = r.of_type("Consent").any(|c| {
                active(c)
                    && c["provision"]["type"] == "permit"
                    && reference(&c["patient"]) == patient_key
                    && c["provision"]["data"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|d| reference(&d["reference"]) == sip_key)
            });
            if active(plan) && !consented {
                fail(
                    "I6",
                    plan,
                    "active SIP without an active SIP consent naming it",
                );
            }
            // I7.
            let sides: Vec<(String, String)> = std::iter::once(&plan["author"])
                .chain(plan["contributor"].as_array().into_iter().flatten())
                .filter_map(|a| r.huvudman(reference(a)))
                .collect();
            let has = |t: &str| sides.iter().any(|(kind, _)| kind == t);
            let author = r.huvudman_type(reference(&plan["author"]));
            if !has("region")
                || !has("kommun")
                || !matches!(author.as_deref(), Some("region" | "kommun"))
            {
                fail(
                    "I7",
                    plan,
                    "needs region + kommun with one of them as author",
                );
            }
            // I8.
            if active(plan) {
                for (_, huvudman) in sides.iter().filter(|(t, _)| t == "region" || t == "kommun") {
                    let carried = r.of_type("Task").any(|t| {
                        !["cancelled", "rejected", "entered-in-error"]
                            .contains(&t["status"].as_str().unwrap_or_default())
                            && t["basedOn"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|b| reference(b) == sip_key)
                            && r.huvudman(reference(&t["owner"]))
                                .is_some_and(|(_, h)| &h == huvudman)
                    });
                    if !carried {
                        fail("I8", plan, &format!("no insats owned by {huvudman}"));
                    }
                }
            }
        }
        for task in r.of_type("Task") {
            let insats = task["basedOn"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|b| reference(b).starts_with("CarePlan/"));
            if insats && !claims(task, profile::INSATS) {
                fail("profile", task, "insats without its claim");
            }
            if insats && task["owner"].is_null() {
                fail("I8", task, "insats without an owner");
            }
        }

        // Consents claim their kind.
        for consent in r.of_type("Consent") {
            let names_sip = consent["provision"]["data"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| reference(&d["reference"]).starts_with("CarePlan/"));
            let names_relative = consent["provision"]["actor"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| reference(&a["reference"]).starts_with("RelatedPerson/"));
            if names_sip && !claims(consent, profile::SIP_CONSENT) {
                fail("profile", consent, "SIP consent without its claim");
            }
            if names_relative && !claims(consent, profile::NARSTAENDE_CONSENT) {
                fail("profile", consent, "närstående consent without its claim");
            }
        }

        // Appointments: I9, I10.
        for appointment in r.of_type("Appointment") {
            let appointment_key = key(appointment);
            let participants = appointment["participant"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let actor_of = |p: &Value| reference(&p["actor"]).to_owned();
            let sip_meeting = has_code(&appointment["serviceType"], SERVICE_TYPE_SYSTEM, SIP_MOTE);
            if sip_meeting {
                if !claims(appointment, profile::SIP_MEETING) {
                    fail("profile", appointment, "SIP meeting without its claim");
                }
                if ["cancelled", "entered-in-error"]
                    .contains(&appointment["status"].as_str().unwrap_or_default())
                {
                    continue;
                }
                let actors: Vec<String> = participants.iter().map(actor_of).collect();
                let of = |t: &str| {
                    actors
                        .iter()
                        .any(|a| r.huvudman_type(a).as_deref() == Some(t))
                };
                if !actors.iter().any(|a| a == patient_key) || !of("region") || !of("kommun") {
                    fail(
                        "I10",
                        appointment,
                        "needs the patient, a region and a kommun",
                    );
                }
                for related in actors.iter().filter(|a| a.starts_with("RelatedPerson/")) {
                    if r.narstaende_consent(related).is_none() {
                        fail("I10", appointment, &format!("{related} without consent"));
                    }
                }
                continue;
            }
            if !claims(appointment, profile::AGREED_APPOINTMENT)
                || appointment["status"] != "booked"
            {
                continue;
            }
            let patient_accepted = participants
                .iter()
                .any(|p| actor_of(p) == patient_key && p["status"] == "accepted");
            let answered = r.of_type("AppointmentResponse").any(|response| {
                let actor = reference(&response["actor"]);
                reference(&response["appointment"]) == appointment_key
                    && response["participantStatus"] == "accepted"
                    && (actor == patient_key || r.narstaende_consent(actor) == Some(true))
            });
            if !patient_accepted || !answered {
                fail(
                    "I9",
                    appointment,
                    "booked without the patient's acceptance and answer",
                );
            }
        }
        out
    }
}

/// RULES.md: a server enforcing I1–I10 (and R4's ctm-1) accepts every generated patient,
/// and every patientkontrakt part claims its Paraply profile.
#[test]
fn generated_patients_keep_every_rule_and_claim_their_profiles() {
    let population = generate(&options(400, 12)).unwrap();
    let shared: BTreeMap<String, Value> = population
        .shared_resources()
        .into_iter()
        .map(|r| (key(&r), r))
        .collect();
    let mut breaches = Vec::new();
    let mut claimed: BTreeMap<String, usize> = BTreeMap::new();
    for patient in population.patients() {
        let own: BTreeMap<String, &Value> = patient.resources.iter().map(|r| (key(r), r)).collect();
        for resource in &patient.resources {
            for url in resource["meta"]["profile"].as_array().into_iter().flatten() {
                *claimed.entry(url.as_str().unwrap().to_owned()).or_default() += 1;
            }
        }
        let patient_key = format!("Patient/p-{}", patient.number);
        breaches.extend(rules::breaches(
            &patient_key,
            &rules::Resources {
                shared: &shared,
                own,
            },
        ));
    }
    assert!(
        breaches.is_empty(),
        "{} breaches:\n{}",
        breaches.len(),
        breaches[..breaches.len().min(20)].join("\n")
    );
    // Every profile but the spärr is used (the generator makes no spärr).
    use paraply_fhir::codes::profile;
    for url in profile::ALL
        .iter()
        .filter(|url| **url != profile::SPARR_CONSENT)
    {
        assert!(
            claimed.get(*url).is_some_and(|n| *n > 0),
            "nobody claims {url}"
        );
    }
}
