//! Where a create's CPU goes: parse, stamp, validate, index, serialize — per stage, for a
//! realistic ~1 KB Swedish Patient and a ~2 KB CarePlan. Run with
//! `cargo bench -p paraply-core --bench write_path` (a release build).

use std::hint::black_box;
use std::time::Instant;

use paraply_fhir::{ResourceType, validate};
use paraply_search::index_rows;
use serde_json::{Value, json};

fn patient() -> Value {
    json!({"resourceType": "Patient",
        "identifier": [{"system": "http://electronichealth.se/identifier/personnummer", "value": "191212121212"}],
        "active": true,
        "name": [{"use": "official", "family": "Tolvansson", "given": ["Tolvan", "Olof"]}],
        "telecom": [{"system": "phone", "value": "+46 70 123 45 67", "use": "mobile"},
                    {"system": "email", "value": "tolvan@example.se"}],
        "gender": "male", "birthDate": "1912-12-12",
        "address": [{"use": "home", "line": ["Storgatan 1"], "city": "Solna", "postalCode": "171 64", "country": "SE"}],
        "contact": [{"relationship": [{"text": "Dotter"}], "name": {"family": "Tolvansson", "given": ["Lisa"]},
                     "telecom": [{"system": "phone", "value": "+46 70 765 43 21"}]}],
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "sv"}]}, "preferred": true}],
        "generalPractitioner": [{"reference": "Organization/vc"}]})
}

fn care_plan() -> Value {
    json!({"resourceType": "CarePlan", "status": "active", "intent": "plan",
        "category": [{"coding": [{"system": "https://paraply.se/fhir/CodeSystem/plan-category", "code": "patientkontrakt"}]}],
        "title": "Patientkontrakt", "description": "Överenskommelse om fast läkarkontakt, tider och mål.",
        "subject": {"reference": "Patient/p1"}, "period": {"start": "2026-01-01"},
        "author": {"reference": "PractitionerRole/r1"},
        "careTeam": [{"reference": "CareTeam/ct1"}, {"reference": "CareTeam/ct2"}],
        "goal": [{"reference": "Goal/g1"}, {"reference": "Goal/g2"}],
        "activity": [{"reference": {"reference": "Appointment/a1"}}, {"reference": {"reference": "Task/t1"}},
                     {"detail": {"kind": "Task", "status": "scheduled", "description": "Promenad varje dag"}}]})
}

fn measure(name: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let started = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let micros = started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    println!("{name:<32} {micros:>8.1} µs");
}

fn main() {
    for (label, resource_type, resource) in [
        ("Patient", ResourceType::Patient, patient()),
        ("CarePlan", ResourceType::CarePlan, care_plan()),
    ] {
        let text = resource.to_string();
        println!("{label} ({} bytes)", text.len());
        let n = 5_000;
        measure("  parse JSON (serde_json)", n, || {
            black_box(serde_json::from_str::<Value>(black_box(&text)).ok());
        });
        measure("  validate (fhirbolt + tables)", n, || {
            black_box(validate(black_box(&resource)).ok());
        });
        measure("  index rows", n, || {
            black_box(index_rows(resource_type, black_box(&resource)));
        });
        measure("  serialize", n, || {
            black_box(serde_json::to_string(black_box(&resource)).ok());
        });
    }
}
