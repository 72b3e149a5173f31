//! The patientkontrakt end to end (DOMAIN.md §3–§5): the rules I1–I10 refuse with 422
//! naming the rule, alone and inside transactions, and hold under 32 concurrent writers and
//! through two nodes; an agreed time moves with the patient's answer; the profiles are
//! served and checked; Swedish identifiers are checked; `$patientkontrakt` is a valid
//! document for every demo patient.

use futures::future::join_all;
use paraply_fhir::codes::{
    CARE_TEAM_CATEGORY_SYSTEM, FAST_KONTAKT, FAST_KONTAKT_ROLE_SYSTEM, HUVUDMAN_TYPE_SYSTEM,
    PATIENTKONTRAKT, PLAN_CATEGORY_SYSTEM, PLAN_TYPE_SYSTEM, SERVICE_TYPE_SYSTEM, SIP_MOTE,
    profile,
};

use super::*;

const PNR: &str = "http://electronichealth.se/identifier/personnummer";
const HSA: &str = "urn:oid:1.2.752.29.4.19";
const DEMO_BUNDLE: &str = include_str!("../../crates/paraply-server/demo/demo-bundle.json");

fn put(resource: Value) -> Value {
    let url = format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    );
    json!({"resource": resource, "request": {"method": "PUT", "url": url}})
}

fn huvudman(id: &str, kind: &str, name: &str) -> Value {
    json!({"resourceType": "Organization", "id": id, "active": true, "name": name,
           "type": [{"coding": [{"system": HUVUDMAN_TYPE_SYSTEM, "code": kind}]}]})
}

fn unit(id: &str, part_of: &str, name: &str) -> Value {
    json!({"resourceType": "Organization", "id": id, "active": true, "name": name,
           "partOf": {"reference": format!("Organization/{part_of}")}})
}

fn role(id: &str, organization: &str) -> Value {
    json!({"resourceType": "PractitionerRole", "id": id, "active": true,
           "organization": {"reference": format!("Organization/{organization}")}})
}

/// Region and kommun with a unit each, three staff roles, and patient `p` with an active
/// umbrella plan.
async fn scene(s: &TestServer) {
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        put(huvudman("region", "region", "Region Stockholm")),
        put(huvudman("kommun", "kommun", "Solna stad")),
        put(huvudman("fk", "annan", "Försäkringskassan")),
        put(unit("vc", "region", "Vårdcentralen Solna")),
        put(unit("hemtjanst", "kommun", "Hemtjänsten Solna")),
        put(role("lakare", "vc")),
        put(role("sjukskoterska", "vc")),
        put(role("omsorg", "hemtjanst")),
        put(json!({"resourceType": "Patient", "id": "p",
                   "identifier": [{"system": PNR, "value": "191212121212"}]})),
        put(umbrella("umbrella", "active")),
    ]});
    let reply = s.post("", &bundle).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

fn umbrella(id: &str, status: &str) -> Value {
    json!({"resourceType": "CarePlan", "id": id, "status": status, "intent": "plan",
           "category": [{"coding": [{"system": PLAN_CATEGORY_SYSTEM, "code": PATIENTKONTRAKT}]}],
           "subject": {"reference": "Patient/p"}})
}

fn fast_kontakt(role_code: &str, member: &str) -> Value {
    json!({"resourceType": "CareTeam", "status": "active",
           "category": [{"coding": [{"system": CARE_TEAM_CATEGORY_SYSTEM, "code": FAST_KONTAKT}]}],
           "subject": {"reference": "Patient/p"},
           "participant": [{
               "role": [{"coding": [{"system": FAST_KONTAKT_ROLE_SYSTEM, "code": role_code}]}],
               "member": {"reference": format!("PractitionerRole/{member}")}}]})
}

fn sip(id: &str, status: &str, author: &str, contributors: &[&str]) -> Value {
    let contributors: Vec<Value> = contributors
        .iter()
        .map(|c| json!({"reference": format!("Organization/{c}")}))
        .collect();
    let mut plan = json!({"resourceType": "CarePlan", "id": id, "status": status, "intent": "plan",
           "category": [{"coding": [{"system": PLAN_TYPE_SYSTEM, "code": "SIP"}]}],
           "subject": {"reference": "Patient/p"},
           "partOf": [{"reference": "CarePlan/umbrella"}],
           "author": {"reference": format!("Organization/{author}")}});
    if !contributors.is_empty() {
        plan["contributor"] = Value::Array(contributors);
    }
    plan
}

fn sip_consent(sip: &str) -> Value {
    json!({"resourceType": "Consent", "status": "active",
           "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
           "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
           "patient": {"reference": "Patient/p"},
           "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
           "provision": {"type": "permit", "data": [{"meaning": "related",
               "reference": {"reference": format!("CarePlan/{sip}")}}]}})
}

fn insats(sip: &str, owner: &str) -> Value {
    json!({"resourceType": "Task", "status": "requested", "intent": "plan",
           "for": {"reference": "Patient/p"},
           "basedOn": [{"reference": format!("CarePlan/{sip}")}],
           "owner": {"reference": format!("Organization/{owner}")}})
}

fn appointment(status: &str, patient_status: &str, agreed: bool) -> Value {
    let mut appointment = json!({"resourceType": "Appointment", "status": status,
        "start": "2031-03-01T09:00:00+01:00", "end": "2031-03-01T09:30:00+01:00",
        "participant": [
            {"actor": {"reference": "Patient/p"}, "required": "required", "status": patient_status},
            {"actor": {"reference": "PractitionerRole/lakare"}, "required": "required", "status": "accepted"}]});
    if agreed {
        appointment["meta"] = json!({"profile": [profile::AGREED_APPOINTMENT]});
    }
    appointment
}

fn response(appointment: &str, status: &str) -> Value {
    json!({"resourceType": "AppointmentResponse",
           "appointment": {"reference": format!("Appointment/{appointment}")},
           "actor": {"reference": "Patient/p"}, "participantStatus": status})
}

/// The rule code a 422 names.
fn rule_of(reply: &Reply) -> String {
    assert_eq!(reply.status, 422, "{}", reply.text);
    let issue = reply.outcome_issue();
    assert_eq!(issue["code"], "business-rule", "{}", reply.text);
    let diagnostics = issue["diagnostics"].as_str().unwrap_or_default();
    diagnostics
        .split_whitespace()
        .find(|word| word.starts_with("paraply-I"))
        .unwrap_or_default()
        .trim_end_matches(':')
        .to_owned()
}

on_both_backends!(
    fixed_contacts_keep_to_their_limits,
    async |s: &TestServer| {
        scene(s).await;
        assert_eq!(
            s.post("CareTeam", &fast_kontakt("2", "lakare"))
                .await
                .status,
            201
        );
        let second = s
            .post("CareTeam", &fast_kontakt("2", "sjukskoterska"))
            .await;
        assert_eq!(rule_of(&second), "paraply-I1");
        assert!(second.text.contains("fast läkarkontakt"), "{}", second.text);

        // Nine fasta vårdkontakter (roles 1 and 4) are allowed, the tenth is not.
        assert_eq!(
            s.post("CareTeam", &fast_kontakt("4", "sjukskoterska"))
                .await
                .status,
            201
        );
        for _ in 0..8 {
            assert_eq!(
                s.post("CareTeam", &fast_kontakt("1", "sjukskoterska"))
                    .await
                    .status,
                201
            );
        }
        assert_eq!(
            rule_of(&s.post("CareTeam", &fast_kontakt("1", "omsorg")).await),
            "paraply-I2"
        );
        // A fast omsorgskontakt (role 3) is not a vårdkontakt.
        assert_eq!(
            s.post("CareTeam", &fast_kontakt("3", "omsorg"))
                .await
                .status,
            201
        );
        assert_eq!(
            rule_of(&s.post("CareTeam", &fast_kontakt("4", "lakare")).await),
            "paraply-I2"
        );

        let mut two_members = fast_kontakt("3", "omsorg");
        two_members["participant"]
            .as_array_mut()
            .unwrap()
            .push(json!({"member": {"reference": "PractitionerRole/lakare"}}));
        assert_eq!(
            rule_of(&s.post("CareTeam", &two_members).await),
            "paraply-I4"
        );

        // Ending a contact makes room again.
        let found = s.get("CareTeam?patient=Patient/p&participant-role=2").await;
        let mut lakare = found.body["entry"][0]["resource"].clone();
        lakare["status"] = json!("inactive");
        let id = lakare["id"].as_str().unwrap().to_owned();
        assert_eq!(s.put(&format!("CareTeam/{id}"), &lakare).await.status, 200);
        assert_eq!(
            s.post("CareTeam", &fast_kontakt("2", "sjukskoterska"))
                .await
                .status,
            201
        );
    }
);

on_both_backends!(a_third_role_4_is_refused_with_i3, async |s: &TestServer| {
    scene(s).await;
    assert_eq!(
        s.post("CareTeam", &fast_kontakt("4", "lakare"))
            .await
            .status,
        201
    );
    assert_eq!(
        rule_of(
            &s.post("CareTeam", &fast_kontakt("4", "sjukskoterska"))
                .await
        ),
        "paraply-I3"
    );
});

on_both_backends!(plans_hang_under_one_umbrella, async |s: &TestServer| {
    scene(s).await;
    let second = s
        .put("CarePlan/umbrella-2", &umbrella("umbrella-2", "active"))
        .await;
    assert_eq!(rule_of(&second), "paraply-I5");
    // A draft umbrella is not a second active one.
    assert_eq!(
        s.put("CarePlan/umbrella-2", &umbrella("umbrella-2", "draft"))
            .await
            .status,
        201
    );

    let mut linked = json!({"resourceType": "CarePlan", "status": "active", "intent": "plan",
            "category": [{"coding": [{"system": PLAN_TYPE_SYSTEM, "code": "RP"}]}],
            "subject": {"reference": "Patient/p"}});
    assert_eq!(rule_of(&s.post("CarePlan", &linked).await), "paraply-I5");
    linked["partOf"] = json!([{"reference": "CarePlan/umbrella-2"}]);
    assert_eq!(
        rule_of(&s.post("CarePlan", &linked).await),
        "paraply-I5",
        "under a draft umbrella"
    );
    linked["partOf"] = json!([{"reference": "CarePlan/umbrella"}]);
    assert_eq!(s.post("CarePlan", &linked).await.status, 201);
});

on_both_backends!(
    a_sip_needs_consent_both_huvudman_and_their_insatser,
    async |s: &TestServer| {
        scene(s).await;
        // I7: a SIP without the municipality.
        assert_eq!(
            rule_of(
                &s.put("CarePlan/sip", &sip("sip", "draft", "region", &[]))
                    .await
            ),
            "paraply-I7"
        );
        // I7: overall responsibility with someone who is neither region nor kommun.
        assert_eq!(
            rule_of(
                &s.put(
                    "CarePlan/sip",
                    &sip("sip", "draft", "fk", &["kommun", "region"])
                )
                .await
            ),
            "paraply-I7"
        );
        assert_eq!(
            s.put("CarePlan/sip", &sip("sip", "draft", "region", &["kommun"]))
                .await
                .status,
            201
        );
        // I6: not active without the patient's SIP consent.
        assert_eq!(
            rule_of(
                &s.put("CarePlan/sip", &sip("sip", "active", "region", &["kommun"]))
                    .await
            ),
            "paraply-I6"
        );
        assert_eq!(s.post("Consent", &sip_consent("sip")).await.status, 201);
        // I8: active, but the municipality has no insats yet.
        assert_eq!(s.post("Task", &insats("sip", "region")).await.status, 201);
        assert_eq!(
            rule_of(
                &s.put("CarePlan/sip", &sip("sip", "active", "region", &["kommun"]))
                    .await
            ),
            "paraply-I8"
        );
        assert_eq!(
            s.post("Task", &insats("sip", "hemtjanst")).await.status,
            201
        );
        assert_eq!(
            s.put("CarePlan/sip", &sip("sip", "active", "region", &["kommun"]))
                .await
                .status,
            200
        );
        // I8: every insats has an owner.
        let mut ownerless = insats("sip", "kommun");
        ownerless.as_object_mut().unwrap().remove("owner");
        assert_eq!(rule_of(&s.post("Task", &ownerless).await), "paraply-I8");
    }
);

on_both_backends!(
    a_sip_made_in_one_transaction_passes_and_a_breach_names_its_entry,
    async |s: &TestServer| {
        scene(s).await;
        let mut entries = vec![
            put(sip("sip", "active", "region", &["kommun"])),
            json!({"resource": sip_consent("sip"), "request": {"method": "POST", "url": "Consent"}}),
            json!({"resource": insats("sip", "vc"), "request": {"method": "POST", "url": "Task"}}),
        ];
        let bundle =
            json!({"resourceType": "Bundle", "type": "transaction", "entry": entries.clone()});
        let reply = s.post("", &bundle).await;
        assert_eq!(rule_of(&reply), "paraply-I8");
        assert!(
            reply.text.contains("entry 0"),
            "names the SIP's entry: {}",
            reply.text
        );
        assert_eq!(
            s.get("CarePlan/sip").await.status,
            404,
            "nothing was stored"
        );

        entries.push(json!({"resource": insats("sip", "hemtjanst"), "request": {"method": "POST", "url": "Task"}}));
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        assert_eq!(s.post("", &bundle).await.status, 200);
    }
);

on_both_backends!(
    sip_meetings_invite_both_huvudman_and_only_consented_relatives,
    async |s: &TestServer| {
        scene(s).await;
        let meeting = |participants: Vec<&str>| {
            let participants: Vec<Value> = participants
                .iter()
                .map(|actor| json!({"actor": {"reference": actor}, "status": "needs-action"}))
                .collect();
            json!({"resourceType": "Appointment", "status": "proposed",
                   "serviceType": [{"coding": [{"system": SERVICE_TYPE_SYSTEM, "code": SIP_MOTE}]}],
                   "participant": participants})
        };
        let only_region = meeting(vec!["Patient/p", "PractitionerRole/lakare"]);
        assert_eq!(
            rule_of(&s.post("Appointment", &only_region).await),
            "paraply-I10"
        );
        let without_patient = meeting(vec!["PractitionerRole/lakare", "PractitionerRole/omsorg"]);
        assert_eq!(
            rule_of(&s.post("Appointment", &without_patient).await),
            "paraply-I10"
        );
        assert_eq!(
            s.put(
                "RelatedPerson/lisa",
                &json!({"resourceType": "RelatedPerson", "id": "lisa",
                "patient": {"reference": "Patient/p"}})
            )
            .await
            .status,
            201
        );
        let with_lisa = meeting(vec![
            "Patient/p",
            "PractitionerRole/lakare",
            "PractitionerRole/omsorg",
            "RelatedPerson/lisa",
        ]);
        assert_eq!(
            rule_of(&s.post("Appointment", &with_lisa).await),
            "paraply-I10"
        );
        let full = meeting(vec![
            "Patient/p",
            "PractitionerRole/lakare",
            "PractitionerRole/omsorg",
        ]);
        assert_eq!(s.post("Appointment", &full).await.status, 201);
    }
);

on_both_backends!(
    an_agreed_time_is_booked_only_when_the_patient_accepts,
    async |s: &TestServer| {
        scene(s).await;
        // I9: a clinician cannot book an agreed time over the patient's head.
        assert_eq!(
            rule_of(
                &s.post("Appointment", &appointment("booked", "accepted", true))
                    .await
            ),
            "paraply-I9"
        );
        // An appointment set without the patient is not an agreed one (follow-up counts it).
        assert_eq!(
            s.post("Appointment", &appointment("booked", "accepted", false))
                .await
                .status,
            201
        );

        let id = s
            .create(&appointment("proposed", "needs-action", true))
            .await;
        let accepted = s
            .post("AppointmentResponse", &response(&id, "accepted"))
            .await;
        assert_eq!(accepted.status, 201, "{}", accepted.text);
        let booked = s.get(&format!("Appointment/{id}")).await;
        assert_eq!(booked.body["status"], "booked", "{}", booked.text);
        assert_eq!(booked.body["participant"][0]["status"], "accepted");
        assert_eq!(booked.body["meta"]["versionId"], "2");

        // Asking for another time puts it back to pending and shows who asked.
        let mut other_time = response(&id, "tentative");
        other_time["start"] = json!("2031-03-08T09:00:00+01:00");
        other_time["end"] = json!("2031-03-12T16:00:00+01:00");
        other_time["comment"] = json!("Jag kan inte på måndagar, gärna veckan efter.");
        assert_eq!(s.post("AppointmentResponse", &other_time).await.status, 201);
        let pending = s.get(&format!("Appointment/{id}")).await;
        assert_eq!(pending.body["status"], "pending");
        assert_eq!(pending.body["participant"][0]["status"], "tentative");
        let requests = s
            .get("AppointmentResponse?appointment.actor=PractitionerRole/lakare&part-status=tentative")
            .await;
        assert_eq!(requests.status, 200, "{}", requests.text);
        assert_eq!(
            requests.body["entry"].as_array().map(Vec::len),
            Some(1),
            "{}",
            requests.text
        );

        // Declining cancels it.
        assert_eq!(
            s.post("AppointmentResponse", &response(&id, "declined"))
                .await
                .status,
            201
        );
        assert_eq!(
            s.get(&format!("Appointment/{id}")).await.body["status"],
            "cancelled"
        );
    }
);

/// 32 writers race for what a rule allows once; the rule holds and every loser gets 422.
async fn race(nodes: &[&TestServer], path: &str, body: &Value, rule: &str) {
    let attempts = (0..32).map(|n| {
        let node = nodes[n % nodes.len()];
        let mut body = body.clone();
        if let Some(id) = body.get("id").and_then(Value::as_str) {
            body["id"] = json!(format!("{id}-{n}"));
        }
        let path = match body.get("id").and_then(Value::as_str) {
            Some(id) => format!("{path}/{id}"),
            None => path.to_owned(),
        };
        async move {
            let method = if body.get("id").is_some() {
                reqwest::Method::PUT
            } else {
                reqwest::Method::POST
            };
            node.send_json(method, &path, &body).await
        }
    });
    let replies = join_all(attempts).await;
    let won = replies.iter().filter(|r| r.status == 201).count();
    let refused: Vec<String> = replies
        .iter()
        .filter(|r| r.status != 201)
        .map(rule_of)
        .collect();
    assert_eq!(won, 1, "exactly one writer wins {rule}");
    assert!(refused.iter().all(|r| r == rule), "{refused:?}");
}

async fn races(nodes: &[&TestServer]) {
    scene(nodes[0]).await;
    race(
        nodes,
        "CareTeam",
        &fast_kontakt("2", "lakare"),
        "paraply-I1",
    )
    .await;
    for _ in 0..8 {
        assert_eq!(
            nodes[0]
                .post("CareTeam", &fast_kontakt("1", "sjukskoterska"))
                .await
                .status,
            201
        );
    }
    race(
        nodes,
        "CareTeam",
        &fast_kontakt("1", "omsorg"),
        "paraply-I2",
    )
    .await;
    let mut second = umbrella("umbrella-race", "active");
    second["id"] = json!("umbrella-race");
    assert_eq!(
        nodes[0]
            .put("CarePlan/umbrella", &umbrella("umbrella", "completed"))
            .await
            .status,
        200
    );
    race(nodes, "CarePlan", &second, "paraply-I5").await;
}

on_both_backends!(
    concurrent_writers_never_break_a_rule,
    async |s: &TestServer| {
        races(&[s]).await;
    }
);

/// The same race through two stateless nodes on one database.
async fn two_nodes(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let config = paraply_server::config::FileConfig::default();
    let first = TestServer::start(&database.url, config.clone()).await;
    let second = TestServer::start(&database.url, config).await;
    races(&[&first, &second]).await;
    first.stop().await;
    second.stop().await;
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_break_a_rule_on_postgres() {
    two_nodes(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_break_a_rule_on_sqlite() {
    two_nodes(Backend::Sqlite).await;
}

on_both_backends!(
    swedish_identifiers_are_checked_and_stored_in_one_spelling,
    async |s: &TestServer| {
        let bad = s
            .post(
                "Patient",
                &json!({"resourceType": "Patient",
                "identifier": [{"system": PNR, "value": "1"}]}),
            )
            .await;
        assert_eq!(bad.status, 422, "{}", bad.text);
        assert_eq!(
            bad.outcome_issue()["expression"][0],
            "Patient.identifier[0].value"
        );
        let wrong_check_digit = s
            .post(
                "Patient",
                &json!({"resourceType": "Patient",
                "identifier": [{"system": PNR, "value": "191212121213"}]}),
            )
            .await;
        assert_eq!(wrong_check_digit.status, 422);
        let bad_hsa = s
            .post(
                "Practitioner",
                &json!({"resourceType": "Practitioner",
                "identifier": [{"system": HSA, "value": "anna"}]}),
            )
            .await;
        assert_eq!(bad_hsa.status, 422, "{}", bad_hsa.text);

        let id = s
            .create(&json!({"resourceType": "Patient",
                "identifier": [{"system": "urn:oid:1.2.752.129.2.1.3.1", "value": "191212121212"}]}))
            .await;
        let stored = s.get(&format!("Patient/{id}")).await;
        assert_eq!(stored.body["identifier"][0]["system"], PNR);
    }
);

on_both_backends!(
    profiles_are_served_read_only_and_checked_on_write_and_by_validate,
    async |s: &TestServer| {
        let definition = s.get("StructureDefinition/fast-kontakt").await;
        assert_eq!(definition.status, 200);
        assert_eq!(definition.body["url"], profile::FAST_KONTAKT);
        assert_eq!(s.get("CodeSystem/plan-type").await.status, 200);
        assert_eq!(
            s.get("OperationDefinition/patientkontrakt").await.status,
            200
        );
        let listed = s.get("StructureDefinition").await;
        assert!(
            listed.body["total"].as_u64().unwrap() >= 11,
            "{}",
            listed.text
        );
        assert_eq!(
            s.put("StructureDefinition/fast-kontakt", &definition.body)
                .await
                .status,
            405
        );
        let metadata = s.get("metadata").await;
        let care_team = metadata.body["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "CareTeam")
            .unwrap()
            .clone();
        assert!(
            care_team["supportedProfile"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == profile::FAST_KONTAKT)
        );
        assert!(
            metadata
                .text
                .contains("OperationDefinition/patientkontrakt"),
            "the CapabilityStatement lists $patientkontrakt"
        );

        scene(s).await;
        let mut claimed = fast_kontakt("1", "sjukskoterska");
        claimed["meta"] = json!({"profile": [profile::FAST_KONTAKT]});
        claimed["participant"][0]
            .as_object_mut()
            .unwrap()
            .remove("member");
        let refused = s.post("CareTeam", &claimed).await;
        assert_eq!(refused.status, 422, "{}", refused.text);
        assert!(
            refused.text.contains("CareTeam.participant[0].member"),
            "{}",
            refused.text
        );

        let before = s.get("CareTeam?_summary=count").await.body["total"].clone();
        let validated = s.post("CareTeam/$validate", &claimed).await;
        assert_eq!(validated.status, 200, "{}", validated.text);
        assert_eq!(validated.body["resourceType"], "OperationOutcome");
        assert!(
            validated.text.contains("CareTeam.participant[0].member"),
            "{}",
            validated.text
        );
        let mut with_on_behalf_of = fast_kontakt("1", "sjukskoterska");
        with_on_behalf_of["participant"][0]["onBehalfOf"] = json!({"reference": "Organization/vc"});
        let invariant = s.post("CareTeam/$validate", &with_on_behalf_of).await;
        assert!(invariant.text.contains("ctm-1"), "{}", invariant.text);
        let fine = s
            .post("CareTeam/$validate", &fast_kontakt("1", "sjukskoterska"))
            .await;
        assert_eq!(
            fine.body["issue"][0]["severity"], "information",
            "{}",
            fine.text
        );
        assert_eq!(
            s.get("CareTeam?_summary=count").await.body["total"],
            before,
            "$validate stores nothing"
        );
    }
);

on_both_backends!(
    a_bundle_entry_and_the_same_request_alone_answer_alike_on_a_stale_version,
    async |s: &TestServer| {
        scene(s).await;
        let patient = s.get("Patient/p").await.body;
        assert_eq!(s.put("Patient/p", &patient).await.status, 200);
        let alone = s
            .request(reqwest::Method::PUT, "Patient/p")
            .header("content-type", "application/fhir+json")
            .header("if-match", "W/\"1\"")
            .body(patient.to_string());
        let alone = Reply::send(alone).await;
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": patient, "request": {"method": "PUT", "url": "Patient/p", "ifMatch": "W/\"1\""}}]});
        let in_bundle = s.post("", &bundle).await;
        assert_eq!(alone.status, 412);
        assert_eq!(in_bundle.status, alone.status, "{}", in_bundle.text);
        assert_eq!(
            in_bundle.outcome_issue()["code"],
            alone.outcome_issue()["code"]
        );
    }
);

/// Every demo patient's unified plan is a complete `document` that passes the independent
/// validator when one is configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unified_plan_of_every_demo_patient_is_a_valid_document() {
    let bed = TestBed::start(Backend::Sqlite).await.unwrap();
    let s = &bed.server;
    let demo: Value = serde_json::from_str(DEMO_BUNDLE).unwrap();
    let loaded = s.post("", &demo).await;
    assert_eq!(
        loaded.status, 200,
        "the demo passes every profile and rule: {}",
        loaded.text
    );
    let patients: Vec<String> = demo["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "Patient")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(patients.len() >= 3);
    let mut documents = Vec::new();
    for id in &patients {
        let reply = s.get(&format!("Patient/{id}/$patientkontrakt")).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["type"], "document");
        let composition = &reply.body["entry"][0]["resource"];
        assert_eq!(composition["resourceType"], "Composition");
        let sections: Vec<&str> = composition["section"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["code"]["coding"][0]["code"].as_str().unwrap())
            .collect();
        assert_eq!(
            sections,
            [
                "overenskommelse",
                "fasta-kontakter",
                "overenskomna-tider",
                "planer",
                "sip",
                "narstaende",
                "kontaktvagar"
            ]
        );
        for entry in reply.body["entry"].as_array().unwrap().iter().skip(1) {
            assert!(
                entry["fullUrl"].as_str().unwrap().starts_with("http"),
                "absolute fullUrl: {entry}"
            );
        }
        documents.push((id.clone(), reply.text));
    }
    let tolvan = &documents
        .iter()
        .find(|(id, _)| id == "demo-tolvan")
        .unwrap()
        .1;
    assert!(tolvan.contains("Anna Berg"), "names his fast läkarkontakt");
    assert_eq!(s.get("Patient/nobody/$patientkontrakt").await.status, 404);
    assert_eq!(
        s.get("Patient/demo-tolvan/$patientkontrakt?start=2027-13-01")
            .await
            .status,
        400
    );
    let documents: Vec<(&str, &str)> = documents
        .iter()
        .map(|(id, text)| (id.as_str(), text.as_str()))
        .collect();
    paraply_fhir_validator::assert_valid(&documents);
    bed.finish().await;
}

/// `paraply synth` populations load through the same write path as any client's data: every
/// plan passes the profiles, the invariants and the rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synthetic_population_passes_every_rule() {
    let bed = TestBed::start(Backend::Sqlite).await.unwrap();
    let options = paraply_synth::SynthOptions {
        patients: 120,
        ..paraply_synth::SynthOptions::default()
    };
    let report = paraply_synth::load(&bed.server.base, &options, 2)
        .await
        .unwrap_or_else(|error| panic!("the population loads: {error}"));
    assert_eq!(report.patients, 120);
    bed.finish().await;
}

/// `Parameters` of an operation call: `(name, valueX key, value)`.
fn parameters(values: &[(&str, &str, Value)]) -> Value {
    let parameter: Vec<Value> = values
        .iter()
        .map(|(name, key, value)| json!({"name": name, *key: value}))
        .collect();
    json!({"resourceType": "Parameters", "parameter": parameter})
}

fn respond(actor: &str, answer: &str) -> Value {
    parameters(&[
        ("actor", "valueReference", json!({"reference": actor})),
        ("answer", "valueCode", json!(answer)),
    ])
}

fn statuses(meeting: &Value) -> Vec<&str> {
    meeting["participant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect()
}

fn found(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["resource"]["resourceType"].as_str().unwrap(),
                        e["resource"]["id"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

on_both_backends!(
    a_sip_goes_from_initiation_through_consent_and_a_booked_meeting_to_completed_tasks,
    async |s: &TestServer| {
        scene(s).await;
        // Initiated as a draft by the region, with the kommun taking part.
        let mut plan = sip("sip", "draft", "region", &["kommun"]);
        plan["period"] = json!({"start": "2026-01-01", "end": "2026-06-30"});
        assert_eq!(s.put("CarePlan/sip", &plan).await.status, 201);
        let sip_type = format!("{PLAN_TYPE_SYSTEM}|SIP");
        let waiting = s
            .get(&format!(
                "CarePlan?category={sip_type}&status=draft,on-hold"
            ))
            .await;
        assert_eq!(found(&waiting), vec!["CarePlan/sip"], "waiting for consent");

        // Not active without the patient's consent (I6).
        plan["status"] = json!("active");
        let tasks = [insats("sip", "vc"), insats("sip", "hemtjanst")];
        let activate = |plan: &Value, with_consent: bool| {
            let mut entries = vec![
                json!({"resource": plan, "request": {"method": "PUT", "url": "CarePlan/sip"}}),
            ];
            entries.extend(
                tasks
                    .iter()
                    .map(|t| json!({"resource": t, "request": {"method": "POST", "url": "Task"}})),
            );
            if with_consent {
                let mut consent = sip_consent("sip");
                consent["id"] = json!("sip-samtycke");
                entries.push(json!({"resource": consent, "request": {"method": "PUT", "url": "Consent/sip-samtycke"}}));
            }
            json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
        };
        assert_eq!(
            rule_of(&s.post("", &activate(&plan, false)).await),
            "paraply-I6"
        );
        let activated = s.post("", &activate(&plan, true)).await;
        assert_eq!(activated.status, 200, "{}", activated.text);

        // The coordinator proposes a meeting with both huvudmän in one call.
        let proposed = s
            .post(
                "CarePlan/sip/$sip-meeting",
                &parameters(&[
                    ("start", "valueDateTime", json!("2031-03-01T09:00:00+01:00")),
                    ("end", "valueDateTime", json!("2031-03-01T10:00:00+01:00")),
                    (
                        "invitee",
                        "valueReference",
                        json!({"reference": "PractitionerRole/lakare"}),
                    ),
                    (
                        "invitee",
                        "valueReference",
                        json!({"reference": "PractitionerRole/omsorg"}),
                    ),
                    ("description", "valueString", json!("Första SIP-mötet")),
                ]),
            )
            .await;
        assert_eq!(proposed.status, 201, "{}", proposed.text);
        assert_eq!(proposed.body["status"], "proposed");
        assert_eq!(statuses(&proposed.body), vec!["needs-action"; 3]);
        let meeting = proposed.body["id"].as_str().unwrap().to_owned();
        let respond_path = format!("Appointment/{meeting}/$respond");

        // Answers: booked only once the patient, a region and a kommun participant accept.
        let answered = s
            .post(
                &respond_path,
                &respond("PractitionerRole/lakare", "accepted"),
            )
            .await;
        assert_eq!(answered.status, 200, "{}", answered.text);
        assert_eq!(answered.body["status"], "pending");
        let answered = s
            .post(&respond_path, &respond("Patient/p", "accepted"))
            .await;
        assert_eq!(answered.body["status"], "pending");
        let mut forced = answered.body.clone();
        forced["status"] = json!("booked");
        assert_eq!(
            rule_of(&s.put(&format!("Appointment/{meeting}"), &forced).await),
            "paraply-I10",
            "not booked before the kommun accepts"
        );
        let uninvited = s
            .post(
                &respond_path,
                &respond("PractitionerRole/sjukskoterska", "accepted"),
            )
            .await;
        assert_eq!(uninvited.status, 422, "{}", uninvited.text);
        let booked = s
            .post(
                &respond_path,
                &respond("PractitionerRole/omsorg", "accepted"),
            )
            .await;
        assert_eq!(booked.body["status"], "booked", "{}", booked.text);
        let upcoming = s
            .get("Appointment?actor:PractitionerRole.organization=Organization/hemtjanst&service-type=sip-mote&date=ge2031-01-01")
            .await;
        assert_eq!(
            found(&upcoming),
            vec![format!("Appointment/{meeting}")],
            "upcoming for the kommun unit"
        );

        // Moving it keeps no answer: everyone is asked again.
        let mut moved_by_hand = booked.body.clone();
        moved_by_hand["start"] = json!("2031-03-08T09:00:00+01:00");
        moved_by_hand["end"] = json!("2031-03-08T10:00:00+01:00");
        assert_eq!(
            rule_of(
                &s.put(&format!("Appointment/{meeting}"), &moved_by_hand)
                    .await
            ),
            "paraply-I10"
        );
        let moved = s
            .post(
                "CarePlan/sip/$sip-meeting",
                &parameters(&[
                    ("start", "valueDateTime", json!("2031-03-08T09:00:00+01:00")),
                    ("end", "valueDateTime", json!("2031-03-08T10:00:00+01:00")),
                    (
                        "meeting",
                        "valueReference",
                        json!({"reference": format!("Appointment/{meeting}")}),
                    ),
                ]),
            )
            .await;
        assert_eq!(moved.status, 200, "{}", moved.text);
        assert_eq!(moved.body["status"], "pending");
        assert_eq!(statuses(&moved.body), vec!["needs-action"; 3]);

        // A meeting without a kommun participant is refused.
        let region_only = s
            .post(
                "CarePlan/sip/$sip-meeting",
                &parameters(&[
                    ("start", "valueDateTime", json!("2031-04-01T09:00:00+01:00")),
                    ("end", "valueDateTime", json!("2031-04-01T10:00:00+01:00")),
                    (
                        "invitee",
                        "valueReference",
                        json!({"reference": "PractitionerRole/lakare"}),
                    ),
                ]),
            )
            .await;
        assert_eq!(rule_of(&region_only), "paraply-I10");

        // The kommun's open tasks, then their progress to completed (or rejected with a reason).
        let open = s
            .get("Task?owner=Organization/hemtjanst&status=requested,accepted,in-progress")
            .await;
        let kommun_tasks = found(&open);
        assert_eq!(kommun_tasks.len(), 1, "{}", open.text);
        let task_path = &kommun_tasks[0];
        for step in ["accepted", "in-progress", "completed"] {
            let mut task = s.get(task_path).await.body;
            task["status"] = json!(step);
            assert_eq!(s.put(task_path, &task).await.status, 200, "{step}");
        }
        let open = s
            .get("Task?owner=Organization/hemtjanst&status=requested,accepted,in-progress")
            .await;
        assert!(
            found(&open).is_empty(),
            "no open kommun tasks once completed"
        );
        let region_task = found(&s.get("Task?owner=Organization/vc").await).remove(0);
        // I8: the region keeps an effort of its own when it rejects one.
        assert_eq!(s.post("Task", &insats("sip", "vc")).await.status, 201);
        let mut rejected = s.get(&region_task).await.body;
        rejected["status"] = json!("rejected");
        rejected["statusReason"] = json!({"text": "Insatsen ges redan av primärvården"});
        let reply = s.put(&region_task, &rejected).await;
        assert_eq!(reply.status, 200, "{}", reply.text);

        // Past its follow-up date (period end), found by the coordinator's search.
        let overdue = s
            .get(&format!(
                "CarePlan?category={sip_type}&status=active&date=eb2026-12-01"
            ))
            .await;
        assert_eq!(found(&overdue), vec!["CarePlan/sip"]);
        let not_yet = s
            .get(&format!(
                "CarePlan?category={sip_type}&status=active&date=eb2026-01-15"
            ))
            .await;
        assert!(found(&not_yet).is_empty());

        // The patient withdraws the consent: the SIP goes on hold in the same write.
        let mut consent = s.get("Consent/sip-samtycke").await.body;
        consent["status"] = json!("inactive");
        let withdrawn = s.put("Consent/sip-samtycke", &consent).await;
        assert_eq!(withdrawn.status, 200, "{}", withdrawn.text);
        assert_eq!(s.get("CarePlan/sip").await.body["status"], "on-hold");
        let waiting = s
            .get(&format!(
                "CarePlan?category={sip_type}&status=draft,on-hold"
            ))
            .await;
        assert_eq!(found(&waiting), vec!["CarePlan/sip"]);
    }
);

fn slot(id: &str, start: &str, end: &str, status: &str) -> Value {
    json!({"resourceType": "Slot", "id": id, "status": status,
           "schedule": {"reference": "Schedule/vc-schema"},
           "serviceType": [{"text": "Återbesök"}],
           "start": start, "end": end})
}

fn answer_as_patient(appointment: &str, status: &str, wish: Option<(&str, &str)>) -> Value {
    let mut answer = response(appointment, status);
    if let Some((start, end)) = wish {
        answer["start"] = json!(start);
        answer["end"] = json!(end);
    }
    answer
}

on_both_backends!(
    a_booking_system_finds_holds_and_books_an_agreed_time,
    async |s: &TestServer| {
        scene(s).await;
        let mut entries = vec![put(
            json!({"resourceType": "Schedule", "id": "vc-schema", "active": true,
            "actor": [{"reference": "PractitionerRole/lakare"}]}),
        )];
        for (id, start, end, status) in [
            (
                "s0",
                "2031-03-03T08:40:00+01:00",
                "2031-03-03T09:00:00+01:00",
                "busy",
            ),
            (
                "s1",
                "2031-03-03T09:00:00+01:00",
                "2031-03-03T09:20:00+01:00",
                "free",
            ),
            (
                "s2",
                "2031-03-03T09:20:00+01:00",
                "2031-03-03T09:40:00+01:00",
                "free",
            ),
            (
                "s3",
                "2031-03-03T09:40:00+01:00",
                "2031-03-03T10:00:00+01:00",
                "free",
            ),
        ] {
            entries.push(put(slot(id, start, end, status)));
        }
        let published = s
            .post(
                "",
                &json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
            )
            .await;
        assert_eq!(published.status, 200, "{}", published.text);

        let find = "Appointment/$find?actor=PractitionerRole/lakare&start=2031-03-01&end=2031-03-31&patient=Patient/p";
        let slots_found = |reply: &Reply| -> Vec<String> {
            assert_eq!(reply.status, 200, "{}", reply.text);
            reply.body["entry"]
                .as_array()
                .map(|entries| {
                    entries
                        .iter()
                        .map(|e| {
                            e["resource"]["slot"][0]["reference"]
                                .as_str()
                                .unwrap()
                                .to_owned()
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let found = s.get(find).await;
        assert_eq!(
            slots_found(&found),
            vec!["Slot/s1", "Slot/s2", "Slot/s3"],
            "free times only, in order"
        );
        let first = &found.body["entry"][0]["resource"];
        assert_eq!(first["status"], "proposed");
        assert_eq!(first["participant"][0]["actor"]["reference"], "Patient/p");
        // Paged.
        let page = s.get(&format!("{find}&_count=2")).await;
        assert_eq!(slots_found(&page).len(), 2);
        let next = page.body["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let next = next.strip_prefix(&format!("{}/", s.base)).unwrap_or(&next);
        assert_eq!(slots_found(&s.get(next).await), vec!["Slot/s3"]);

        // Held for the patient: no one else is offered it.
        let hold = |slot: &str, appointment: Option<&str>| {
            let mut parameter = vec![
                json!({"name": "slot", "valueReference": {"reference": slot}}),
                json!({"name": "patient", "valueReference": {"reference": "Patient/p"}}),
            ];
            if let Some(appointment) = appointment {
                parameter.push(
                    json!({"name": "appointment", "valueReference": {"reference": appointment}}),
                );
            }
            json!({"resourceType": "Parameters", "parameter": parameter})
        };
        let held = s.post("Appointment/$hold", &hold("Slot/s1", None)).await;
        assert_eq!(held.status, 201, "{}", held.text);
        let appointment = held.body["id"].as_str().unwrap().to_owned();
        assert_eq!(s.get("Slot/s1").await.body["status"], "busy-tentative");
        assert_eq!(slots_found(&s.get(find).await), vec!["Slot/s2", "Slot/s3"]);
        let again = s.post("Appointment/$hold", &hold("Slot/s1", None)).await;
        assert_eq!(again.status, 409, "{}", again.text);

        // Not booked before the patient accepts (I9).
        let early = s
            .post(
                &format!("Appointment/{appointment}/$book"),
                &json!({"resourceType": "Parameters"}),
            )
            .await;
        assert_eq!(rule_of(&early), "paraply-I9");

        // 32 at once for one time: exactly one wins.
        let race = hold("Slot/s2", None);
        let racers = (0..32).map(|_| s.post("Appointment/$hold", &race));
        let statuses: Vec<u16> = join_all(racers).await.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 409).count(),
            31,
            "{statuses:?}"
        );

        // The patient accepts: booked, the time busy.
        let path = format!("Appointment/{appointment}");
        let accept = async |slot: &str| {
            let answer = answer_as_patient(&appointment, "accepted", None);
            assert_eq!(s.post("AppointmentResponse", &answer).await.status, 201);
            assert_eq!(s.get(&path).await.body["status"], "booked");
            assert_eq!(s.get(slot).await.body["status"], "busy");
        };
        accept("Slot/s1").await;
        let booked = s
            .post(
                &format!("{path}/$book"),
                &json!({"resourceType": "Parameters"}),
            )
            .await;
        assert_eq!(booked.status, 200, "{}", booked.text);
        assert_eq!(booked.body["status"], "booked");

        // Another time, asked for by the patient: the booking moves, the old time is free.
        let wish = Some(("2031-03-03T09:40:00+01:00", "2031-03-03T10:00:00+01:00"));
        assert_eq!(
            s.post(
                "AppointmentResponse",
                &answer_as_patient(&appointment, "tentative", wish)
            )
            .await
            .status,
            201
        );
        assert_eq!(s.get(&path).await.body["status"], "pending");
        let moved = s
            .post(
                "Appointment/$hold",
                &hold("Slot/s3", Some(&format!("Appointment/{appointment}"))),
            )
            .await;
        assert_eq!(moved.status, 200, "{}", moved.text);
        assert_eq!(moved.body["start"], "2031-03-03T09:40:00+01:00");
        assert_eq!(
            s.get("Slot/s1").await.body["status"],
            "free",
            "the old time is free again"
        );
        accept("Slot/s3").await;
        assert_eq!(
            slots_found(&s.get(find).await),
            vec!["Slot/s1"],
            "s2 is held by the race's winner"
        );

        // A hold that ran out and was taken since cannot be booked by its first holder.
        let first = s.post("Appointment/$hold", &hold("Slot/s1", None)).await;
        assert_eq!(first.status, 201, "{}", first.text);
        let first = first.body["id"].as_str().unwrap().to_owned();
        let mut expired = s.get("Slot/s1").await.body;
        for extension in expired["extension"].as_array_mut().unwrap() {
            if extension["url"] == paraply_fhir::codes::SLOT_HELD_UNTIL_EXTENSION {
                extension["valueInstant"] = json!("2020-01-01T00:00:00Z");
            }
        }
        assert_eq!(s.put("Slot/s1", &expired).await.status, 200);
        let second = s.post("Appointment/$hold", &hold("Slot/s1", None)).await;
        assert_eq!(
            second.status, 201,
            "the run-out hold frees the time: {}",
            second.text
        );
        let second = second.body["id"].as_str().unwrap().to_owned();
        let late = s
            .post(
                "AppointmentResponse",
                &answer_as_patient(&first, "accepted", None),
            )
            .await;
        assert_eq!(late.status, 409, "{}", late.text);
        assert_eq!(
            s.get(&format!("Appointment/{first}")).await.body["status"],
            "proposed"
        );
        let booked_second = s
            .post(
                "AppointmentResponse",
                &answer_as_patient(&second, "accepted", None),
            )
            .await;
        assert_eq!(booked_second.status, 201, "{}", booked_second.text);
        assert_eq!(s.get("Slot/s1").await.body["status"], "busy");

        // Cancelled: the time is offered again.
        let mut cancelled = s.get(&path).await.body;
        cancelled["status"] = json!("cancelled");
        assert_eq!(s.put(&path, &cancelled).await.status, 200);
        assert_eq!(s.get("Slot/s3").await.body["status"], "free");
    }
);

/// Two nodes on one PostgreSQL database: 32 holds of one time, half through each node —
/// exactly one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_is_held_once_through_two_nodes_on_postgres() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let config = paraply_server::config::FileConfig::default();
    let nodes = [
        TestServer::start(&database.url, config.clone()).await,
        TestServer::start(&database.url, config).await,
    ];
    scene(&nodes[0]).await;
    let published = nodes[0]
        .post(
            "",
            &json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            put(json!({"resourceType": "Schedule", "id": "vc-schema", "active": true,
                "actor": [{"reference": "PractitionerRole/lakare"}]})),
            put(slot("s1", "2031-03-03T09:00:00+01:00", "2031-03-03T09:20:00+01:00", "free"))]}),
        )
        .await;
    assert_eq!(published.status, 200, "{}", published.text);
    let hold = json!({"resourceType": "Parameters", "parameter": [
        {"name": "slot", "valueReference": {"reference": "Slot/s1"}},
        {"name": "patient", "valueReference": {"reference": "Patient/p"}}]});
    let racers = (0..32).map(|n| nodes[n % 2].post("Appointment/$hold", &hold));
    let statuses: Vec<u16> = join_all(racers).await.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        31,
        "{statuses:?}"
    );
    let held = nodes[1].get("Appointment?slot=Slot/s1").await;
    assert_eq!(
        held.body["entry"].as_array().map_or(0, Vec::len),
        1,
        "one appointment holds it"
    );
    for node in nodes {
        node.stop().await;
    }
    database.remove().await;
}
