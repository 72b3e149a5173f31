//! Bad input: every case gets an OperationOutcome with the right status, and nothing
//! stored is lost or half-written.

use super::*;

async fn versions_stored(s: &TestServer) -> u64 {
    s.get("_history?_count=1").await.body["total"]
        .as_u64()
        .unwrap()
}

async fn send_raw(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    content_type: &str,
    body: &str,
) -> Reply {
    Reply::send(
        s.request(method, path)
            .header("content-type", content_type)
            .body(body.to_owned()),
    )
    .await
}

/// One bad write and the answer it must get.
struct BadWrite {
    method: reqwest::Method,
    path: &'static str,
    content_type: &'static str,
    body: String,
    status: u16,
    code: &'static str,
    expression: Option<&'static str>,
}

/// Status, issue code and the element path the issue must name.
type Expectation = (u16, &'static str, Option<&'static str>);

fn bad(
    method: reqwest::Method,
    path: &'static str,
    content_type: &'static str,
    body: &str,
    (status, code, expression): Expectation,
) -> BadWrite {
    BadWrite {
        method,
        path,
        content_type,
        body: body.to_owned(),
        status,
        code,
        expression,
    }
}

on_both_backends!(
    bad_writes_are_refused_with_a_precise_outcome_and_store_nothing,
    async |s: &TestServer| {
        let json = "application/fhir+json";
        // (method, path, content type, body, status, issue code, expression)
        let cases = vec![
            bad(
                reqwest::Method::POST,
                "Patient",
                json,
                "{not json",
                (400, "structure", None),
            ),
            bad(
                reqwest::Method::POST,
                "Patient",
                "text/plain",
                r#"{"resourceType":"Patient"}"#,
                (415, "not-supported", None),
            ),
            bad(
                reqwest::Method::POST,
                "Patient",
                "application/xml",
                "<Patient/>",
                (415, "not-supported", None),
            ),
            bad(
                reqwest::Method::POST,
                "Patient",
                json,
                r#"{"resourceType":"Patient","colour":"red"}"#,
                (400, "structure", Some("Patient.colour")),
            ),
            bad(
                reqwest::Method::POST,
                "Patient",
                json,
                r#"{"resourceType":"Patient","active":"yes"}"#,
                (400, "structure", Some("Patient.active")),
            ),
            bad(
                reqwest::Method::POST,
                "Patient",
                json,
                r#"{"resourceType":"Patient","name":[{"given":"Karin"}]}"#,
                (400, "structure", Some("Patient.name[0].given")),
            ),
            bad(
                reqwest::Method::POST,
                "Patient",
                json,
                r#"{"resourceType":"Patient","name":[]}"#,
                (400, "structure", Some("Patient.name")),
            ),
            bad(
                reqwest::Method::POST,
                "Patient",
                json,
                r#"{"resourceType":"Patient","gender":"kvinna"}"#,
                (422, "code-invalid", Some("Patient.gender")),
            ),
            bad(
                reqwest::Method::POST,
                "CarePlan",
                json,
                r#"{"resourceType":"CarePlan","status":"active","subject":{"reference":"Patient/1"}}"#,
                (422, "required", Some("CarePlan.intent")),
            ),
            bad(
                reqwest::Method::POST,
                "CarePlan",
                json,
                r#"{"resourceType":"CarePlan","status":"active","intent":"plan","subject":{"reference":"Patient/1"},"activity":[{"detail":{"status":"scheduled","colour":1}}]}"#,
                (400, "structure", Some("CarePlan.activity[0].detail.colour")),
            ),
            bad(
                reqwest::Method::POST,
                "Patient",
                json,
                r#"{"resourceType":"Observation","status":"final","code":{"text":"x"}}"#,
                (400, "invalid", None),
            ),
            bad(
                reqwest::Method::POST,
                "Patient",
                json,
                r#"{"resourceType":"Practitioner"}"#,
                (400, "invalid", None),
            ),
            bad(
                reqwest::Method::POST,
                "Patient",
                json,
                "[]",
                (400, "invalid", None),
            ),
            bad(
                reqwest::Method::PUT,
                "Patient/a",
                json,
                r#"{"resourceType":"Patient","id":"b"}"#,
                (400, "invalid", None),
            ),
            bad(
                reqwest::Method::PUT,
                "Patient/a",
                json,
                r#"{"resourceType":"Patient"}"#,
                (400, "invalid", None),
            ),
            bad(
                reqwest::Method::PATCH,
                "Patient/a",
                json,
                "[]",
                (415, "not-supported", None),
            ),
            bad(
                reqwest::Method::POST,
                "Observation",
                json,
                r#"{"resourceType":"Observation"}"#,
                (404, "not-supported", None),
            ),
        ];
        for BadWrite {
            method,
            path,
            content_type,
            body,
            status,
            code,
            expression,
        } in cases
        {
            let label = format!("{method} {path} {content_type} {body}");
            let reply = send_raw(s, method, path, content_type, &body).await;
            assert_eq!(reply.status, status, "{label}: {}", reply.text);
            let issue = reply.outcome_issue();
            assert_eq!(issue["code"], code, "{label}: {}", reply.text);
            assert_eq!(issue["severity"], "error", "{label}");
            if let Some(expression) = expression {
                assert_eq!(
                    issue["expression"][0], expression,
                    "{label}: {}",
                    reply.text
                );
            }
        }
        assert_eq!(versions_stored(s).await, 0, "nothing was stored");
    }
);

on_both_backends!(
    refused_update_leaves_the_stored_version_intact,
    async |s: &TestServer| {
        let id = s
            .create(&json!({"resourceType": "Patient", "gender": "female"}))
            .await;
        let before = s.get(&format!("Patient/{id}")).await;
        let bad = json!({"resourceType": "Patient", "id": id, "gender": "kvinna"});
        assert_eq!(s.put(&format!("Patient/{id}"), &bad).await.status, 422);
        let after = s.get(&format!("Patient/{id}")).await;
        assert_eq!(after.text, before.text);
        assert_eq!(versions_stored(s).await, 1);
    }
);

on_both_backends!(
    unknown_routes_and_wrong_methods_are_operation_outcomes,
    async |s: &TestServer| {
        let cases: Vec<(reqwest::Method, String, u16)> = vec![
            (
                reqwest::Method::GET,
                format!("{}/nothing-here", s.root),
                404,
            ),
            (
                reqwest::Method::GET,
                s.url("Patient/1/_history/1/extra"),
                404,
            ),
            (reqwest::Method::GET, s.url("Observation/1"), 404),
            (reqwest::Method::GET, s.url("Patient/not%20an%20id"), 404),
            (reqwest::Method::POST, s.url("Patient/1"), 405),
            (reqwest::Method::PATCH, s.url("Patient"), 405),
            (reqwest::Method::DELETE, s.url("metadata"), 405),
            (reqwest::Method::OPTIONS, s.url("Patient"), 405),
            (reqwest::Method::GET, s.url(""), 405),
            (reqwest::Method::GET, s.url("Patient/1/$everything"), 501),
        ];
        for (method, url, status) in cases {
            let reply = Reply::send(s.client.request(method.clone(), &url)).await;
            assert_eq!(reply.status, status, "{method} {url}: {}", reply.text);
            reply.outcome_issue();
        }
    }
);

on_both_backends!(unknown_search_parameter_is_named, async |s: &TestServer| {
    let reply = s.get("Patient?colour=peter").await;
    assert_eq!(reply.status, 400);
    let issue = reply.outcome_issue();
    assert_eq!(issue["expression"][0], "colour");
    assert!(issue["diagnostics"].as_str().unwrap().contains("colour"));
    assert_eq!(s.get("Patient?_count=many").await.status, 400);
    assert_eq!(s.get("AuditEvent?identifier=x").await.status, 400);
});

on_both_backends!(
    the_access_log_is_searched_only_by_what_it_keeps,
    async |s: &TestServer| {
        let served = [
            "_id",
            "patient",
            "date",
            "agent",
            "entity",
            "type",
            "subtype",
            "outcome",
            "_security",
        ];
        for refused in [
            "AuditEvent?action=R",
            "AuditEvent?_lastUpdated=ge2026",
            "AuditEvent?patient:missing=true",
            "AuditEvent?_sort=_id",
            "AuditEvent?_include=AuditEvent:agent",
            "AuditEvent?patient.identifier=x|1",
            "Patient?_revinclude=AuditEvent:patient",
        ] {
            let reply = s.get(refused).await;
            assert_eq!(reply.status, 400, "{refused}: {}", reply.text);
            let issue = reply.outcome_issue();
            let diagnostics = issue["diagnostics"].as_str().unwrap_or_default();
            assert!(
                diagnostics.contains("patient, date, agent, entity, type, subtype, outcome"),
                "{refused}: {diagnostics}"
            );
        }
        let reply = s
            .get("AuditEvent?patient=Patient/nobody&date=ge2020-01-01&_sort=-date&_total=accurate")
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["total"], 0);
        assert_eq!(s.get("AuditEvent/nothing").await.status, 404);
        assert_eq!(s.get("AuditEvent/nothing/_history/1").await.status, 404);

        let metadata = s.get("metadata").await;
        let entry = metadata.body["rest"][0]["resource"]
            .as_array()
            .and_then(|all| all.iter().find(|r| r["type"] == "AuditEvent"))
            .cloned()
            .unwrap_or_default();
        let mut names: Vec<&str> = entry["searchParam"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        names.sort_unstable();
        let mut expected = served.to_vec();
        expected.sort_unstable();
        assert_eq!(
            names, expected,
            "the CapabilityStatement lists exactly what is served"
        );
    }
);

on_both_backends!(bad_if_match_is_400, async |s: &TestServer| {
    let reply = Reply::send(
        s.request(reqwest::Method::PUT, "Patient/a")
            .header("content-type", "application/fhir+json")
            .header("if-match", "version two")
            .body(r#"{"resourceType":"Patient","id":"a"}"#),
    )
    .await;
    assert_eq!(reply.status, 400);
    reply.outcome_issue();
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_configured_limit_is_413() {
    let file = paraply_server::config::FileConfig {
        max_body_bytes: 1024,
        ..Default::default()
    };
    let bed = TestBed::start_with(Backend::Sqlite, file).await.unwrap();
    let s = &bed.server;
    let big = json!({"resourceType": "Patient", "name": [{"text": "x".repeat(2000)}]});
    let reply = s.post("Patient", &big).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.outcome_issue()["code"], "too-long");
    assert_eq!(
        s.post("Patient", &json!({"resourceType": "Patient"}))
            .await
            .status,
        201
    );
    bed.finish().await;
}
