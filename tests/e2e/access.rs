//! Logins and access rules end to end (DOMAIN.md I11–I15): tokens from the real OpenID
//! providers of `tests/idp`, a server that trusts them, and the attack suite of issue 4 —
//! every case refused, on SQLite and PostgreSQL.
//!
//! One provider process serves the whole test binary: every server trusts the same issuers
//! with the same audience (`AUDIENCE`, which need not be the server's own URL), so tokens
//! are fetched once per person and reused.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use paraply_auth::{IssuerKind, TrustedIssuer};
use paraply_core::{Fhir, FhirRequest, Method};
use paraply_fhir::codes::{CARE_PROVIDER_TAG_SYSTEM, NOTE_VISIBILITY_URL};
use paraply_idp_harness::{
    Idp, TEST_RSA_PEM, TestIssuer, client_credentials, http, idp_available, login, now,
    unverified_part,
};
use paraply_server::config::{AuthMode, FileConfig};
use tokio::net::TcpListener;

use super::*;

const AUDIENCE: &str = "http://paraply.test/fhir";
const PNR: &str = "http://electronichealth.se/identifier/personnummer";
const HSA: &str = "urn:oid:1.2.752.29.4.19";
const REGION_HSA: &str = "SE2321000016-0001";

fn idp() -> Option<&'static Idp> {
    static IDP: OnceLock<Option<Idp>> = OnceLock::new();
    IDP.get_or_init(|| idp_available().then(|| Idp::start(AUDIENCE, "")))
        .as_ref()
}

/// An issuer the servers trust whose key the tests hold: for tokens the real provider will
/// not mint (expired, not yet valid, unknown key id).
fn own_issuer() -> &'static TestIssuer {
    static ISSUER: OnceLock<TestIssuer> = OnceLock::new();
    ISSUER.get_or_init(TestIssuer::start)
}

/// A well-behaved issuer nobody configured.
fn untrusted_issuer() -> &'static TestIssuer {
    static ISSUER: OnceLock<TestIssuer> = OnceLock::new();
    ISSUER.get_or_init(TestIssuer::start)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    /// Patient Tolvan Tolvansson.
    Tolvan,
    /// Lisa, Tolvan's relative (närstående) with his consent.
    Lisa,
    /// Karin Svensson, a patient.
    Karin,
    /// Anna Berg, physician at Vårdcentralen Solna: Tolvan's and Karin's fast läkarkontakt.
    Anna,
    /// Erik Lund, nurse at Geriatriska mottagningen: Karin's contact, blocked by her spärr.
    Erik,
    /// Maria Nilsson, home-care nurse of Solna stad: in Tolvan's SIP team.
    Maria,
    /// A system client (client credentials, `system/*.cruds`).
    System,
}

/// A genuine access token for `who`, from the real provider (cached per test binary).
async fn token(who: Who) -> String {
    static TOKENS: OnceLock<Mutex<HashMap<Who, String>>> = OnceLock::new();
    let cache = TOKENS.get_or_init(Mutex::default);
    if let Some(token) = cache.lock().expect("token cache").get(&who) {
        return token.clone();
    }
    let idp = idp().expect("the IdP runs when a World exists");
    let citizen = "openid patient/*.cruds";
    let staff = "openid user/*.cruds";
    let token = match who {
        Who::Tolvan => {
            login(&idp.citizen, "tolvan", citizen, AUDIENCE)
                .await
                .access
        }
        Who::Lisa => login(&idp.citizen, "lisa", citizen, AUDIENCE).await.access,
        Who::Karin => login(&idp.citizen, "karin", citizen, AUDIENCE).await.access,
        Who::Anna => login(&idp.region, "anna", staff, AUDIENCE).await.access,
        Who::Erik => login(&idp.region, "erik", staff, AUDIENCE).await.access,
        Who::Maria => login(&idp.kommun, "maria", staff, AUDIENCE).await.access,
        Who::System => client_credentials(&idp.region, "system/*.cruds", AUDIENCE).await,
    };
    cache
        .lock()
        .expect("token cache")
        .insert(who, token.clone());
    token
}

/// A server trusting the test issuers, over a fresh database holding [`world_bundle`].
struct World {
    server: TestServer,
    database: TestDatabase,
    /// The engine over the same store, unrestricted: for setting the scene.
    fhir: Fhir,
}

impl World {
    async fn start(backend: Backend) -> Option<World> {
        let idp = idp()?;
        let database = TestDatabase::create(backend).await?;
        let issuers = vec![
            TrustedIssuer::new(&idp.citizen, AUDIENCE, IssuerKind::Citizen),
            TrustedIssuer::new(&idp.region, AUDIENCE, IssuerKind::Staff)
                .with_huvudman("Organization/region"),
            TrustedIssuer::new(&idp.kommun, AUDIENCE, IssuerKind::Staff)
                .with_huvudman("Organization/solna-stad"),
            TrustedIssuer::new(&own_issuer().issuer, AUDIENCE, IssuerKind::Citizen),
        ];
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let file = FileConfig {
            issuer: issuers,
            ..FileConfig::default()
        };
        let server = TestServer::start_on(listener, &database.url, file, AuthMode::Oidc).await;
        let fhir = Fhir::new(server.store.clone());
        let mut load = FhirRequest::new(Method::Post, "");
        load.body = Some(world_bundle());
        fhir.handle(load).await.expect("the scene loads");
        Some(World {
            server,
            database,
            fhir,
        })
    }

    async fn finish(self) {
        self.server.stop().await;
        self.database.remove().await;
    }

    async fn send(
        &self,
        who: Who,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self
            .server
            .request(method, path)
            .bearer_auth(token(who).await);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/fhir+json")
                .body(body.to_string());
        }
        Reply::send(request).await
    }

    async fn get(&self, who: Who, path: &str) -> Reply {
        self.send(who, reqwest::Method::GET, path, None).await
    }

    async fn post(&self, who: Who, path: &str, body: &Value) -> Reply {
        self.send(who, reqwest::Method::POST, path, Some(body))
            .await
    }

    async fn with_token(&self, token: &str, path: &str) -> Reply {
        Reply::send(
            self.server
                .request(reqwest::Method::GET, path)
                .bearer_auth(token),
        )
        .await
    }

    /// Changes the scene as the server itself.
    async fn put_unrestricted(&self, resource: Value) {
        let path = format!(
            "{}/{}",
            resource["resourceType"].as_str().unwrap_or(""),
            resource["id"].as_str().unwrap_or("")
        );
        let mut request = FhirRequest::new(Method::Put, path);
        request.body = Some(resource);
        self.fhir.handle(request).await.expect("the scene changes");
    }
}

async fn run_case(backend: Backend, body: impl AsyncFnOnce(&World)) {
    let Some(world) = World::start(backend).await else {
        return;
    };
    body(&world).await;
    world.finish().await;
}

macro_rules! access_case {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run_case(Backend::Sqlite, $body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run_case(Backend::Postgres, $body).await;
            }
        }
    };
}

fn reference(target: &str) -> Value {
    json!({ "reference": target })
}

fn region_owned() -> Value {
    json!({"tag": [{"system": CARE_PROVIDER_TAG_SYSTEM, "code": REGION_HSA}]})
}

fn consent(id: &str, patient: &str, kind: &str, actor: &str) -> Value {
    json!({"resourceType": "Consent", "id": id, "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": reference(patient),
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": if kind == "deny" { "OPTOUT" } else { "OPTIN" }}]},
        "provision": {"type": kind, "actor": [{
            "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
            "reference": reference(actor)}]}})
}

fn organization(id: &str, hsa: &str, name: &str, part_of: Option<&str>) -> Value {
    let mut org = json!({"resourceType": "Organization", "id": id, "active": true, "name": name,
        "identifier": [{"system": HSA, "value": hsa}]});
    if let Some(parent) = part_of {
        org["partOf"] = reference(parent);
    }
    org
}

fn practitioner(id: &str, hsa: &str) -> Value {
    json!({"resourceType": "Practitioner", "id": id, "active": true,
        "identifier": [{"system": HSA, "value": hsa}]})
}

fn role(id: &str, practitioner: &str, unit: &str) -> Value {
    json!({"resourceType": "PractitionerRole", "id": id, "active": true,
        "practitioner": reference(practitioner), "organization": reference(unit)})
}

fn patient(id: &str, pnr: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id,
        "identifier": [{"system": PNR, "value": pnr}], "name": [{"family": family}]})
}

/// A CareTeam with one PractitionerRole member (whose `organization` is the unit; R4 ctm-1
/// allows `onBehalfOf` only for a Practitioner member). A fast kontakt's member carries its
/// role from 1.2.752.129.5.1.69 (I4): 1 fast vårdkontakt, 2 fast läkarkontakt.
fn care_team(id: &str, patient: &str, category: &str, member: &str, role: Option<&str>) -> Value {
    let mut participant = json!({"member": reference(member)});
    if let Some(code) = role {
        participant["role"] =
            json!([{"coding": [{"system": "urn:oid:1.2.752.129.5.1.69", "code": code}]}]);
    }
    json!({"resourceType": "CareTeam", "id": id, "status": "active",
        "category": [{"coding": [{"system": "https://paraply.se/fhir/CodeSystem/care-team-category", "code": category}]}],
        "subject": reference(patient),
        "participant": [participant]})
}

fn care_plan(id: &str, patient: &str, title: &str) -> Value {
    json!({"resourceType": "CarePlan", "id": id, "status": "active", "intent": "plan",
        "title": title, "subject": reference(patient)})
}

/// The scene: a region (two units) and a municipality, their staff, two patients, a relative.
pub(super) fn world_bundle() -> Value {
    let mut ct_tolvan = care_team(
        "ct-tolvan-anna",
        "Patient/tolvan",
        "fast-kontakt",
        "PractitionerRole/anna-vc",
        Some("2"),
    );
    ct_tolvan["note"] = json!([
        {"text": "Ring på förmiddagen"},
        {"text": "Intern anteckning: svårt att nå per telefon",
         "extension": [{"url": NOTE_VISIBILITY_URL, "valueCode": "internal"}]}
    ]);
    let mut region_plan = care_plan("plan-region-tolvan", "Patient/tolvan", "Min vårdplan");
    region_plan["meta"] = region_owned();
    let mut sip = care_plan("sip-tolvan", "Patient/tolvan", "SIP");
    sip["meta"] = region_owned();
    sip["author"] = reference("Organization/region");
    sip["contributor"] = json!([reference("Organization/solna-stad")]);
    let mut karin_plan = care_plan("plan-karin", "Patient/karin", "Rehabplan");
    karin_plan["meta"] = region_owned();
    let resources = vec![
        organization("region", REGION_HSA, "Region Stockholm", None),
        organization(
            "vc-solna",
            "SE2321000016-15CQ",
            "Vårdcentralen Solna",
            Some("Organization/region"),
        ),
        organization(
            "geriatrik",
            "SE2321000016-7GER",
            "Geriatriska mottagningen Solna",
            Some("Organization/region"),
        ),
        organization("solna-stad", "SE2120001314-0001", "Solna stad", None),
        organization(
            "hemsjukvard",
            "SE2120001314-HS01",
            "Hemsjukvården Solna",
            Some("Organization/solna-stad"),
        ),
        practitioner("anna", "SE2321000016-1003"),
        practitioner("erik", "SE2321000016-2004"),
        practitioner("maria", "SE2120001314-3001"),
        role("anna-vc", "Practitioner/anna", "Organization/vc-solna"),
        role("erik-ger", "Practitioner/erik", "Organization/geriatrik"),
        role("maria-hs", "Practitioner/maria", "Organization/hemsjukvard"),
        patient("tolvan", "191212121212", "Tolvansson"),
        patient("karin", "197001011233", "Svensson"),
        json!({"resourceType": "RelatedPerson", "id": "lisa", "active": true,
            "patient": reference("Patient/tolvan"),
            "identifier": [{"system": PNR, "value": "198505052384"}]}),
        consent(
            "lisa-consent",
            "Patient/tolvan",
            "permit",
            "RelatedPerson/lisa",
        ),
        ct_tolvan,
        care_team(
            "sip-team-tolvan",
            "Patient/tolvan",
            "sip-team",
            "PractitionerRole/maria-hs",
            None,
        ),
        care_plan("umbrella-tolvan", "Patient/tolvan", "Patientkontrakt"),
        region_plan,
        sip,
        json!({"resourceType": "Goal", "id": "goal-tolvan", "lifecycleStatus": "active",
            "description": {"text": "Kunna gå till affären själv"}, "subject": reference("Patient/tolvan")}),
        json!({"resourceType": "Appointment", "id": "appt-tolvan", "status": "booked",
            "start": "2026-12-01T09:00:00+01:00", "end": "2026-12-01T09:30:00+01:00",
            "participant": [
                {"actor": reference("Patient/tolvan"), "status": "accepted"},
                {"actor": reference("Patient/karin"), "status": "accepted"},
                {"actor": reference("PractitionerRole/anna-vc"), "status": "accepted"}]}),
        care_team(
            "ct-karin-anna",
            "Patient/karin",
            "fast-kontakt",
            "PractitionerRole/anna-vc",
            Some("2"),
        ),
        care_team(
            "ct-karin-erik",
            "Patient/karin",
            "fast-kontakt",
            "PractitionerRole/erik-ger",
            Some("1"),
        ),
        karin_plan,
        consent(
            "sparr-karin",
            "Patient/karin",
            "deny",
            "Organization/geriatrik",
        ),
    ];
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|resource| {
            let url = format!(
                "{}/{}",
                resource["resourceType"].as_str().unwrap_or(""),
                resource["id"].as_str().unwrap_or("")
            );
            json!({"resource": resource, "request": {"method": "PUT", "url": url}})
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

fn ids(reply: &Reply) -> Vec<String> {
    reply.body["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| {
                    let r = &e["resource"];
                    Some(format!(
                        "{}/{}",
                        r["resourceType"].as_str()?,
                        r["id"].as_str()?
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn assert_forbidden(reply: &Reply) {
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.outcome_issue()["code"], "forbidden", "{}", reply.text);
}

fn assert_unauthorized(reply: &Reply) {
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")),
        "401 needs WWW-Authenticate: {:?}",
        reply.headers
    );
    reply.outcome_issue();
}

// ---------------------------------------------------------------------------------------------
// Patients

access_case!(patient_reads_own_data, async |w: &World| {
    for path in [
        "Patient/tolvan",
        "CarePlan/umbrella-tolvan",
        "CarePlan/plan-region-tolvan",
        "Goal/goal-tolvan",
    ] {
        let reply = w.get(Who::Tolvan, path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    }
    let plans = w.get(Who::Tolvan, "CarePlan").await;
    assert_eq!(plans.body["total"], 3, "{}", plans.text);
});

access_case!(
    patient_cannot_read_another_patient_by_id,
    async |w: &World| {
        assert_forbidden(&w.get(Who::Tolvan, "Patient/karin").await);
        assert_forbidden(&w.get(Who::Tolvan, "CarePlan/plan-karin").await);
        assert_forbidden(&w.get(Who::Tolvan, "CarePlan/plan-karin/_history/1").await);
        assert_forbidden(&w.get(Who::Tolvan, "CarePlan/plan-karin/_history").await);
    }
);

access_case!(
    patient_cannot_find_another_patient_by_search,
    async |w: &World| {
        let reply = w.get(Who::Tolvan, "CarePlan?patient=Patient/karin").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["total"], 0, "{}", reply.text);
        let patients = w.get(Who::Tolvan, "Patient").await;
        assert_eq!(ids(&patients), vec!["Patient/tolvan"]);
        let everything = w.get(Who::Tolvan, "CareTeam").await;
        assert!(
            ids(&everything).iter().all(|id| !id.contains("karin")),
            "{}",
            everything.text
        );
    }
);

access_case!(
    patient_cannot_reach_another_patient_by_include,
    async |w: &World| {
        let reply = w
            .get(
                Who::Tolvan,
                "Appointment?patient=Patient/tolvan&_include=Appointment:actor",
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let found = ids(&reply);
        assert!(
            found.contains(&"Appointment/appt-tolvan".to_owned()),
            "{found:?}"
        );
        assert!(
            found.contains(&"PractitionerRole/anna-vc".to_owned()),
            "{found:?}"
        );
        assert!(!found.contains(&"Patient/karin".to_owned()), "{found:?}");
        let reverse = w
            .get(Who::Tolvan, "Patient?_revinclude=CarePlan:subject")
            .await;
        assert!(
            !ids(&reverse).contains(&"CarePlan/plan-karin".to_owned()),
            "{}",
            reverse.text
        );
    }
);

access_case!(
    patient_cannot_probe_another_patient_by_chain_or_has,
    async |w: &World| {
        let chained = w
            .get(
                Who::Tolvan,
                &format!("CareTeam?patient.identifier={PNR}|197001011233"),
            )
            .await;
        assert_eq!(chained.status, 200, "{}", chained.text);
        assert_eq!(chained.body["total"], 0, "{}", chained.text);
        let has = w
            .get(Who::Tolvan, "Patient?_has:CarePlan:subject:_id=plan-karin")
            .await;
        assert_eq!(has.body["total"], 0, "{}", has.text);
    }
);

access_case!(
    patient_cannot_read_another_patient_inside_a_bundle,
    async |w: &World| {
        let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": "Patient/karin"}}]});
        let refused = "patient=Patient/karin&outcome=4";
        let before = w.audit_count(refused).await;
        assert_forbidden(&w.post(Who::Tolvan, "", &transaction).await);
        // The transaction is rolled back; its refusal is still in the log.
        assert_eq!(w.audit_count(refused).await, before + 1);
        let foreign_goal = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Goal"},
         "resource": {"resourceType": "Goal", "lifecycleStatus": "proposed",
            "description": {"text": "x"}, "subject": reference("Patient/karin")}}]});
        assert_forbidden(&w.post(Who::Tolvan, "", &foreign_goal).await);
        assert_eq!(w.audit_count(refused).await, before + 2);
        let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/tolvan"}},
        {"request": {"method": "GET", "url": "Patient/karin"}}]});
        let reply = w.post(Who::Tolvan, "", &batch).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(
            reply.body["entry"][0]["response"]["status"]
                .as_str()
                .is_some_and(|s| s.starts_with("200"))
        );
        assert!(
            reply.body["entry"][1]["response"]["status"]
                .as_str()
                .is_some_and(|s| s.starts_with("403")),
            "{}",
            reply.text
        );
    }
);

access_case!(patient_writes_only_own_portal_data, async |w: &World| {
    let own_goal = json!({"resourceType": "Goal", "lifecycleStatus": "proposed",
        "description": {"text": "Sova bättre"}, "subject": reference("Patient/tolvan"),
        "expressedBy": reference("Patient/tolvan")});
    let created = w.post(Who::Tolvan, "Goal", &own_goal).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let mut foreign_goal = own_goal.clone();
    foreign_goal["subject"] = reference("Patient/karin");
    assert_forbidden(&w.post(Who::Tolvan, "Goal", &foreign_goal).await);
    assert_forbidden(
        &w.post(
            Who::Tolvan,
            "CarePlan",
            &care_plan("x", "Patient/tolvan", "Egen plan"),
        )
        .await,
    );
    // Nothing of the refused writes was stored.
    let goals = w.get(Who::Anna, "Goal?patient=Patient/karin").await;
    assert_eq!(goals.body["total"], 0, "{}", goals.text);
});

access_case!(internal_notes_never_reach_the_patient, async |w: &World| {
    let patient_view = w.get(Who::Tolvan, "CareTeam/ct-tolvan-anna").await;
    assert_eq!(patient_view.status, 200, "{}", patient_view.text);
    assert!(patient_view.text.contains("Ring på förmiddagen"));
    assert!(
        !patient_view.text.contains("Intern anteckning"),
        "{}",
        patient_view.text
    );
    let staff_view = w.get(Who::Anna, "CareTeam/ct-tolvan-anna").await;
    assert!(
        staff_view.text.contains("Intern anteckning"),
        "{}",
        staff_view.text
    );
});

// ---------------------------------------------------------------------------------------------
// Relatives

access_case!(
    relative_reads_with_consent_and_not_after_it_is_revoked,
    async |w: &World| {
        assert_eq!(w.get(Who::Lisa, "Goal/goal-tolvan").await.status, 200);
        assert_forbidden(&w.get(Who::Lisa, "CarePlan/plan-karin").await);
        let mut revoked = consent(
            "lisa-consent",
            "Patient/tolvan",
            "permit",
            "RelatedPerson/lisa",
        );
        revoked["status"] = json!("inactive");
        w.put_unrestricted(revoked).await;
        assert_forbidden(&w.get(Who::Lisa, "Goal/goal-tolvan").await);
        let search = w.get(Who::Lisa, "Goal").await;
        assert_eq!(search.body["total"], 0, "{}", search.text);
    }
);

access_case!(
    a_guardian_sees_a_child_under_13_and_cannot_make_a_sparr,
    async |w: &World| {
        // Staff record Lisa as guardian (vårdnadshavare) of two children: one turning 13
        // tomorrow, one 13 today.
        let today = time::OffsetDateTime::now_utc().date();
        let born = |years_ago: i32, days: i64| {
            let day = today
                .replace_year(today.year() - years_ago)
                .unwrap_or(today)
                .checked_add(time::Duration::days(days))
                .expect("a date");
            day.to_string()
        };
        for (child, birth) in [("barn", born(13, 1)), ("barn13", born(13, 0))] {
            w.put_unrestricted(json!({"resourceType": "Patient", "id": child, "birthDate": birth}))
                .await;
            w.put_unrestricted(json!({"resourceType": "RelatedPerson", "id": format!("lisa-{child}"),
                "active": true, "patient": reference(&format!("Patient/{child}")),
                "identifier": [{"system": PNR, "value": "198505052384"}],
                "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "GUARD"}]}]}))
                .await;
        }
        // No consent needed while the child is under 13; none at all from the 13th birthday.
        assert_eq!(w.get(Who::Lisa, "Patient/barn").await.status, 200);
        assert_forbidden(&w.get(Who::Lisa, "Patient/barn13").await);
        let search = w.get(Who::Lisa, "Patient?_count=10").await;
        let found = ids(&search);
        assert!(found.contains(&"Patient/barn".to_owned()), "{found:?}");
        assert!(!found.contains(&"Patient/barn13".to_owned()), "{found:?}");
        // A guardian acts for the child, but a spärr is the child's own: refused, for the
        // child and for the patient who gave Lisa consent alike; nothing stored.
        for patient in ["Patient/barn", "Patient/tolvan"] {
            let sparr = consent("", patient, "deny", "Organization/vc-solna");
            let mut sparr = sparr;
            sparr.as_object_mut().map(|o| o.remove("id"));
            assert_forbidden(&w.post(Who::Lisa, "Consent", &sparr).await);
        }
        let consents = w
            .get(
                Who::Anna,
                "Consent?patient=Patient/tolvan&provision-type=deny",
            )
            .await;
        assert_eq!(consents.body["total"], 0, "{}", consents.text);
    }
);

access_case!(
    a_relative_the_patient_adds_sees_at_once_though_already_logged_in,
    async |w: &World| {
        // Lisa is known (Tolvan's relative) and refused Karin's data.
        assert_forbidden(&w.get(Who::Lisa, "Patient/karin").await);
        // Karin records Lisa as her relative and gives her access, in one transaction.
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:5b0c7a2e-9d5e-4a43-8a53-2f1f0b7f3c11",
             "resource": {"resourceType": "RelatedPerson", "active": true,
                "patient": reference("Patient/karin"),
                "identifier": [{"system": PNR, "value": "198505052384"}]},
             "request": {"method": "POST", "url": "RelatedPerson"}},
            {"resource": consent("", "Patient/karin", "permit", "urn:uuid:5b0c7a2e-9d5e-4a43-8a53-2f1f0b7f3c11"),
             "request": {"method": "POST", "url": "Consent"}}]});
        let mut bundle = bundle;
        bundle["entry"][1]["resource"]
            .as_object_mut()
            .map(|consent| consent.remove("id"));
        bundle["entry"][1]["resource"]["provision"]["actor"][0]["reference"] =
            json!({"reference": "urn:uuid:5b0c7a2e-9d5e-4a43-8a53-2f1f0b7f3c11"});
        let granted = w.post(Who::Karin, "", &bundle).await;
        assert_eq!(granted.status, 200, "{}", granted.text);
        // Her next request, not minutes later (who a citizen is, is cached).
        assert_eq!(w.get(Who::Lisa, "Patient/karin").await.status, 200);
    }
);

access_case!(only_the_patient_records_relatives, async |w: &World| {
    let relative = json!({"resourceType": "RelatedPerson", "active": true,
        "patient": reference("Patient/tolvan"),
        "identifier": [{"system": PNR, "value": "197001011233"}]});
    assert_forbidden(&w.post(Who::Lisa, "RelatedPerson", &relative).await);
    let created = w.post(Who::Tolvan, "RelatedPerson", &relative).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let mut foreign = relative.clone();
    foreign["patient"] = reference("Patient/karin");
    assert_forbidden(&w.post(Who::Tolvan, "RelatedPerson", &foreign).await);
});

// ---------------------------------------------------------------------------------------------
// Staff

access_case!(
    staff_print_the_plan_as_a_pdf_only_with_a_care_relationship,
    async |w: &World| {
        let pdf_of = async |who: Who, path: &str| {
            w.server
                .request(reqwest::Method::GET, path)
                .bearer_auth(token(who).await)
                .header("accept", "application/pdf")
                .send()
                .await
                .expect("an answer")
        };
        let printed = pdf_of(Who::Anna, "Patient/tolvan/$patientkontrakt").await;
        assert_eq!(printed.status(), 200);
        assert_eq!(printed.headers()["content-type"], "application/pdf");
        let bytes = printed.bytes().await.expect("the PDF");
        assert!(bytes.starts_with(b"%PDF-"), "a PDF");
        // Karin's spärr blocks Erik: the refusal is an OperationOutcome, not a PDF.
        let refused = pdf_of(Who::Erik, "Patient/karin/$patientkontrakt").await;
        assert_eq!(refused.status(), 403);
        assert!(
            refused.headers()["content-type"]
                .to_str()
                .unwrap_or_default()
                .contains("json")
        );
        // Only documents have a PDF form.
        let not_a_document = pdf_of(Who::Anna, "Patient/tolvan").await;
        assert_eq!(not_a_document.status(), 406);
    }
);

access_case!(
    clinician_with_care_relationship_reads_and_writes,
    async |w: &World| {
        assert_eq!(
            w.get(Who::Anna, "CarePlan/plan-region-tolvan").await.status,
            200
        );
        let plans = w.get(Who::Anna, "CarePlan?patient=Patient/tolvan").await;
        assert_eq!(plans.body["total"], 3, "{}", plans.text);
        let created = w
            .post(
                Who::Anna,
                "CarePlan",
                &care_plan("ignored", "Patient/tolvan", "Rehabplan"),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(
            created.body["meta"]["tag"][0]["code"], REGION_HSA,
            "the writer's care provider owns it"
        );
        let registered = w
            .post(
                Who::Anna,
                "Patient",
                &patient("ignored", "201703152387", "Svensson"),
            )
            .await;
        assert_eq!(registered.status, 201, "{}", registered.text);
    }
);

access_case!(
    clinician_without_care_relationship_is_refused,
    async |w: &World| {
        assert_forbidden(&w.get(Who::Erik, "CarePlan/plan-region-tolvan").await);
        assert_forbidden(&w.get(Who::Erik, "Patient/tolvan").await);
        let search = w.get(Who::Erik, "CarePlan?patient=Patient/tolvan").await;
        assert_eq!(search.body["total"], 0, "{}", search.text);
        let write = w
            .post(
                Who::Erik,
                "CarePlan",
                &care_plan("ignored", "Patient/tolvan", "Plan"),
            )
            .await;
        assert_forbidden(&write);
    }
);

access_case!(
    municipal_staff_see_the_sip_but_not_a_region_only_plan,
    async |w: &World| {
        assert_eq!(w.get(Who::Maria, "CarePlan/sip-tolvan").await.status, 200);
        assert_eq!(
            w.get(Who::Maria, "CarePlan/umbrella-tolvan").await.status,
            200
        );
        assert_forbidden(&w.get(Who::Maria, "CarePlan/plan-region-tolvan").await);
        let plans = w.get(Who::Maria, "CarePlan?patient=Patient/tolvan").await;
        let found = ids(&plans);
        assert!(
            !found.contains(&"CarePlan/plan-region-tolvan".to_owned()),
            "{found:?}"
        );
        assert!(
            found.contains(&"CarePlan/sip-tolvan".to_owned()),
            "{found:?}"
        );
    }
);

access_case!(sparr_blocks_the_named_unit_only, async |w: &World| {
    assert_forbidden(&w.get(Who::Erik, "CarePlan/plan-karin").await);
    let search = w.get(Who::Erik, "CarePlan?patient=Patient/karin").await;
    assert_eq!(search.body["total"], 0, "{}", search.text);
    let said = search.body["entry"][0]["resource"]["issue"][0].clone();
    assert_eq!(
        search.body["entry"][0]["search"]["mode"], "outcome",
        "{}",
        search.text
    );
    assert_eq!(said["severity"], "information");
    assert!(
        said["diagnostics"]
            .as_str()
            .is_some_and(|d| d.contains("spärr")),
        "{said}"
    );
    assert!(!search.text.contains("geriatrik"), "it does not say where");
    let anna = w.get(Who::Anna, "CarePlan?patient=Patient/karin").await;
    assert_eq!(anna.body["total"], 1, "{}", anna.text);
    assert!(!anna.text.contains("spärr"), "{}", anna.text);
    assert_eq!(w.get(Who::Anna, "CarePlan/plan-karin").await.status, 200);
});

access_case!(
    emergency_access_passes_a_sparr_with_a_reason,
    async |w: &World| {
        let reply = Reply::send(
            w.server
                .request(reqwest::Method::GET, "CarePlan/plan-karin")
                .bearer_auth(token(Who::Erik).await)
                .header("x-purpose-of-use", "ETREAT")
                .header("x-purpose-of-use-reason", "Medvetslös patient på akuten"),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
);

access_case!(the_access_log_cannot_be_written, async |w: &World| {
    let event = json!({"resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "recorded": "2026-11-22T10:00:00Z",
        "agent": [{"requestor": true, "who": {"display": "forger"}}],
        "source": {"observer": {"display": "forger"}}});
    for who in [Who::System, Who::Anna, Who::Tolvan] {
        assert_forbidden(&w.post(who, "AuditEvent", &event).await);
    }
    let mut with_id = event.clone();
    with_id["id"] = json!("forged");
    assert_forbidden(
        &w.send(
            Who::System,
            reqwest::Method::PUT,
            "AuditEvent/forged",
            Some(&with_id),
        )
        .await,
    );
    assert_forbidden(
        &w.send(
            Who::System,
            reqwest::Method::DELETE,
            "AuditEvent/forged",
            None,
        )
        .await,
    );
});

// ---------------------------------------------------------------------------------------------
// Tokens

access_case!(a_request_without_a_token_is_refused, async |w: &World| {
    assert_unauthorized(&w.server.get("Patient/tolvan").await);
    let metadata = w.server.get("metadata").await;
    assert_eq!(metadata.status, 200, "the CapabilityStatement stays public");
});

access_case!(
    a_token_signed_by_another_key_is_refused,
    async |w: &World| {
        let real = token(Who::Tolvan).await;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.typ = Some("at+jwt".to_owned());
        header.kid = unverified_part(&real, 0)["kid"].as_str().map(str::to_owned);
        let forged = jsonwebtoken::encode(
            &header,
            &unverified_part(&real, 1),
            &jsonwebtoken::EncodingKey::from_rsa_pem(TEST_RSA_PEM.as_bytes()).expect("key"),
        )
        .expect("sign");
        assert_unauthorized(&w.with_token(&forged, "Patient/tolvan").await);
    }
);

access_case!(an_unsigned_token_is_refused, async |w: &World| {
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let real = token(Who::Tolvan).await;
    let mut header = unverified_part(&real, 0);
    header["alg"] = json!("none");
    let unsigned = format!("{}.{}.", b64(&header), b64(&unverified_part(&real, 1)));
    assert_unauthorized(&w.with_token(&unsigned, "Patient/tolvan").await);
});

access_case!(
    hs256_signed_with_the_public_key_is_refused,
    async |w: &World| {
        let idp = idp().expect("idp");
        let jwks = http()
            .get(format!("{}/jwks", idp.citizen))
            .send()
            .await
            .expect("jwks")
            .bytes()
            .await
            .expect("jwks body");
        let real = token(Who::Tolvan).await;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = unverified_part(&real, 0)["kid"].as_str().map(str::to_owned);
        let forged = jsonwebtoken::encode(
            &header,
            &unverified_part(&real, 1),
            &jsonwebtoken::EncodingKey::from_secret(&jwks),
        )
        .expect("sign");
        assert_unauthorized(&w.with_token(&forged, "Patient/tolvan").await);
    }
);

fn citizen_claims(aud: &str, exp: i64) -> Value {
    json!({"aud": aud, "sub": "tolvan", "exp": exp, "iat": now(), "client_id": "paraply-tests",
        "scope": "patient/*.rs",
        "https://id.oidc.se/claim/personalIdentityNumber": "191212121212"})
}

access_case!(
    own_issuer_tokens_work_so_the_time_cases_mean_something,
    async |w: &World| {
        let good = own_issuer().sign_claims(
            "test-ec",
            Some("at+jwt"),
            citizen_claims(AUDIENCE, now() + 300),
        );
        assert_eq!(w.with_token(&good, "Patient/tolvan").await.status, 200);
    }
);

access_case!(
    a_token_from_an_untrusted_issuer_is_refused,
    async |w: &World| {
        let token = untrusted_issuer().sign_claims(
            "test-ec",
            Some("at+jwt"),
            citizen_claims(AUDIENCE, now() + 300),
        );
        assert_unauthorized(&w.with_token(&token, "Patient/tolvan").await);
    }
);

access_case!(
    a_token_for_another_audience_is_refused,
    async |w: &World| {
        let token = own_issuer().sign_claims(
            "test-ec",
            Some("at+jwt"),
            citizen_claims("http://elsewhere.test/fhir", now() + 300),
        );
        assert_unauthorized(&w.with_token(&token, "Patient/tolvan").await);
    }
);

access_case!(an_expired_token_is_refused, async |w: &World| {
    let token = own_issuer().sign_claims(
        "test-ec",
        Some("at+jwt"),
        citizen_claims(AUDIENCE, now() - 120),
    );
    assert_unauthorized(&w.with_token(&token, "Patient/tolvan").await);
});

access_case!(a_token_not_yet_valid_is_refused, async |w: &World| {
    let mut claims = citizen_claims(AUDIENCE, now() + 600);
    claims["nbf"] = json!(now() + 300);
    let token = own_issuer().sign_claims("test-ec", Some("at+jwt"), claims);
    assert_unauthorized(&w.with_token(&token, "Patient/tolvan").await);
});

access_case!(
    a_token_with_an_unknown_key_id_is_refused,
    async |w: &World| {
        let token = own_issuer().sign_claims(
            "no-such-kid",
            Some("at+jwt"),
            citizen_claims(AUDIENCE, now() + 300),
        );
        assert_unauthorized(&w.with_token(&token, "Patient/tolvan").await);
    }
);

access_case!(scopes_limit_what_a_token_may_do, async |w: &World| {
    let idp = idp().expect("idp");
    let narrow = login(&idp.citizen, "tolvan", "openid patient/Goal.rs", AUDIENCE)
        .await
        .access;
    assert_eq!(w.with_token(&narrow, "Goal/goal-tolvan").await.status, 200);
    assert_forbidden(&w.with_token(&narrow, "CarePlan/umbrella-tolvan").await);
});

// ---------------------------------------------------------------------------------------------
// The access log

impl World {
    /// How many AuditEvents match `query`, counted by the server itself.
    async fn audit_count(&self, query: &str) -> u64 {
        let mut request = FhirRequest::new(Method::Get, "AuditEvent");
        request.query = paraply_core::parse_query(&format!("{query}&_summary=count"));
        match self.fhir.handle(request).await {
            Ok(paraply_core::Outcome::Searchset { page, .. }) => page.total.unwrap_or_default(),
            other => panic!("counting AuditEvents: {other:?}"),
        }
    }
}

access_case!(
    every_access_and_every_refusal_is_logged,
    async |w: &World| {
        let tolvan = "patient=Patient/tolvan";
        let before = w.audit_count(tolvan).await;
        assert_eq!(
            w.get(Who::Anna, "CarePlan/plan-region-tolvan").await.status,
            200
        );
        assert_eq!(w.audit_count(tolvan).await, before + 1, "a read");
        w.get(Who::Anna, "CarePlan?patient=Patient/tolvan").await;
        assert_eq!(w.audit_count(tolvan).await, before + 2, "a search");
        assert_forbidden(&w.get(Who::Erik, "CarePlan/plan-region-tolvan").await);
        assert_eq!(w.audit_count(tolvan).await, before + 3, "a refused read");
        assert_eq!(
            w.audit_count("patient=Patient/tolvan&outcome=4").await,
            1,
            "logged as refused"
        );

        let created = w
            .post(
                Who::Anna,
                "Goal",
                &json!({"resourceType": "Goal", "lifecycleStatus": "active",
            "description": {"text": "Promenad varje dag"}, "subject": reference("Patient/tolvan")}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(w.audit_count(tolvan).await, before + 4, "a write");
        let goal = created.body["id"].as_str().unwrap_or_default();
        let mut provenance = FhirRequest::new(Method::Get, "Provenance");
        provenance.query = vec![("target".into(), format!("Goal/{goal}"))];
        match w.fhir.handle(provenance).await {
            Ok(paraply_core::Outcome::Searchset { page, .. }) => {
                assert_eq!(page.total, Some(1), "every write has a Provenance");
            }
            other => panic!("{other:?}"),
        }

        let anonymous = w.audit_count("outcome=4").await;
        assert_unauthorized(&w.server.get("Patient/tolvan").await);
        assert_unauthorized(&w.with_token("not-a-jwt", "Patient/tolvan").await);
        assert_eq!(
            w.audit_count("outcome=4").await,
            anonymous + 2,
            "refused logins are logged"
        );
    }
);

access_case!(emergency_access_is_flagged_in_the_log, async |w: &World| {
    let flagged = "_security=http://terminology.hl7.org/CodeSystem/v3-ActReason|ETREAT";
    assert_eq!(w.audit_count(flagged).await, 0);
    let reply = Reply::send(
        w.server
            .request(reqwest::Method::GET, "CarePlan/plan-karin")
            .bearer_auth(token(Who::Erik).await)
            .header("x-purpose-of-use", "ETREAT")
            .header("x-purpose-of-use-reason", "Patienten medvetslös"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        w.audit_count(&format!("{flagged}&patient=Patient/karin"))
            .await,
        1
    );
});

access_case!(
    the_patient_reads_who_accessed_their_data,
    async |w: &World| {
        assert_eq!(
            w.get(Who::Anna, "CarePlan/plan-region-tolvan").await.status,
            200
        );
        let log = w.get(Who::Tolvan, "Patient/tolvan/$access-log").await;
        assert_eq!(log.status, 200, "{}", log.text);
        assert_eq!(log.body["resourceType"], "Bundle");
        assert!(
            log.text.contains("SE2321000016-15CQ"),
            "the unit is shown: {}",
            log.text
        );
        assert!(
            !log.text.contains("SE2321000016-1003"),
            "the staff member is not: {}",
            log.text
        );
        assert_forbidden(&w.get(Who::Tolvan, "Patient/karin/$access-log").await);
        assert_forbidden(&w.get(Who::Erik, "Patient/tolvan/$access-log").await);
    }
);

access_case!(
    staff_first_login_at_a_known_unit_creates_their_role,
    async |w: &World| {
        let mut remove = FhirRequest::new(Method::Delete, "PractitionerRole/maria-hs");
        remove.if_match = None;
        w.fhir.handle(remove).await.expect("the role is removed");
        let roles_at_unit = async || {
            let mut search = FhirRequest::new(Method::Get, "PractitionerRole");
            search.query = vec![("organization".into(), "Organization/hemsjukvard".into())];
            match w.fhir.handle(search).await {
                Ok(paraply_core::Outcome::Searchset { page, .. }) => page.total.unwrap_or_default(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(roles_at_unit().await, 0);
        // Her issuer speaks for Solna stad, the care provider of her unit: the role is created.
        let directory = w.get(Who::Maria, "Organization/hemsjukvard").await;
        assert_eq!(directory.status, 200, "{}", directory.text);
        assert_eq!(roles_at_unit().await, 1);
        // A new role is in no care team yet: no access to the patient she used to see.
        assert_forbidden(&w.get(Who::Maria, "CarePlan/sip-tolvan").await);
    }
);

access_case!(
    an_open_encounter_is_a_care_relationship_until_it_ends,
    async |w: &World| {
        assert_forbidden(&w.get(Who::Erik, "CarePlan/umbrella-tolvan").await);
        let mut visit = json!({"resourceType": "Encounter", "id": "visit-tolvan", "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": reference("Patient/tolvan"),
        "participant": [{"individual": reference("PractitionerRole/erik-ger")}],
        "serviceProvider": reference("Organization/geriatrik")});
        w.put_unrestricted(visit.clone()).await;
        assert_eq!(
            w.get(Who::Erik, "CarePlan/umbrella-tolvan").await.status,
            200
        );
        visit["status"] = json!("finished");
        w.put_unrestricted(visit).await;
        assert_forbidden(&w.get(Who::Erik, "CarePlan/umbrella-tolvan").await);
    }
);

access_case!(
    subscriptions_are_read_only_by_their_care_provider_and_system_clients_and_never_show_headers,
    async |w: &World| {
        let subscription = json!({"resourceType": "Subscription", "status": "off",
            "reason": "Nya vårdplaner", "criteria": "CarePlan?status=active",
            "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/mottagare-hook",
                "extension": [{"url": "https://paraply.se/fhir/StructureDefinition/subscription-signing-secret",
                    "valueString": "en-hemlighet-som-ar-minst-32-tecken-lang"}],
                
                "payload": "application/fhir+json",
                "header": ["Authorization: Bearer hemlig-nyckel"]}});
        let created = w.post(Who::Anna, "Subscription", &subscription).await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert!(!created.text.contains("hemlig-nyckel"), "{}", created.text);
        let id = created.body["id"].as_str().unwrap().to_owned();
        let read = format!("Subscription/{id}");
        let history = format!("Subscription/{id}/_history");

        // The creating care provider's staff (Anna, and Erik at another of its units) and
        // system clients see it, without its headers.
        for who in [Who::Anna, Who::Erik, Who::System] {
            for path in [read.as_str(), history.as_str(), "Subscription"] {
                let reply = w.get(who, path).await;
                assert_eq!(reply.status, 200, "{who:?} {path}: {}", reply.text);
                assert!(
                    reply.text.contains("mottagare-hook"),
                    "{who:?} {path}: {}",
                    reply.text
                );
                assert!(
                    !reply.text.contains("hemlig-nyckel"),
                    "{who:?} {path}: {}",
                    reply.text
                );
            }
        }
        // Another care provider's staff, patients and relatives neither read nor find it.
        for who in [Who::Maria, Who::Tolvan, Who::Lisa] {
            for path in [read.as_str(), history.as_str()] {
                let reply = w.get(who, path).await;
                assert_ne!(reply.status, 200, "{who:?} {path}: {}", reply.text);
                assert!(
                    !reply.text.contains("mottagare-hook"),
                    "{who:?} {path}: {}",
                    reply.text
                );
            }
            let search = w.get(who, "Subscription").await;
            assert!(
                !search.text.contains("mottagare-hook"),
                "{who:?}: {}",
                search.text
            );
            if search.status == 200 {
                assert!(
                    search.body.get("entry").is_none(),
                    "{who:?}: {}",
                    search.text
                );
            }
        }
        // Nor change it.
        let mut changed = subscription.clone();
        changed["id"] = json!(id);
        changed["channel"]["endpoint"] = json!("https://elak.example.se/hook");
        let update = w
            .send(Who::Maria, reqwest::Method::PUT, &read, Some(&changed))
            .await;
        assert_ne!(update.status, 200, "{}", update.text);
        assert_ne!(update.status, 201, "{}", update.text);
    }
);

// ---------------------------------------------------------------------------------------------
// The unified plan under the access rules

access_case!(
    the_unified_plan_follows_the_access_rules_and_is_logged_once,
    async |w: &World| {
        let tolvan = "patient=Patient/tolvan";
        let before = w.audit_count(tolvan).await;
        let own = w.get(Who::Tolvan, "Patient/tolvan/$patientkontrakt").await;
        assert_eq!(own.status, 200, "{}", own.text);
        assert_eq!(own.body["type"], "document");
        assert!(
            own.text.contains("Ring på förmiddagen"),
            "external notes are shown"
        );
        assert!(
            !own.text.contains("svårt att nå"),
            "internal notes never reach the patient (I14)"
        );
        assert_eq!(
            w.audit_count(tolvan).await,
            before + 1,
            "one AuditEvent per call, whatever it read"
        );
        let relative = w.get(Who::Lisa, "Patient/tolvan/$patientkontrakt").await;
        assert_eq!(relative.status, 200, "{}", relative.text);
        assert!(!relative.text.contains("svårt att nå"));
        let staff = w.get(Who::Anna, "Patient/tolvan/$patientkontrakt").await;
        assert_eq!(staff.status, 200, "{}", staff.text);
        assert!(
            staff.text.contains("svårt att nå"),
            "staff see internal notes"
        );
        assert_forbidden(&w.get(Who::Erik, "Patient/tolvan/$patientkontrakt").await);
        assert_forbidden(&w.get(Who::Tolvan, "Patient/karin/$patientkontrakt").await);
        // Four calls on Tolvan's plan, and his refused try at Karin's (AuditEvent?patient
        // also matches the patient as the agent).
        assert_eq!(
            w.audit_count(tolvan).await,
            before + 5,
            "refusals are logged too"
        );
    }
);

access_case!(
    a_care_provider_outside_a_plan_is_not_notified_of_it,
    async |w: &World| {
        use super::subscriptions::{Receiver, subscription};
        let region = Receiver::start().await;
        let kommun = Receiver::start().await;
        let mut ids = Vec::new();
        for (who, receiver) in [(Who::Anna, &region), (Who::Maria, &kommun)] {
            let mut body = subscription(&receiver.url);
            body["criteria"] = json!("CarePlan?status=active");
            // With the resource itself, where the subscriber may read it.
            body["channel"]["_payload"] = json!({"extension": [{
                "url": paraply_notify::PAYLOAD_CONTENT_EXTENSION, "valueCode": "full-resource"}]});
            let created = w.post(who, "Subscription", &body).await;
            assert_eq!(created.status, 201, "{who:?}: {}", created.text);
            ids.push((who, created.body["id"].as_str().unwrap().to_owned()));
        }
        for (who, id) in &ids {
            let mut active = false;
            for _ in 0..200 {
                if w.get(*who, &format!("Subscription/{id}")).await.body["status"] == "active" {
                    active = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            assert!(active, "{who:?}'s subscription became active");
        }
        // The region-only plan changes first, then the SIP both take part in.
        for id in ["plan-region-tolvan", "sip-tolvan"] {
            let mut plan = w.get(Who::System, &format!("CarePlan/{id}")).await.body;
            plan["description"] = json!("Uppdaterad");
            w.put_unrestricted(plan).await;
        }
        let focus = |events: Vec<Value>| -> Vec<String> {
            events
                .iter()
                .map(|e| {
                    e["entry"][1]["fullUrl"]
                        .as_str()
                        .unwrap()
                        .rsplit('/')
                        .next()
                        .unwrap()
                        .to_owned()
                })
                .collect()
        };
        assert_eq!(
            focus(region.events(2).await),
            vec!["plan-region-tolvan", "sip-tolvan"],
            "the region sees both"
        );
        let kommun_events = kommun.events(1).await;
        assert_eq!(
            kommun_events[0]["entry"][1]["resource"]["id"], "sip-tolvan",
            "the SIP itself, which the kommun may read"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(
            focus(kommun.events(1).await),
            vec!["sip-tolvan"],
            "the kommun learns nothing of the region-only plan, not even its id: {kommun_events:?}"
        );
    }
);

/// `Parameters` of an operation call: `(name, valueX key, value)`.
fn operation_parameters(values: &[(&str, &str, Value)]) -> Value {
    let parameter: Vec<Value> = values
        .iter()
        .map(|(name, key, value)| json!({"name": name, *key: value}))
        .collect();
    json!({"resourceType": "Parameters", "parameter": parameter})
}

access_case!(
    a_sip_as_the_region_and_the_kommun_run_it_with_every_notification_arriving,
    async |w: &World| {
        use super::subscriptions::{Receiver, subscription};
        use paraply_fhir::codes::{
            HUVUDMAN_TYPE_SYSTEM, PATIENTKONTRAKT, PLAN_CATEGORY_SYSTEM, PLAN_TYPE_SYSTEM,
        };
        for (id, hsa, name, kind) in [
            ("region", REGION_HSA, "Region Stockholm", "region"),
            ("solna-stad", "SE2120001314-0001", "Solna stad", "kommun"),
        ] {
            let mut huvudman = organization(id, hsa, name, None);
            huvudman["type"] =
                json!([{"coding": [{"system": HUVUDMAN_TYPE_SYSTEM, "code": kind}]}]);
            w.put_unrestricted(huvudman).await;
        }
        // Each side's system subscribes: the kommun to SIP meetings, the region to plans.
        let (kommun, region) = (Receiver::start().await, Receiver::start().await);
        for (who, receiver, criteria) in [
            (Who::Maria, &kommun, "Appointment?service-type=sip-mote"),
            (Who::Anna, &region, "CarePlan?status=active"),
        ] {
            let mut body = subscription(&receiver.url);
            body["criteria"] = json!(criteria);
            let created = w.post(who, "Subscription", &body).await;
            assert_eq!(created.status, 201, "{}", created.text);
            let path = format!("Subscription/{}", created.body["id"].as_str().unwrap());
            let mut tries = 0;
            while w.get(who, &path).await.body["status"] != "active" {
                tries += 1;
                assert!(tries < 200, "{who:?}'s subscription never became active");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }

        // The region initiates: an umbrella, and the SIP as a draft with the kommun.
        let umbrella = w
            .post(
                Who::Anna,
                "CarePlan",
                &json!({"resourceType": "CarePlan",
            "status": "active", "intent": "plan", "title": "Patientkontrakt",
            "category": [{"coding": [{"system": PLAN_CATEGORY_SYSTEM, "code": PATIENTKONTRAKT}]}],
            "subject": reference("Patient/tolvan")}),
            )
            .await;
        assert_eq!(umbrella.status, 201, "{}", umbrella.text);
        let umbrella = format!("CarePlan/{}", umbrella.body["id"].as_str().unwrap());
        let mut sip = json!({"resourceType": "CarePlan", "status": "draft", "intent": "plan",
            "title": "SIP Tolvan",
            "category": [{"coding": [{"system": PLAN_TYPE_SYSTEM, "code": "SIP"}]}],
            "subject": reference("Patient/tolvan"), "partOf": [reference(&umbrella)],
            "author": reference("Organization/region"),
            "contributor": [reference("Organization/solna-stad")]});
        let created = w.post(Who::Anna, "CarePlan", &sip).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let sip_id = created.body["id"].as_str().unwrap().to_owned();
        sip = created.body.clone();

        // The patient consents in their own name.
        let consent = w.post(Who::Tolvan, "Consent", &json!({"resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": reference("Patient/tolvan"),
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": {"type": "permit", "data": [{"meaning": "related",
                "reference": reference(&format!("CarePlan/{sip_id}"))}]}})).await;
        assert_eq!(consent.status, 201, "{}", consent.text);

        // Activated with an effort per huvudman.
        sip["status"] = json!("active");
        let task = |owner: &str| {
            json!({"resourceType": "Task", "status": "requested", "intent": "plan",
            "for": reference("Patient/tolvan"), "basedOn": [reference(&format!("CarePlan/{sip_id}"))],
            "owner": reference(owner)})
        };
        let activation = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": sip, "request": {"method": "PUT", "url": format!("CarePlan/{sip_id}")}},
            {"resource": task("Organization/vc-solna"), "request": {"method": "POST", "url": "Task"}},
            {"resource": task("Organization/hemsjukvard"), "request": {"method": "POST", "url": "Task"}}]});
        let activated = w.post(Who::Anna, "", &activation).await;
        assert_eq!(activated.status, 200, "{}", activated.text);

        // The region's coordinator proposes the meeting; each answers with their own token.
        let proposed = w
            .post(
                Who::Anna,
                &format!("CarePlan/{sip_id}/$sip-meeting"),
                &operation_parameters(&[
                    ("start", "valueDateTime", json!("2031-03-01T09:00:00+01:00")),
                    ("end", "valueDateTime", json!("2031-03-01T10:00:00+01:00")),
                    (
                        "invitee",
                        "valueReference",
                        reference("PractitionerRole/anna-vc"),
                    ),
                    (
                        "invitee",
                        "valueReference",
                        reference("PractitionerRole/maria-hs"),
                    ),
                ]),
            )
            .await;
        assert_eq!(proposed.status, 201, "{}", proposed.text);
        let meeting = proposed.body["id"].as_str().unwrap().to_owned();
        let respond = format!("Appointment/{meeting}/$respond");
        let mut last = Value::Null;
        for (who, actor) in [
            (Who::Maria, "PractitionerRole/maria-hs"),
            (Who::Anna, "PractitionerRole/anna-vc"),
            (Who::Tolvan, "Patient/tolvan"),
        ] {
            let answered = w
                .post(
                    who,
                    &respond,
                    &operation_parameters(&[
                        ("actor", "valueReference", reference(actor)),
                        ("answer", "valueCode", json!("accepted")),
                    ]),
                )
                .await;
            assert_eq!(answered.status, 200, "{who:?}: {}", answered.text);
            last = answered.body;
        }
        assert_eq!(last["status"], "booked");
        // Each answer is Tolvan's data: the kommun's answer is in his access log.
        let answers = w.get(Who::System, &format!("AppointmentResponse?appointment=Appointment/{meeting}&actor=PractitionerRole/maria-hs")).await;
        let answer = answers.body["entry"][0]["resource"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let logged = w
            .get(
                Who::System,
                &format!("AuditEvent?patient=Patient/tolvan&entity=AppointmentResponse/{answer}"),
            )
            .await;
        assert_eq!(logged.status, 200, "{}", logged.text);
        assert!(
            logged.body["entry"]
                .as_array()
                .is_some_and(|e| !e.is_empty()),
            "{}",
            logged.text
        );

        // The kommun finds its open effort and completes it.
        let open = w
            .get(
                Who::Maria,
                "Task?owner=Organization/hemsjukvard&status=requested,accepted,in-progress",
            )
            .await;
        assert_eq!(open.status, 200, "{}", open.text);
        let mut effort = open.body["entry"][0]["resource"].clone();
        let path = format!("Task/{}", effort["id"].as_str().unwrap());
        for step in ["accepted", "in-progress", "completed"] {
            effort["status"] = json!(step);
            let reply = w
                .send(Who::Maria, reqwest::Method::PUT, &path, Some(&effort))
                .await;
            assert_eq!(reply.status, 200, "{step}: {}", reply.text);
            effort = reply.body;
        }

        // The kommun's system heard of the meeting at every step, in order, signed, by id only.
        let events = kommun.events(4).await;
        let numbers: Vec<u64> = events
            .iter()
            .map(|e| {
                e["entry"][0]["resource"]["parameter"][3]["valueString"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert_eq!(numbers, vec![1, 2, 3, 4]);
        for (n, event) in events.iter().enumerate() {
            let focus = &event["entry"][1];
            assert!(
                focus["fullUrl"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("Appointment/{meeting}"))
            );
            assert_eq!(focus["response"]["etag"], format!("W/\"{}\"", n + 1));
            assert!(focus.get("resource").is_none(), "no health data");
        }
        // The region's system heard of the umbrella and of the SIP once active.
        let plans: Vec<String> = region
            .events(2)
            .await
            .iter()
            .map(|e| e["entry"][1]["fullUrl"].as_str().unwrap().to_owned())
            .collect();
        assert!(plans[0].ends_with(&umbrella), "{plans:?}");
        assert!(
            plans[1].ends_with(&format!("CarePlan/{sip_id}")),
            "{plans:?}"
        );
    }
);

access_case!(
    a_unit_offers_times_and_the_patient_accepts_one_with_real_tokens,
    async |w: &World| {
        // The unit publishes its times (Anna's unit, Vårdcentralen Solna).
        let schedule = w
            .post(
                Who::Anna,
                "Schedule",
                &json!({"resourceType": "Schedule", "active": true,
            "actor": [reference("PractitionerRole/anna-vc")]}),
            )
            .await;
        assert_eq!(schedule.status, 201, "{}", schedule.text);
        let schedule = format!("Schedule/{}", schedule.body["id"].as_str().unwrap());
        let mut slots = Vec::new();
        for (start, end) in [
            ("2031-05-05T09:00:00+02:00", "2031-05-05T09:20:00+02:00"),
            ("2031-05-05T09:20:00+02:00", "2031-05-05T09:40:00+02:00"),
        ] {
            let slot = w
                .post(
                    Who::Anna,
                    "Slot",
                    &json!({"resourceType": "Slot", "status": "free",
                "schedule": reference(&schedule), "start": start, "end": end}),
                )
                .await;
            assert_eq!(slot.status, 201, "{}", slot.text);
            slots.push(format!("Slot/{}", slot.body["id"].as_str().unwrap()));
        }
        // A patient cannot change a unit's times.
        let mut forged = w.get(Who::Tolvan, &slots[0]).await.body;
        forged["status"] = json!("busy");
        let refused = w
            .send(Who::Tolvan, reqwest::Method::PUT, &slots[0], Some(&forged))
            .await;
        assert_eq!(refused.status, 403, "{}", refused.text);

        // The patient sees the free times; the clinician holds one for him.
        let find = "Appointment/$find?actor=PractitionerRole/anna-vc&start=2031-05-01&end=2031-05-31&patient=Patient/tolvan";
        let found = w.get(Who::Tolvan, find).await;
        assert_eq!(found.status, 200, "{}", found.text);
        assert_eq!(
            found.body["entry"].as_array().map_or(0, Vec::len),
            2,
            "{}",
            found.text
        );
        let held = w
            .post(
                Who::Anna,
                "Appointment/$hold",
                &json!({"resourceType": "Parameters", "parameter": [
            {"name": "slot", "valueReference": reference(&slots[0])},
            {"name": "patient", "valueReference": reference("Patient/tolvan")}]}),
            )
            .await;
        assert_eq!(held.status, 201, "{}", held.text);
        let appointment = held.body["id"].as_str().unwrap().to_owned();

        // He accepts in his own name: booked, and the time is busy for everyone.
        let accepted = w
            .post(
                Who::Tolvan,
                "AppointmentResponse",
                &json!({"resourceType": "AppointmentResponse",
            "appointment": reference(&format!("Appointment/{appointment}")),
            "actor": reference("Patient/tolvan"), "participantStatus": "accepted"}),
            )
            .await;
        assert_eq!(accepted.status, 201, "{}", accepted.text);
        assert_eq!(
            w.get(Who::Tolvan, &format!("Appointment/{appointment}"))
                .await
                .body["status"],
            "booked"
        );
        assert_eq!(w.get(Who::Anna, &slots[0]).await.body["status"], "busy");
        let left = w
            .get(Who::Karin, &find.replace("Patient/tolvan", "Patient/karin"))
            .await;
        assert_eq!(
            left.body["entry"].as_array().map_or(0, Vec::len),
            1,
            "{}",
            left.text
        );
        assert!(
            !left.text.contains("tolvan"),
            "never who booked: {}",
            left.text
        );
    }
);

access_case!(
    follow_up_reports_are_for_staff_and_a_subject_list_names_only_patients_they_care_for,
    async |w: &World| {
        // Through the server, whose write rule records the follow-up facts.
        for patient in ["tolvan", "karin"] {
            let plan = json!({"resourceType": "CarePlan", "id": format!("pk-{patient}"),
                "status": "active", "intent": "plan",
                "category": [{"coding": [{"system": "https://paraply.se/fhir/CodeSystem/plan-category",
                    "code": "patientkontrakt"}]}],
                "subject": reference(&format!("Patient/{patient}"))});
            let put = w
                .send(
                    Who::System,
                    reqwest::Method::PUT,
                    &format!("CarePlan/pk-{patient}"),
                    Some(&plan),
                )
                .await;
            assert_eq!(put.status, 201, "{}", put.text);
        }
        let summary = "Measure/m2/$evaluate-measure?periodStart=2000&periodEnd=2035";
        let list = format!("{summary}&reportType=subject-list");
        assert_forbidden(&w.get(Who::Tolvan, summary).await);
        assert_forbidden(&w.get(Who::Lisa, &list).await);

        // Counts for anyone on staff, and two patients are too few to show.
        let counted = w.get(Who::Erik, summary).await;
        assert_eq!(counted.status, 200, "{}", counted.text);
        assert_eq!(
            counted.body["group"][0]["population"][1]["_count"]["extension"][0]["valueCode"],
            "masked"
        );
        assert!(!counted.text.contains("Patient/"), "{}", counted.text);

        let named = |reply: &Reply, population: &str| -> Vec<String> {
            assert_eq!(reply.status, 200, "{}", reply.text);
            reply.body["contained"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["id"] == format!("fast-lakarkontakt-{population}").as_str())
                .and_then(|l| l["entry"].as_array())
                .map(|entries| {
                    entries
                        .iter()
                        .map(|e| e["item"]["reference"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        // Anna is both patients' fast läkarkontakt; Erik cares for Karin, whose spärr
        // blocks his unit, so he may name nobody.
        let before = w.audit_count("patient=Patient/tolvan").await;
        let anna = w.get(Who::Anna, &list).await;
        assert_eq!(
            named(&anna, "denominator"),
            ["Patient/karin", "Patient/tolvan"]
        );
        assert_eq!(
            named(&anna, "numerator"),
            ["Patient/karin", "Patient/tolvan"]
        );
        assert_eq!(
            w.audit_count("patient=Patient/tolvan").await,
            before + 1,
            "a subject list is an access to each patient it names"
        );
        let erik = w.get(Who::Erik, &list).await;
        assert!(named(&erik, "denominator").is_empty(), "{}", erik.text);
        assert_eq!(erik.body["group"][0]["population"][1]["count"], 0);
        // A system client gets the summary.
        assert_eq!(w.get(Who::System, summary).await.status, 200);
    }
);
