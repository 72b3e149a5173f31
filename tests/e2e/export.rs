//! Bulk export (`$export`, FHIR Bulk Data Access R4) end to end, on SQLite and PostgreSQL: a
//! SMART Backend Services client of the real provider (`tests/idp`, `paraply-backend`,
//! private_key_jwt) kicks off, polls and downloads like a bulk-data client; every line is
//! checked by the independent R4 validator. Then the parameters, the three levels, cancel,
//! the refusals, the access log, and a synthetic population exported, loaded into an empty
//! Paraply and exported again.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use paraply_auth::{IssuerKind, TrustedIssuer};
use paraply_core::{Fhir, FhirRequest, Method};
use paraply_idp_harness::{Idp, backend_services_token, idp_available, login};
use paraply_server::config::{AuthMode, FileConfig};
use tokio::net::TcpListener;

use super::*;

const AUDIENCE: &str = "http://paraply.test/fhir";

fn idp() -> Option<&'static Idp> {
    static IDP: OnceLock<Option<Idp>> = OnceLock::new();
    IDP.get_or_init(|| idp_available().then(|| Idp::start(AUDIENCE, "")))
        .as_ref()
}

/// A server trusting the test issuers over a fresh database holding [`scene`].
struct Exporter {
    server: TestServer,
    database: TestDatabase,
    /// The engine over the same store, unrestricted: for setting the scene.
    fhir: Fhir,
}

impl Exporter {
    async fn start(backend: Backend) -> Option<Exporter> {
        let idp = idp()?;
        let database = TestDatabase::create(backend).await?;
        let file = FileConfig {
            issuer: vec![
                TrustedIssuer::new(&idp.citizen, AUDIENCE, IssuerKind::Citizen),
                TrustedIssuer::new(&idp.region, AUDIENCE, IssuerKind::Staff)
                    .with_huvudman("Organization/region"),
            ],
            ..FileConfig::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let server = TestServer::start_on(listener, &database.url, file, AuthMode::Oidc).await;
        let fhir = Fhir::new(server.store.clone());
        let exporter = Exporter {
            server,
            database,
            fhir,
        };
        exporter.write(scene()).await;
        Some(exporter)
    }

    async fn write(&self, bundle: Value) {
        let mut request = FhirRequest::new(Method::Post, "");
        request.body = Some(bundle);
        self.fhir
            .handle(request)
            .await
            .expect("the scene is written");
    }

    async fn finish(self) {
        self.server.stop().await;
        self.database.remove().await;
    }
}

fn put(resource: Value) -> Value {
    let url = format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    );
    json!({"resource": resource, "request": {"method": "PUT", "url": url}})
}

fn transaction(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

fn patient(id: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"family": family, "given": ["Test"]}]})
}

fn care_plan(id: &str, patient: &str, status: &str) -> Value {
    json!({"resourceType": "CarePlan", "id": id, "status": status, "intent": "plan",
           "subject": {"reference": format!("Patient/{patient}")}})
}

/// Two patients (p1 in Group g1), a CarePlan each (p1's active, p2's completed), a Goal of
/// p1's, and an Organization: no patient's data.
fn scene() -> Value {
    transaction(vec![
        put(patient("p1", "Ett")),
        put(patient("p2", "Två")),
        put(care_plan("cp1", "p1", "active")),
        put(care_plan("cp2", "p2", "completed")),
        put(
            json!({"resourceType": "Goal", "id": "g-p1", "lifecycleStatus": "active",
                   "description": {"text": "Gå till jobbet"},
                   "subject": {"reference": "Patient/p1"}}),
        ),
        put(json!({"resourceType": "Organization", "id": "org1", "name": "Vårdcentralen"})),
        put(
            json!({"resourceType": "Group", "id": "g1", "type": "person", "actual": true,
                   "member": [{"entity": {"reference": "Patient/p1"}}]}),
        ),
    ])
}

async fn system_token(scope: &str) -> String {
    backend_services_token(idp().expect("the IdP runs"), scope).await
}

async fn send(
    s: &TestServer,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    respond_async: bool,
) -> Reply {
    let mut request = s.client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if respond_async {
        request = request.header("prefer", "respond-async");
    }
    Reply::send(request.header("accept", "application/fhir+json")).await
}

/// A kick-off that must be accepted: the status URL it answers with.
async fn kick_off(s: &TestServer, token: Option<&str>, path: &str) -> String {
    let reply = send(s, reqwest::Method::GET, &s.url(path), token, true).await;
    assert_eq!(reply.status, 202, "{path}: {}", reply.text);
    let status = reply
        .header("content-location")
        .expect("a kick-off names its status URL")
        .to_owned();
    assert!(
        status.starts_with(&s.base),
        "the status URL {status} is built from the public base URL"
    );
    status
}

/// Polls until the manifest: `202` with `Retry-After` and `X-Progress` meanwhile. Long
/// enough for a job whose node stopped mid-work to be taken over when its lease runs out.
async fn finished(s: &TestServer, token: Option<&str>, status: &str) -> Value {
    for _ in 0..1800 {
        let reply = send(s, reqwest::Method::GET, status, token, false).await;
        match reply.status {
            200 => {
                assert!(
                    reply
                        .header("content-type")
                        .is_some_and(|c| c.starts_with("application/json"))
                );
                return reply.body;
            }
            202 => {
                assert!(
                    reply.header("retry-after").is_some(),
                    "202 without Retry-After"
                );
                assert!(
                    reply.header("x-progress").is_some(),
                    "202 without X-Progress"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("status {other}: {}", reply.text),
        }
    }
    panic!("the export did not finish");
}

/// Every file of a manifest, downloaded with the token: type → lines (each checked as JSON
/// and, all together, by the independent R4 validator).
async fn download(
    s: &TestServer,
    token: Option<&str>,
    manifest: &Value,
) -> BTreeMap<String, Vec<Value>> {
    assert_eq!(manifest["requiresAccessToken"], true);
    assert_eq!(manifest["error"], json!([]));
    let mut files = BTreeMap::new();
    let mut texts = Vec::new();
    for output in manifest["output"].as_array().expect("output") {
        let url = output["url"].as_str().unwrap();
        assert!(url.starts_with(&s.base), "{url}");
        let mut request = s
            .client
            .get(url)
            .header("accept", "application/fhir+ndjson");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the file downloads");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/fhir+ndjson"
        );
        let text = response.text().await.unwrap();
        let resource_type = output["type"].as_str().unwrap().to_owned();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| {
                texts.push((
                    format!("{resource_type}-{}.json", texts.len()),
                    line.to_owned(),
                ));
                serde_json::from_str(line).expect("every line is JSON")
            })
            .collect();
        assert_eq!(
            lines.len() as u64,
            output["count"].as_u64().unwrap(),
            "{resource_type}: the manifest's count"
        );
        assert!(
            lines
                .iter()
                .all(|l| l["resourceType"] == resource_type.as_str())
        );
        files.insert(resource_type, lines);
    }
    let documents: Vec<(&str, &str)> = texts
        .iter()
        .map(|(name, text)| (name.as_str(), text.as_str()))
        .collect();
    paraply_fhir_validator::assert_valid(&documents);
    files
}

fn ids(files: &BTreeMap<String, Vec<Value>>, resource_type: &str) -> Vec<String> {
    let mut ids: Vec<String> = files
        .get(resource_type)
        .into_iter()
        .flatten()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// The exports in the access log: each entry's logged query and its detail (type → count).
async fn logged_exports(s: &TestServer, token: &str) -> Vec<(String, Vec<(String, String)>)> {
    let reply = send(
        s,
        reqwest::Method::GET,
        &s.url("AuditEvent?subtype=operation&_count=100"),
        Some(token),
        false,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    use base64::Engine as _;
    reply.body["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| {
            e["resource"]["entity"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|entity| {
            let query = base64::engine::general_purpose::STANDARD
                .decode(entity["query"].as_str()?)
                .ok()?;
            let detail = entity["detail"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    (
                        d["type"].as_str().unwrap().to_owned(),
                        d["valueString"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            Some((String::from_utf8_lossy(&query).into_owned(), detail))
        })
        .filter(|(query, _)| query.contains("$export"))
        .collect()
}

macro_rules! on_both_backends_exporting {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            async fn run_on(backend: Backend) {
                let Some(exporter) = Exporter::start(backend).await else {
                    return;
                };
                ($body)(&exporter).await;
                exporter.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run_on(Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run_on(Backend::Postgres).await;
            }
        }
    };
}

on_both_backends_exporting!(
    a_backend_services_client_exports_what_stood_at_the_kick_off,
    async |e: &Exporter| {
        let s = &e.server;
        let token = system_token("system/*.rs").await;
        let status = kick_off(
            s,
            Some(&token),
            "$export?_type=Patient,CarePlan,Goal,Organization,Group",
        )
        .await;
        // Written after the kick-off: neither the new patient nor p1's new name is exported.
        e.write(transaction(vec![
            put(patient("p1", "Ändrad")),
            put(patient("p3", "Tre")),
        ]))
        .await;
        let manifest = finished(s, Some(&token), &status).await;
        assert!(manifest["transactionTime"].as_str().is_some());
        assert!(
            manifest["request"]
                .as_str()
                .is_some_and(|r| r.starts_with(&s.base) && r.contains("$export"))
        );
        let files = download(s, Some(&token), &manifest).await;
        assert_eq!(ids(&files, "Patient"), ["p1", "p2"]);
        assert_eq!(ids(&files, "CarePlan"), ["cp1", "cp2"]);
        assert_eq!(ids(&files, "Goal"), ["g-p1"]);
        assert_eq!(ids(&files, "Organization"), ["org1"]);
        assert_eq!(ids(&files, "Group"), ["g1"]);
        let p1 = files["Patient"].iter().find(|p| p["id"] == "p1").unwrap();
        assert_eq!(p1["name"][0]["family"], "Ett");
        assert_eq!(p1["meta"]["versionId"], "1");
        // The files stay the same however often they are read.
        assert_eq!(download(s, Some(&token), &manifest).await, files);
        // One AuditEvent for the export, naming what was asked and what it holds.
        let logged = logged_exports(s, &token).await;
        assert_eq!(logged.len(), 1, "{logged:?}");
        let (query, detail) = &logged[0];
        assert!(query.contains("_type=Patient"), "{query}");
        let count = |t: &str| detail.iter().find(|(k, _)| k == t).map(|(_, v)| v.as_str());
        assert_eq!(count("Patient"), Some("2"), "{detail:?}");
        assert_eq!(count("CarePlan"), Some("2"), "{detail:?}");
        assert_eq!(count("Goal"), Some("1"), "{detail:?}");
    }
);

on_both_backends_exporting!(
    since_and_type_filter_narrow_the_files,
    async |e: &Exporter| {
        let s = &e.server;
        let token = system_token("system/*.rs").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let since = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        e.write(transaction(vec![put(patient("p2", "Två igen"))]))
            .await;
        let query = format!(
            "$export?_type=Patient,CarePlan&_since={}",
            url_encode(&since)
        );
        let manifest = finished(s, Some(&token), &kick_off(s, Some(&token), &query).await).await;
        let files = download(s, Some(&token), &manifest).await;
        assert_eq!(ids(&files, "Patient"), ["p2"]);
        assert!(
            ids(&files, "CarePlan").is_empty(),
            "no CarePlan changed since"
        );

        let query = format!(
            "$export?_type=CarePlan,Patient&_typeFilter={}",
            url_encode("CarePlan?status=active")
        );
        let manifest = finished(s, Some(&token), &kick_off(s, Some(&token), &query).await).await;
        let files = download(s, Some(&token), &manifest).await;
        assert_eq!(ids(&files, "CarePlan"), ["cp1"]);
        assert_eq!(ids(&files, "Patient"), ["p1", "p2"]);

        // Scopes of one type: only that type, and asking for another is refused.
        let token = system_token("system/Patient.rs").await;
        let manifest = finished(s, Some(&token), &kick_off(s, Some(&token), "$export").await).await;
        let files = download(s, Some(&token), &manifest).await;
        assert_eq!(files.keys().collect::<Vec<_>>(), ["Patient"]);
        let refused = send(
            s,
            reqwest::Method::GET,
            &s.url("$export?_type=CarePlan"),
            Some(&token),
            true,
        )
        .await;
        assert_eq!(refused.status, 403, "{}", refused.text);
        assert_eq!(refused.outcome_issue()["code"], "forbidden");
    }
);

on_both_backends_exporting!(
    patient_and_group_level_export_compartments,
    async |e: &Exporter| {
        let s = &e.server;
        let token = system_token("system/*.rs").await;
        let manifest = finished(
            s,
            Some(&token),
            &kick_off(s, Some(&token), "Patient/$export").await,
        )
        .await;
        let files = download(s, Some(&token), &manifest).await;
        assert_eq!(ids(&files, "Patient"), ["p1", "p2"]);
        assert_eq!(ids(&files, "CarePlan"), ["cp1", "cp2"]);
        assert!(!files.contains_key("Organization"), "no patient's data");

        let manifest = finished(
            s,
            Some(&token),
            &kick_off(s, Some(&token), "Group/g1/$export").await,
        )
        .await;
        let files = download(s, Some(&token), &manifest).await;
        assert_eq!(ids(&files, "Patient"), ["p1"]);
        assert_eq!(ids(&files, "CarePlan"), ["cp1"]);
        assert_eq!(ids(&files, "Goal"), ["g-p1"]);

        let unknown = send(
            s,
            reqwest::Method::GET,
            &s.url("Group/nobody/$export"),
            Some(&token),
            true,
        )
        .await;
        assert_eq!(unknown.status, 404, "{}", unknown.text);
    }
);

on_both_backends_exporting!(a_cancelled_export_is_gone, async |e: &Exporter| {
    let s = &e.server;
    let token = system_token("system/*.rs").await;
    let status = kick_off(s, Some(&token), "$export").await;
    let cancelled = send(s, reqwest::Method::DELETE, &status, Some(&token), false).await;
    assert_eq!(cancelled.status, 202, "{}", cancelled.text);
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let gone = send(s, method, &status, Some(&token), false).await;
        assert_eq!(gone.status, 404, "{}", gone.text);
        assert_eq!(gone.outcome_issue()["code"], "not-found");
    }
    let nonsense = send(
        s,
        reqwest::Method::GET,
        &format!("{}/$export-status/nonsense", s.base),
        Some(&token),
        false,
    )
    .await;
    assert_eq!(nonsense.status, 404);
});

on_both_backends_exporting!(
    smart_configuration_tells_a_backend_client_how_to_get_a_token,
    async |e: &Exporter| {
        let s = &e.server;
        let reply = Reply::send(
            s.client
                .get(format!("{}/.well-known/smart-configuration", s.root)),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let has = |key: &str, value: &str| {
            reply.body[key]
                .as_array()
                .is_some_and(|values| values.iter().any(|v| v == value))
        };
        assert!(has(
            "token_endpoint_auth_methods_supported",
            "private_key_jwt"
        ));
        assert!(has(
            "token_endpoint_auth_signing_alg_values_supported",
            "RS384"
        ));
        assert!(has("grant_types_supported", "client_credentials"));
        assert!(has("capabilities", "client-confidential-asymmetric"));
        assert!(has("scopes_supported", "system/*.rs"));
    }
);

on_both_backends_exporting!(
    export_is_refused_to_all_but_system_clients_and_to_bad_requests,
    async |e: &Exporter| {
        let s = &e.server;
        let idp = idp().unwrap();
        let system = system_token("system/*.rs").await;
        let status = kick_off(s, Some(&system), "$export").await;

        let none = send(s, reqwest::Method::GET, &s.url("$export"), None, true).await;
        assert_eq!(none.status, 401);
        assert_eq!(none.outcome_issue()["code"], "login");
        let none = send(s, reqwest::Method::GET, &status, None, false).await;
        assert_eq!(none.status, 401);

        let patient = login(&idp.citizen, "tolvan", "openid patient/*.rs", AUDIENCE)
            .await
            .access;
        let staff = login(&idp.region, "anna", "openid user/*.rs", AUDIENCE)
            .await
            .access;
        for token in [&patient, &staff] {
            let refused = send(
                s,
                reqwest::Method::GET,
                &s.url("$export"),
                Some(token),
                true,
            )
            .await;
            assert_eq!(refused.status, 403, "{}", refused.text);
            assert_eq!(refused.outcome_issue()["code"], "forbidden");
            let refused = send(s, reqwest::Method::GET, &status, Some(token), false).await;
            assert_eq!(refused.status, 403, "{}", refused.text);
        }

        for (path, prefer) in [
            ("$export", false),
            ("$export?_typeFilter=CarePlan%3Fnonsense%3D1", true),
            ("$export?_type=Nonsense", true),
            ("$export?_outputFormat=application%2Ffhir%2Bjson", true),
            ("$export?_since=yesterday", true),
        ] {
            let refused = send(s, reqwest::Method::GET, &s.url(path), Some(&system), prefer).await;
            assert_eq!(refused.status, 400, "{path}: {}", refused.text);
            assert_eq!(refused.outcome_issue()["severity"], "error");
        }
    }
);

fn url_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A population exported from one Paraply and loaded into an empty one exports as the same
/// resources (bodies without `meta`; Provenance is each server's own record of its writes).
async fn round_trip(backend: Backend) {
    let Some(source) = TestBed::start(backend).await else {
        return;
    };
    let options = paraply_synth::SynthOptions {
        patients: 6,
        ..paraply_synth::SynthOptions::default()
    };
    paraply_synth::load(&source.server.base, &options, 2)
        .await
        .unwrap_or_else(|error| panic!("the population loads: {error}"));
    let exported = export_all(&source.server).await;
    assert!(exported["Patient"].len() == 6, "{:?}", exported.keys());

    let Some(target) = TestBed::start(backend).await else {
        return;
    };
    let entries: Vec<Value> = exported
        .iter()
        .filter(|(t, _)| t.as_str() != "Provenance")
        .flat_map(|(_, lines)| lines.iter().cloned())
        .map(put)
        .collect();
    let loaded = target.server.post("", &transaction(entries)).await;
    assert_eq!(loaded.status, 200, "{}", loaded.text);
    let again = export_all(&target.server).await;
    let comparable = |files: &BTreeMap<String, Vec<Value>>| -> BTreeMap<String, Vec<Value>> {
        files
            .iter()
            .filter(|(t, _)| t.as_str() != "Provenance")
            .map(|(t, lines)| {
                let mut bodies: Vec<Value> = lines
                    .iter()
                    .map(|line| {
                        let mut body = line.clone();
                        body.as_object_mut().unwrap().remove("meta");
                        body
                    })
                    .collect();
                bodies.sort_by_key(|b| b["id"].as_str().unwrap().to_owned());
                (t.clone(), bodies)
            })
            .collect()
    };
    assert_eq!(comparable(&again), comparable(&exported));
    source.finish().await;
    target.finish().await;
}

/// A system export without logins (`--auth none`: the server itself exports).
async fn export_all(s: &TestServer) -> BTreeMap<String, Vec<Value>> {
    let status = kick_off(s, None, "$export").await;
    let manifest = finished(s, None, &status).await;
    download(s, None, &manifest).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_population_round_trips_through_export_on_sqlite() {
    round_trip(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_population_round_trips_through_export_on_postgres() {
    round_trip(Backend::Postgres).await;
}

/// Jobs live in the database, not in a node: a job kicked off on one node is answered,
/// worked and downloaded by another, even once the first has stopped.
async fn any_node_answers(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let first = TestServer::start(&database.url, FileConfig::default()).await;
    let second = TestServer::start(&database.url, FileConfig::default()).await;
    let loaded = first.post("", &scene()).await;
    assert_eq!(loaded.status, 200, "{}", loaded.text);
    let status = kick_off(&first, None, "$export?_type=Patient,CarePlan").await;
    let status = status.replacen(&first.base, &second.base, 1);
    first.stop().await;
    let manifest = finished(&second, None, &status).await;
    let files = download(&second, None, &manifest).await;
    assert_eq!(ids(&files, "Patient"), ["p1", "p2"]);
    assert_eq!(ids(&files, "CarePlan"), ["cp1", "cp2"]);
    second.stop().await;
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_answers_any_job_on_sqlite() {
    any_node_answers(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_answers_any_job_on_postgres() {
    any_node_answers(Backend::Postgres).await;
}

on_both_backends_with!(
    an_export_expires_after_the_setting,
    FileConfig {
        export: paraply_server::config::ExportConfig { expire_minutes: 1 },
        ..FileConfig::default()
    },
    async |s: &TestServer| {
        assert_eq!(
            s.put("Patient/p1", &patient("p1", "Kvar")).await.status,
            201
        );
        let kicked_off = std::time::Instant::now();
        let status = kick_off(s, None, "$export?_type=Patient").await;
        let manifest = finished(s, None, &status).await;
        assert_eq!(ids(&download(s, None, &manifest).await, "Patient"), ["p1"]);
        tokio::time::sleep(Duration::from_secs(61).saturating_sub(kicked_off.elapsed())).await;
        let gone = send(s, reqwest::Method::GET, &status, None, false).await;
        assert_eq!(gone.status, 404, "{}", gone.text);
        assert_eq!(gone.outcome_issue()["code"], "not-found");
        let file = format!(
            "{}/Patient.ndjson",
            status.replace("$export-status", "$export-file")
        );
        let gone = send(s, reqwest::Method::GET, &file, None, false).await;
        assert_eq!(gone.status, 404, "{}", gone.text);
    }
);

on_both_backends!(
    the_capability_statement_declares_the_export_operations,
    async |s: &TestServer| {
        let statement = s.get("metadata").await.body;
        let rest = &statement["rest"][0];
        let declares = |operations: &Value, definition: &str| {
            operations.as_array().is_some_and(|ops| {
                ops.iter()
                    .any(|op| op["name"] == "export" && op["definition"] == definition)
            })
        };
        assert!(declares(
            &rest["operation"],
            "https://paraply.se/fhir/OperationDefinition/export"
        ));
        let of = |t: &str| {
            rest["resource"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["type"] == t)
                .unwrap()["operation"]
                .clone()
        };
        assert!(declares(
            &of("Patient"),
            "https://paraply.se/fhir/OperationDefinition/patient-export"
        ));
        assert!(declares(
            &of("Group"),
            "https://paraply.se/fhir/OperationDefinition/group-export"
        ));
        for id in ["export", "patient-export", "group-export"] {
            let definition = s.get(&format!("OperationDefinition/{id}")).await;
            assert_eq!(definition.status, 200, "{id}");
            assert_eq!(definition.body["code"], "export");
        }
    }
);
