//! Follow-up measures M1–M4 (`Measure/{id}/$evaluate-measure`) against counts computed here,
//! independently, from the generated synthetic population; a period read as the data stood
//! at its end; small cells masked; bad parameters refused.

use std::collections::{BTreeMap, HashMap};

use paraply_server::config::{FileConfig, PatientkontraktConfig};

use super::*;

const PATIENTS: u64 = 60;
const ROLE_SYSTEM: &str = "urn:oid:1.2.752.129.5.1.69";

fn options() -> paraply_synth::SynthOptions {
    paraply_synth::SynthOptions {
        patients: PATIENTS,
        ..paraply_synth::SynthOptions::default()
    }
}

/// What the measures should say of the generated data, worked out from the resources as
/// generated (not from anything the server stored).
#[derive(Default, Debug)]
struct Expected {
    active_umbrella: u64,
    with_vardkontakt: u64,
    with_lakarkontakt: u64,
    offered: u64,
    by_group: BTreeMap<String, u64>,
    by_sex: BTreeMap<String, u64>,
    by_municipality: BTreeMap<String, u64>,
    active_sips: u64,
    appointments_kept: u64,
    appointments_agreed: u64,
}

fn has_code(value: &Value, key: &str, code: &str) -> bool {
    value[key].as_array().into_iter().flatten().any(|c| {
        c["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|coding| coding["code"] == code)
    })
}

fn expected() -> Expected {
    let population = paraply_synth::generate(&options()).unwrap();
    let mut expected = Expected::default();
    for patient in population.patients() {
        let resources = &patient.resources;
        let of_type = |t: &'static str| resources.iter().filter(move |r| r["resourceType"] == t);
        let person = of_type("Patient").next().unwrap();
        let umbrella = of_type("CarePlan")
            .find(|p| has_code(p, "category", "patientkontrakt"))
            .unwrap();
        let active_roles: Vec<&str> = of_type("CareTeam")
            .filter(|t| has_code(t, "category", "fast-kontakt") && t["status"] == "active")
            .flat_map(|t| t["participant"][0]["role"].as_array().unwrap().iter())
            .flat_map(|r| r["coding"].as_array().unwrap().iter())
            .filter(|c| c["system"] == ROLE_SYSTEM)
            .map(|c| c["code"].as_str().unwrap())
            .collect();
        if umbrella["status"] == "active" {
            expected.active_umbrella += 1;
            if active_roles.iter().any(|r| *r == "1" || *r == "4") {
                expected.with_vardkontakt += 1;
            }
            if active_roles.contains(&"2") {
                expected.with_lakarkontakt += 1;
            }
        }
        expected.offered += 1;
        for condition in umbrella["contained"].as_array().unwrap() {
            let name = condition["code"]["coding"][0]["display"].as_str().unwrap();
            *expected.by_group.entry(name.to_owned()).or_default() += 1;
        }
        *expected
            .by_sex
            .entry(person["gender"].as_str().unwrap().to_owned())
            .or_default() += 1;
        *expected
            .by_municipality
            .entry(person["address"][0]["city"].as_str().unwrap().to_owned())
            .or_default() += 1;
        expected.active_sips += of_type("CarePlan")
            .filter(|p| has_code(p, "category", "SIP") && p["status"] == "active")
            .count() as u64;
        let me = format!("Patient/{}", person["id"].as_str().unwrap());
        for appointment in
            of_type("Appointment").filter(|a| !has_code(a, "serviceType", "sip-mote"))
        {
            let kept = ["booked", "arrived", "checked-in", "fulfilled"]
                .contains(&appointment["status"].as_str().unwrap());
            if !kept || appointment["start"].is_null() {
                continue;
            }
            expected.appointments_kept += 1;
            let agreed = appointment["participant"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["actor"]["reference"] == me.as_str() && p["status"] == "accepted");
            if agreed {
                expected.appointments_agreed += 1;
            }
        }
    }
    expected
}

async fn load(server: &TestServer) {
    paraply_synth::load(&server.base, &options(), 2)
        .await
        .unwrap_or_else(|error| panic!("the population loads: {error}"));
}

async fn evaluate(server: &TestServer, measure: &str, query: &str) -> Value {
    let reply = server
        .get(&format!("Measure/{measure}/$evaluate-measure?{query}"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["resourceType"], "MeasureReport");
    reply.body
}

fn count(group: &Value, population: &str) -> Option<u64> {
    group["population"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"]["coding"][0]["code"] == population)
        .and_then(|p| p["count"].as_u64())
}

/// Stratum text → initial-population count, of the stratifier `code`.
fn strata(group: &Value, code: &str) -> BTreeMap<String, u64> {
    group["stratifier"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["code"][0]["coding"][0]["code"] == code)
        .flat_map(|s| s["stratum"].as_array().unwrap().iter())
        .map(|stratum| {
            let first = &stratum["population"][0];
            (
                stratum["value"]["text"].as_str().unwrap().to_owned(),
                first["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

const ALL_OF_IT: &str = "periodStart=2000&periodEnd=2035";

fn unmasked() -> FileConfig {
    FileConfig {
        patientkontrakt: PatientkontraktConfig {
            followup_min_cell: 1,
            ..PatientkontraktConfig::default()
        },
        ..FileConfig::default()
    }
}

on_both_backends_with!(
    measures_match_counts_computed_from_the_generated_population,
    unmasked(),
    async |server: &TestServer| {
        let expected = expected();
        load(server).await;

        let m1 = evaluate(server, "m1", ALL_OF_IT).await;
        let group = &m1["group"][0];
        assert_eq!(count(group, "denominator"), Some(expected.active_umbrella));
        assert_eq!(count(group, "numerator"), Some(expected.with_vardkontakt));
        assert_eq!(
            strata(group, "sex").values().sum::<u64>(),
            expected.active_umbrella
        );
        let share = expected.with_vardkontakt as f64 / expected.active_umbrella as f64;
        let score = group["measureScore"]["value"].as_f64().unwrap();
        assert!((score - share).abs() < 0.0001, "{score} vs {share}");

        let m2 = evaluate(server, "m2", ALL_OF_IT).await;
        assert_eq!(
            count(&m2["group"][0], "numerator"),
            Some(expected.with_lakarkontakt)
        );

        let m3 = evaluate(server, "m3", ALL_OF_IT).await;
        let group = &m3["group"][0];
        assert_eq!(count(group, "initial-population"), Some(expected.offered));
        assert_eq!(strata(group, "patient-group"), expected.by_group);
        assert_eq!(strata(group, "sex"), expected.by_sex);
        assert_eq!(strata(group, "municipality"), expected.by_municipality);
        // Regions and units are named, with their HSA-id.
        let region = &group["stratifier"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["code"][0]["coding"][0]["code"] == "region")
            .unwrap()["stratum"][0]["value"];
        assert!(
            region["text"].as_str().unwrap().starts_with("Region"),
            "{region}"
        );
        assert_eq!(region["coding"][0]["system"], "urn:oid:1.2.752.29.4.19");

        let m4 = evaluate(server, "m4", ALL_OF_IT).await;
        assert_eq!(
            count(&m4["group"][0], "initial-population"),
            Some(expected.active_sips)
        );
        let agreed = &m4["group"][2];
        assert_eq!(
            count(agreed, "denominator"),
            Some(expected.appointments_kept)
        );
        assert_eq!(
            count(agreed, "numerator"),
            Some(expected.appointments_agreed)
        );

        // Before anything was loaded there was nothing to count.
        let before = evaluate(server, "m3", "periodStart=2000&periodEnd=2001").await;
        assert_eq!(count(&before["group"][0], "initial-population"), Some(0));

        paraply_fhir_validator::assert_valid(&[
            ("m1", &m1.to_string()),
            ("m3", &m3.to_string()),
            ("m4", &m4.to_string()),
        ]);
    }
);

on_both_backends!(
    a_period_is_read_as_the_data_stood_at_its_end_and_small_cells_are_masked,
    async |server: &TestServer| {
        load(server).await;
        let with_lakarkontakt = |report: &Value| count(&report["group"][0], "numerator");
        let before = evaluate(server, "m2", ALL_OF_IT).await;
        let instant = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();

        // A patient's fast läkarkontakt ends.
        let reply = server
            .get("CareTeam?participant-role=urn:oid:1.2.752.129.5.1.69|2&status=active&_count=1")
            .await;
        let mut team = reply.body["entry"][0]["resource"].clone();
        team["status"] = json!("inactive");
        let id = team["id"].as_str().unwrap().to_owned();
        let updated = server.put(&format!("CareTeam/{id}"), &team).await;
        assert_eq!(updated.status, 200, "{}", updated.text);

        let now = evaluate(server, "m2", ALL_OF_IT).await;
        let then = evaluate(
            server,
            "m2",
            &format!("periodStart=2000&periodEnd={}", instant.replace('+', "%2B")),
        )
        .await;
        let (Some(before_count), Some(now_count)) =
            (with_lakarkontakt(&before), with_lakarkontakt(&now))
        else {
            panic!("counts of {PATIENTS} patients are not masked: {now}");
        };
        assert_eq!(now_count, before_count - 1);
        assert_eq!(with_lakarkontakt(&then), Some(before_count));

        // One unit's few patients: counts from 1 to 4 are masked, with a reason.
        let unit = before["group"][0]["stratifier"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["code"][0]["coding"][0]["code"] == "unit")
            .unwrap()["stratum"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["population"][0]["_count"].is_object())
            .map(|s| s["value"]["coding"][0]["code"].clone());
        assert!(
            unit.is_some(),
            "some unit of {PATIENTS} patients has fewer than 5"
        );
    }
);

on_both_backends!(
    bad_measure_requests_are_refused_with_an_operation_outcome,
    async |server: &TestServer| {
        for (query, status) in [
            (
                "Measure/m9/$evaluate-measure?periodStart=2026&periodEnd=2026",
                400,
            ),
            ("Measure/m1/$evaluate-measure?periodEnd=2026", 400),
            (
                "Measure/m1/$evaluate-measure?periodStart=2026-13&periodEnd=2026",
                400,
            ),
            (
                "Measure/m1/$evaluate-measure?periodStart=2027&periodEnd=2026",
                400,
            ),
            (
                "Measure/m1/$evaluate-measure?periodStart=2026&periodEnd=2026&reportType=subject",
                400,
            ),
            (
                "Measure/m4/$evaluate-measure?periodStart=2026&periodEnd=2026&reportType=subject-list",
                400,
            ),
            (
                "Measure/m1/$evaluate-measure?periodStart=2026&periodEnd=2026&unit=Patient/p1",
                400,
            ),
            (
                "Measure/m1/$evaluate-measure?periodStart=2026&periodEnd=2026&subject=Patient/p1",
                400,
            ),
        ] {
            let reply = server.get(query).await;
            assert_eq!(reply.status, status, "{query}: {}", reply.text);
            assert_eq!(reply.body["resourceType"], "OperationOutcome", "{query}");
        }
        // The measures themselves are served and listed.
        let measure = server.get("Measure/m2").await;
        assert_eq!(measure.status, 200);
        assert_eq!(measure.body["url"], "https://paraply.se/fhir/Measure/m2");
        let listed = server.get("Measure").await;
        assert_eq!(listed.body["total"], 4, "{}", listed.text);
        let metadata = server.get("metadata").await;
        let entry = metadata.body["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "Measure")
            .cloned()
            .unwrap();
        assert_eq!(entry["operation"][0]["name"], "evaluate-measure");
    }
);

// A subject list: the patients without a fast läkarkontakt are the denominator's less the
// numerator's.
on_both_backends!(
    a_subject_list_names_the_patients_of_each_population,
    async |server: &TestServer| {
        load(server).await;
        let summary = evaluate(server, "m2", ALL_OF_IT).await;
        let list = evaluate(
            server,
            "m2",
            &format!("{ALL_OF_IT}&reportType=subject-list"),
        )
        .await;
        assert_eq!(list["type"], "subject-list");
        let lists: HashMap<String, Vec<String>> = list["contained"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let entries = l["entry"]
                    .as_array()
                    .map(|e| {
                        e.iter()
                            .map(|e| e["item"]["reference"].as_str().unwrap().to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                (l["id"].as_str().unwrap().to_owned(), entries)
            })
            .collect();
        let denominator = &lists["fast-lakarkontakt-denominator"];
        let numerator = &lists["fast-lakarkontakt-numerator"];
        assert_eq!(
            Some(denominator.len() as u64),
            count(&summary["group"][0], "denominator")
        );
        assert_eq!(
            Some(numerator.len() as u64),
            count(&summary["group"][0], "numerator")
        );
        let lacking: Vec<&String> = denominator
            .iter()
            .filter(|p| !numerator.contains(p))
            .collect();
        let patient = server.get(lacking[0].as_str()).await;
        assert_eq!(patient.status, 200);
        paraply_fhir_validator::assert_valid(&[("subject-list", &list.to_string())]);
    }
);

/// Deletes every follow-up fact behind Paraply's back: the database as one written before
/// facts were kept.
async fn forget_facts(url: &str) {
    use sqlx::Connection;
    const FORGET: &str = "DELETE FROM fact";
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(FORGET).execute(&mut conn).await.unwrap();
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(FORGET).execute(&mut conn).await.unwrap();
    }
}

async fn facts_are_recorded_on_start_for_a_database_without_them(backend: Backend) {
    let Some(TestBed { server, database }) = TestBed::start(backend).await else {
        return;
    };
    load(&server).await;
    let m3 = evaluate(&server, "m3", ALL_OF_IT).await;
    let m4 = evaluate(&server, "m4", ALL_OF_IT).await;
    server.stop().await;
    forget_facts(&database.url).await;

    let restarted = TestServer::start(&database.url, FileConfig::default()).await;
    let offered = |report: &Value| count(&report["group"][0], "initial-population");
    assert_eq!(
        offered(&evaluate(&restarted, "m3", ALL_OF_IT).await),
        offered(&m3)
    );
    let kept = |report: &Value| count(&report["group"][2], "denominator");
    assert_eq!(
        kept(&evaluate(&restarted, "m4", ALL_OF_IT).await),
        kept(&m4)
    );
    assert!(offered(&m3).is_some_and(|n| n == PATIENTS), "{m3}");
    restarted.stop().await;
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_are_recorded_on_start_for_a_database_without_them_sqlite() {
    facts_are_recorded_on_start_for_a_database_without_them(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_are_recorded_on_start_for_a_database_without_them_postgres() {
    facts_are_recorded_on_start_for_a_database_without_them(Backend::Postgres).await;
}
