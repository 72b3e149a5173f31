//! The files of `fhir-profiles/` against the rest of Paraply: every file is embedded, every
//! canonical is where `paraply_fhir::codes` says, the search parameters say what the search
//! registry indexes, each profile's example passes, and the independent R4 validator accepts
//! the files and the examples.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use paraply_fhir::codes;
use paraply_profiles::{check_profiles, conformance_resource, conformance_resources, profiles_of};
use serde_json::Value;

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fhir-profiles")
}

fn examples_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/examples")
}

fn parsed() -> Vec<(&'static str, &'static str, Value)> {
    conformance_resources()
        .map(|(t, id, json)| (t, id, serde_json::from_str(json).expect(id)))
        .collect()
}

#[test]
fn every_file_in_the_folder_is_embedded() {
    let on_disk: BTreeSet<String> = fs::read_dir(folder())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json"))
        .collect();
    let embedded: BTreeSet<String> = conformance_resources()
        .map(|(t, id, _)| format!("{t}-{id}.json"))
        .collect();
    assert_eq!(on_disk, embedded);
    for name in &on_disk {
        let text = fs::read_to_string(folder().join(name)).unwrap();
        let (t, id) = name.trim_end_matches(".json").split_once('-').unwrap();
        assert_eq!(conformance_resource(t, id), Some(text.as_str()), "{name}");
    }
}

#[test]
fn each_file_is_the_resource_its_name_says_at_its_canonical() {
    for (resource_type, id, resource) in parsed() {
        assert_eq!(resource["resourceType"], resource_type, "{id}");
        assert_eq!(resource["id"], id, "{id}");
        let expected = if resource_type == "CodeSystem" && id == "typ-av-fast-kontakt" {
            codes::FAST_KONTAKT_ROLE_SYSTEM.to_owned()
        } else {
            format!("{}/{resource_type}/{id}", codes::CANONICAL_BASE)
        };
        assert_eq!(resource["url"], expected.as_str(), "{resource_type}/{id}");
        assert_eq!(resource["status"], "active", "{resource_type}/{id}");
    }
}

#[test]
fn an_unknown_resource_is_not_found() {
    assert_eq!(conformance_resource("StructureDefinition", "no-such"), None);
    assert_eq!(conformance_resource("ValueSet", "fast-kontakt"), None);
}

#[test]
fn profiles_and_extensions_are_at_the_urls_the_code_uses() {
    let definitions: BTreeSet<String> = parsed()
        .into_iter()
        .filter(|(t, _, _)| *t == "StructureDefinition")
        .map(|(_, _, r)| r["url"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = [
        codes::profile::PATIENTKONTRAKT,
        codes::profile::SIP,
        codes::profile::LINKED_PLAN,
        codes::profile::FAST_KONTAKT,
        codes::profile::SIP_TEAM,
        codes::profile::AGREED_APPOINTMENT,
        codes::profile::SIP_MEETING,
        codes::profile::INSATS,
        codes::profile::NARSTAENDE_CONSENT,
        codes::profile::SIP_CONSENT,
        codes::profile::SPARR_CONSENT,
        codes::REACHABLE_HOURS_URL,
        codes::CONTACT_ROUTE_URL,
        codes::PERFORMED_BY_OTHER_URL,
        codes::NOTE_VISIBILITY_URL,
        codes::SUBSCRIPTION_SIGNING_SECRET_EXTENSION,
        codes::SLOT_HELD_UNTIL_EXTENSION,
        codes::SLOT_HELD_FOR_EXTENSION,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(definitions, expected);
}

#[test]
fn code_systems_hold_the_codes_the_code_uses() {
    let code_system = |url: &str| -> BTreeSet<String> {
        let resource = parsed()
            .into_iter()
            .map(|(_, _, r)| r)
            .find(|r| r["resourceType"] == "CodeSystem" && r["url"] == url)
            .unwrap_or_else(|| panic!("no CodeSystem {url}"));
        assert_eq!(resource["content"], "complete", "{url}");
        resource["concept"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                assert!(
                    c["display"].is_string() && c["definition"].is_string(),
                    "{url}: {c}"
                );
                c["code"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let set = |codes: &[&str]| codes.iter().map(|c| c.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        code_system(codes::PLAN_CATEGORY_SYSTEM),
        set(&[codes::PATIENTKONTRAKT])
    );
    assert_eq!(code_system(codes::PLAN_TYPE_SYSTEM), set(codes::PLAN_TYPES));
    assert_eq!(
        code_system(codes::CARE_TEAM_CATEGORY_SYSTEM),
        set(&[codes::FAST_KONTAKT, codes::SIP_TEAM])
    );
    assert_eq!(
        code_system(codes::HUVUDMAN_TYPE_SYSTEM),
        set(codes::HUVUDMAN_TYPES)
    );
    assert_eq!(
        code_system(codes::SIP_ROLE_SYSTEM),
        set(&[
            "sip-samordnare",
            "insatsansvarig",
            "narstaende",
            "annan-aktor"
        ])
    );
    assert_eq!(
        code_system(codes::SERVICE_TYPE_SYSTEM),
        set(&[codes::SIP_MOTE])
    );
    assert_eq!(
        code_system(codes::CONSENT_ACTION_SYSTEM),
        set(&[codes::BOOK])
    );
    assert_eq!(
        code_system(codes::FAST_KONTAKT_ROLE_SYSTEM),
        set(&["1", "2", "3", "4"])
    );
}

#[test]
fn search_parameters_say_what_the_registry_indexes() {
    let files: Vec<Value> = parsed()
        .into_iter()
        .filter(|(t, _, _)| *t == "SearchParameter")
        .map(|(_, _, r)| r)
        .collect();
    assert_eq!(files.len(), paraply_search::PARAPLY_DEFINITIONS.len());
    for (base, def, expression, description) in paraply_search::PARAPLY_DEFINITIONS {
        let id = format!("{}-{}", base.as_str(), def.name);
        let file = files
            .iter()
            .find(|r| r["id"] == id.as_str())
            .unwrap_or_else(|| panic!("no SearchParameter-{id}.json"));
        assert_eq!(file["url"], def.url, "{id}");
        assert_eq!(file["code"], def.name, "{id}");
        assert_eq!(file["base"], serde_json::json!([base.as_str()]), "{id}");
        assert_eq!(file["type"], def.kind.as_str(), "{id}");
        assert_eq!(file["expression"], *expression, "{id}");
        assert_eq!(file["description"], *description, "{id}");
        let targets: Vec<&str> = def.targets.iter().map(|t| t.as_str()).collect();
        let file_targets: Vec<&str> = file["target"]
            .as_array()
            .map(|t| t.iter().map(|v| v.as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(file_targets, targets, "{id}");
    }
}

#[test]
fn profiles_of_a_type_are_its_supported_profiles() {
    assert_eq!(
        profiles_of("CarePlan"),
        [
            codes::profile::LINKED_PLAN,
            codes::profile::PATIENTKONTRAKT,
            codes::profile::SIP
        ]
    );
    assert_eq!(
        profiles_of("CareTeam"),
        [codes::profile::FAST_KONTAKT, codes::profile::SIP_TEAM]
    );
    assert_eq!(
        profiles_of("Consent"),
        [
            codes::profile::NARSTAENDE_CONSENT,
            codes::profile::SIP_CONSENT,
            codes::profile::SPARR_CONSENT
        ]
    );
    assert_eq!(profiles_of("Task"), [codes::profile::INSATS]);
    assert!(profiles_of("Extension").is_empty());
    assert!(profiles_of("Patient").is_empty());
}

#[test]
fn each_profile_has_an_example_that_passes_it() {
    for (_, id, resource) in parsed() {
        if resource["resourceType"] != "StructureDefinition" || resource["kind"] != "resource" {
            continue;
        }
        let path = examples_folder().join(format!("{id}.json"));
        let example: Value = serde_json::from_str(
            &fs::read_to_string(&path).unwrap_or_else(|_| panic!("no example {}", path.display())),
        )
        .unwrap();
        assert_eq!(example["resourceType"], resource["type"], "{id}");
        assert_eq!(example["meta"]["profile"][0], resource["url"], "{id}");
        assert_eq!(check_profiles(&example), vec![], "{id}");
    }
}

/// The files and the examples are valid R4 according to the independent validator
/// (`../shared/tools/fhir-validate`), run when `PARAPLY_FHIR_VALIDATOR_PYTHON` names a
/// Python with `fhir.resources` (tests/run-all.sh sets it).
#[test]
fn files_and_examples_pass_the_independent_r4_validator() {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [folder(), examples_folder()] {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    paraply_fhir_validator::assert_files_valid(&files);
}
