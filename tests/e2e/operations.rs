//! CapabilityStatement, health, readiness, metrics, the OpenAPI description, and the
//! independent R4 validator over what Paraply emits.

use super::*;

use paraply_fhir::codes::profile;

/// The resource types Paraply stores and serves.
const SERVED: usize = 24;

/// Paraply's own conformance resources (`fhir-profiles/`): read and search only.
const CONFORMANCE: [&str; 6] = [
    "StructureDefinition",
    "CodeSystem",
    "ValueSet",
    "SearchParameter",
    "OperationDefinition",
    "Measure",
];

on_both_backends!(
    capability_statement_lists_what_is_wired,
    async |s: &TestServer| {
        let reply = s.get("metadata").await;
        assert_eq!(reply.status, 200);
        let statement = &reply.body;
        assert_eq!(statement["resourceType"], "CapabilityStatement");
        assert_eq!(statement["fhirVersion"], "4.0.1");
        let all = statement["rest"][0]["resource"].as_array().unwrap();
        assert_eq!(all.len(), SERVED + CONFORMANCE.len());
        let (conformance, resources): (Vec<&Value>, Vec<&Value>) = all
            .iter()
            .partition(|r| CONFORMANCE.contains(&r["type"].as_str().unwrap()));
        assert_eq!(conformance.len(), CONFORMANCE.len());
        assert_eq!(resources.len(), SERVED);
        for entry in &conformance {
            let interactions: Vec<&str> = entry["interaction"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["code"].as_str().unwrap())
                .collect();
            assert_eq!(interactions, ["read", "search-type"], "{}", entry["type"]);
        }
        // Served types name the Paraply profiles they support.
        for (resource_type, expected) in [
            ("CareTeam", profile::FAST_KONTAKT),
            ("CareTeam", profile::SIP_TEAM),
            ("CarePlan", profile::PATIENTKONTRAKT),
            ("CarePlan", profile::SIP),
            ("Appointment", profile::AGREED_APPOINTMENT),
            ("Task", profile::INSATS),
            ("Consent", profile::SIP_CONSENT),
        ] {
            let entry = resources
                .iter()
                .find(|r| r["type"] == resource_type)
                .unwrap();
            assert!(
                entry["supportedProfile"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|url| url == expected)),
                "{resource_type} does not list {expected}: {entry}"
            );
        }
        let patient = resources.iter().find(|r| r["type"] == "Patient").unwrap();
        let params: Vec<&str> = patient["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for expected in [
            "_id",
            "_lastUpdated",
            "identifier",
            "name",
            "family",
            "birthdate",
            "general-practitioner",
        ] {
            assert!(
                params.contains(&expected),
                "Patient?{expected} is not advertised"
            );
        }
        let care_team = resources.iter().find(|r| r["type"] == "CareTeam").unwrap();
        assert!(
            care_team["searchParam"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "participant-role"
                    && p["definition"]
                        == "https://paraply.se/fhir/SearchParameter/CareTeam-participant-role")
        );
        assert!(
            care_team["searchInclude"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i == "CareTeam:participant")
        );
        // Every advertised search parameter really is accepted.
        for resource in resources {
            let resource_type = resource["type"].as_str().unwrap();
            for param in resource["searchParam"].as_array().unwrap() {
                let name = param["name"].as_str().unwrap();
                let value = match param["type"].as_str().unwrap() {
                    "date" => "ge2026-01-01",
                    "uri" => "http://example.org",
                    "quantity" => "5",
                    _ => "x",
                };
                let reply = s.get(&format!("{resource_type}?{name}={value}")).await;
                assert_eq!(reply.status, 200, "{resource_type}?{name}: {}", reply.text);
            }
        }
        // Paraply's own parameters are published as SearchParameter resources.
        let definition = s.get("SearchParameter/CareTeam-participant-role").await;
        assert_eq!(definition.status, 200);
        assert_eq!(definition.body["resourceType"], "SearchParameter");
        assert_eq!(definition.body["code"], "participant-role");
        assert_eq!(s.get("SearchParameter/unknown").await.status, 404);
    }
);

on_both_backends!(request_ids_are_echoed_or_made, async |s: &TestServer| {
    let echoed = Reply::send(
        s.request(reqwest::Method::GET, "metadata")
            .header("x-request-id", "abc-123"),
    )
    .await;
    assert_eq!(echoed.header("x-request-id"), Some("abc-123"));
    let made = s.get("Patient/none").await;
    assert!(made.header("x-request-id").is_some_and(|id| id.len() >= 16));
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_database_gives_503_with_request_id_only_and_not_ready() {
    let Some(bed) = TestBed::start(Backend::Postgres).await else {
        return;
    };
    let s = &bed.server;
    let id = s
        .create(&json!({"resourceType": "Patient", "gender": "female"}))
        .await;
    let admin = std::env::var(POSTGRES_URL_VAR).unwrap();
    let name = bed.database.url.rsplit('/').next().unwrap().to_owned();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let reply = Reply::send(
        s.request(reqwest::Method::GET, &format!("Patient/{id}"))
            .header("x-request-id", "req-503"),
    )
    .await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    let diagnostics = reply.outcome_issue()["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("req-503"));
    assert!(!diagnostics.to_lowercase().contains("select") && !diagnostics.contains(&id));
    let ready = Reply::send(s.client.get(format!("{}/readyz", s.root))).await;
    assert_eq!(ready.status, 503);
    bed.finish().await;
}

/// Every path and method of `openapi/paraply.yaml` reaches a wired interaction, and every
/// interaction the CapabilityStatement advertises has an operation in the description.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_description_matches_the_router() {
    let bed = TestBed::start(Backend::Sqlite).await.unwrap();
    let s = &bed.server;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/paraply.yaml");
    let spec: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut operation_ids = Vec::new();
    let paths = spec["paths"].as_mapping().expect("paths");
    for (template, item) in paths {
        let template = template.as_str().unwrap();
        let concrete = template
            .replace(
                "SearchParameter/{id}",
                "SearchParameter/CareTeam-participant-role",
            )
            .replace(
                "StructureDefinition/{id}",
                "StructureDefinition/fast-kontakt",
            )
            .replace("CodeSystem/{id}", "CodeSystem/plan-type")
            .replace("ValueSet/{id}", "ValueSet/plan-type")
            .replace("Measure/{id}", "Measure/m1")
            .replace(
                "OperationDefinition/{id}",
                "OperationDefinition/patientkontrakt",
            )
            .replace("{type}", "Patient")
            .replace("{id}", "p1")
            .replace("{vid}", "1");
        for (method, operation) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            let Ok(method) = method.to_uppercase().parse::<reqwest::Method>() else {
                continue;
            };
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                continue;
            }
            if let Some(id) = operation["operationId"].as_str() {
                operation_ids.push(id.to_owned());
            }
            let mut request = s
                .client
                .request(method.clone(), format!("{}{concrete}", s.root));
            if method == reqwest::Method::PATCH {
                request = request
                    .header("content-type", "application/json-patch+json")
                    .body("[]");
            } else if concrete.ends_with("/_search") {
                request = request
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("_id=p1");
            } else if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
                request = request
                    .header("content-type", "application/fhir+json")
                    .body(r#"{"resourceType":"Patient","id":"p1"}"#);
            }
            let reply = Reply::send(request).await;
            let unrouted = reply.status == 405
                || (reply.status == 404 && reply.body["issue"][0]["code"] == "not-supported");
            assert!(
                !unrouted,
                "{method} {template} is described but not wired: {} {}",
                reply.status, reply.text
            );
        }
    }
    let capabilities = s.get("metadata").await.body;
    let mut advertised: Vec<String> = capabilities["rest"][0]["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap().to_owned())
        .collect();
    advertised.extend(
        capabilities["rest"][0]["resource"][0]["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["code"].as_str().unwrap().to_owned()),
    );
    for code in advertised {
        let expected = match code.as_str() {
            "batch" | "transaction" => "batch-transaction".to_owned(),
            other => other.to_owned(),
        };
        assert!(
            operation_ids.contains(&expected),
            "{code} is wired but has no operation '{expected}' in the OpenAPI description"
        );
    }
    bed.finish().await;
}

/// What Paraply emits is valid R4 according to an independent validator
/// (`../shared/tools/fhir-validate`), run when `PARAPLY_FHIR_VALIDATOR_PYTHON` names a
/// Python with `fhir.resources` installed (`.ci/run` sets one up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitted_resources_pass_the_independent_r4_validator() {
    let bed = TestBed::start(Backend::Sqlite).await.unwrap();
    let s = &bed.server;
    let patient = json!({"resourceType": "Patient", "identifier": [{"system": "http://electronichealth.se/identifier/personnummer", "value": "191212121212"}], "gender": "male"});
    let id = s.create(&patient).await;
    let mut updated = patient.clone();
    updated["id"] = json!(id);
    s.put(&format!("Patient/{id}"), &updated).await;
    let bodies = [
        ("capability-statement", s.get("metadata").await.text),
        ("read", s.get(&format!("Patient/{id}")).await.text),
        ("searchset", s.get("Patient?identifier=191212121212").await.text),
        ("history", s.get(&format!("Patient/{id}/_history")).await.text),
        ("operation-outcome", s.get("Patient/missing").await.text),
        ("invalid-outcome", s.post("Patient", &json!({"resourceType": "Patient", "gender": "kvinna"})).await.text),
        ("transaction-response", s.post("", &json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:0d4b8e3c-1111-4222-8333-944455556666", "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Goal", "lifecycleStatus": "active", "description": {"text": "Gå själv till affären"},
                          "subject": {"reference": "urn:uuid:0d4b8e3c-1111-4222-8333-944455556666"}}, "request": {"method": "POST", "url": "Goal"}}]})).await.text),
        ("batch-response", s.post("", &json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "GET", "url": "Patient/missing"}},
            {"request": {"method": "GET", "url": format!("Patient/{id}")}}]})).await.text),
    ];
    let documents: Vec<(&str, &str)> = bodies
        .iter()
        .map(|(name, body)| (*name, body.as_str()))
        .collect();
    paraply_fhir_validator::assert_valid(&documents);
    bed.finish().await;
}

/// No container engine runs here, so `compose.yaml` is checked for shape: PostgreSQL and a
/// Paraply built from the repository's Dockerfile, pointed at that PostgreSQL.
#[test]
fn compose_file_runs_postgres_and_paraply_from_the_dockerfile() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../compose.yaml");
    let compose: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let services = &compose["services"];
    assert!(
        services["postgres"]["image"]
            .as_str()
            .unwrap()
            .starts_with("postgres")
    );
    let paraply = &services["paraply"];
    assert!(
        !paraply["build"].is_null(),
        "paraply is built from the Dockerfile"
    );
    let environment = serde_yaml::to_string(&paraply["environment"]).unwrap();
    assert!(
        environment.contains("PARAPLY_DATABASE_URL") && environment.contains("@postgres:5432/")
    );
    assert!(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile")).exists());
}
