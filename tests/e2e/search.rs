//! FHIR search (R4 search.html) end to end: every parameter type and modifier, chaining,
//! `_has`, result control and paging, on both backends.

use super::*;

const PNR: &str = "http://electronichealth.se/identifier/personnummer";
const CATEGORY: &str = "https://paraply.se/fhir/CodeSystem/care-team-category";
const ROLE: &str = "urn:oid:1.2.752.129.5.1.69";
const HUVUDMAN: &str = "https://paraply.se/fhir/CodeSystem/huvudman-type";

fn put(resource: Value) -> Value {
    let url = format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    );
    json!({"resource": resource, "request": {"method": "PUT", "url": url}})
}

fn fast_kontakt(id: &str, patient: &str, status: &str, role: &str) -> Value {
    json!({"resourceType": "CareTeam", "id": id, "status": status, "subject": {"reference": format!("Patient/{patient}")},
           "category": [{"coding": [{"system": CATEGORY, "code": "fast-kontakt", "display": "Fast kontakt"}]}],
           "participant": [{"role": [{"coding": [{"system": ROLE, "code": role}]}],
                            "member": {"reference": "PractitionerRole/r1"}}]})
}

/// A half-hour appointment (R4 app-2/app-3: a booked appointment has both start and end).
fn appointment(id: &str, patient: &str, start: &str) -> Value {
    let end = start.replacen("T09:00", "T09:30", 1);
    json!({"resourceType": "Appointment", "id": id, "status": "booked", "start": start, "end": end,
           "participant": [{"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"},
                           {"actor": {"reference": "PractitionerRole/r1"}, "status": "accepted"}]})
}

fn task(id: &str, owner: &str, status: &str) -> Value {
    json!({"resourceType": "Task", "id": id, "status": status, "intent": "plan",
           "for": {"reference": "Patient/p1"}, "owner": {"reference": owner}})
}

/// A small patientkontrakt world: three patients, their fixed contacts, plans,
/// appointments and tasks, and the region and kommun as huvudmän.
async fn load_world(s: &TestServer) {
    let entries = vec![
        put(
            json!({"resourceType": "Patient", "id": "p1", "identifier": [{"system": PNR, "value": "191212121212"}],
                   "name": [{"family": "Tolvansson", "given": ["Tolvan"]}], "gender": "male", "birthDate": "1912-12-12",
                   "meta": {"profile": ["http://example.org/fhir/StructureDefinition/patient"]}}),
        ),
        put(
            json!({"resourceType": "Patient", "id": "p2", "identifier": [
                       {"system": PNR, "value": "194005051232"},
                       {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "system": "urn:journal", "value": "J-77"}],
                   "name": [{"family": "Ågren", "given": ["Åsa"]}], "gender": "female", "birthDate": "1940-05-05"}),
        ),
        put(
            json!({"resourceType": "Patient", "id": "p3", "name": [{"family": "Öberg", "given": ["Lena"]}], "birthDate": "1990-01-01"}),
        ),
        put(
            json!({"resourceType": "Organization", "id": "region", "name": "Region Stockholm",
                   "type": [{"coding": [{"system": HUVUDMAN, "code": "region"}]}]}),
        ),
        put(
            json!({"resourceType": "Organization", "id": "kommun", "name": "Solna stad",
                   "type": [{"coding": [{"system": HUVUDMAN, "code": "kommun"}]}]}),
        ),
        put(
            json!({"resourceType": "Organization", "id": "vc", "name": "Vårdcentralen Solna", "partOf": {"reference": "Organization/region"}}),
        ),
        put(
            json!({"resourceType": "PractitionerRole", "id": "r1", "organization": {"reference": "Organization/vc"}}),
        ),
        put(fast_kontakt("ct1", "p1", "active", "2")),
        put(fast_kontakt("ct2", "p1", "inactive", "1")),
        put(
            json!({"resourceType": "CareTeam", "id": "ct3", "status": "active", "subject": {"reference": "Patient/p2"},
                   "category": [{"coding": [{"system": CATEGORY, "code": "sip-team"}]}]}),
        ),
        put(
            json!({"resourceType": "CarePlan", "id": "cp1", "status": "active", "intent": "plan", "subject": {"reference": "Patient/p1"},
                   "careTeam": [{"reference": "CareTeam/ct1"}], "author": {"reference": "PractitionerRole/r1"},
                   "period": {"start": "2026-01-01"}}),
        ),
        put(
            json!({"resourceType": "CarePlan", "id": "cp2", "status": "active", "intent": "plan", "subject": {"reference": "Patient/p1"},
                   "partOf": [{"reference": "CarePlan/cp1"}], "author": {"reference": "Organization/region"},
                   "contributor": [{"reference": "Organization/kommun"}], "careTeam": [{"reference": "CareTeam/ct3"}]}),
        ),
        put(
            json!({"resourceType": "CarePlan", "id": "cp3", "status": "draft", "intent": "plan", "subject": {"reference": "Patient/p2"}}),
        ),
        put(appointment("a1", "p1", "2027-01-10T09:00:00+01:00")),
        put(appointment("a2", "p1", "2026-01-01T09:00:00+01:00")),
        put(appointment("a3", "p2", "2027-02-01T09:00:00+01:00")),
        put(appointment("a4", "p1", "2027-03-01T09:00:00+01:00")),
        put(task("t1", "Organization/region", "requested")),
        put(task("t2", "Organization/region", "accepted")),
        put(task("t3", "Organization/kommun", "completed")),
        put(
            json!({"resourceType": "Encounter", "id": "e1", "status": "finished", "class": {"code": "AMB"},
                   "length": {"value": 45, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"}}),
        ),
    ];
    let reply = s
        .post(
            "",
            &json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// The ids of the matches, in order.
async fn ids(s: &TestServer, query: &str) -> Vec<String> {
    let reply = s.get(query).await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.text);
    matches(&reply)
}

fn matches(reply: &Reply) -> Vec<String> {
    reply.body["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

on_both_backends!(
    token_searches_with_systems_and_modifiers,
    async |s: &TestServer| {
        load_world(s).await;
        assert_eq!(
            ids(s, "CareTeam?patient=p1&category=fast-kontakt&status=active").await,
            ["ct1"]
        );
        assert_eq!(
            sorted(ids(s, "CareTeam?status=active,inactive&patient=p1").await),
            ["ct1", "ct2"]
        );
        assert_eq!(
            sorted(ids(s, &format!("CareTeam?category={CATEGORY}|")).await),
            ["ct1", "ct2", "ct3"]
        );
        assert_eq!(
            ids(s, &format!("CareTeam?category={CATEGORY}|sip-team")).await,
            ["ct3"]
        );
        assert!(
            ids(s, "CareTeam?category=|sip-team").await.is_empty(),
            "|code means no system"
        );
        assert_eq!(
            sorted(ids(s, "Patient?gender:not=male").await),
            ["p2", "p3"],
            ":not includes resources without the element"
        );
        assert_eq!(ids(s, "Patient?gender:missing=true").await, ["p3"]);
        assert_eq!(
            sorted(ids(s, "Patient?gender:missing=false").await),
            ["p1", "p2"]
        );
        assert_eq!(
            sorted(ids(s, "CareTeam?category:text=fast").await),
            ["ct1", "ct2"]
        );
        assert_eq!(
            ids(
                s,
                "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|J-77"
            )
            .await,
            ["p2"]
        );
        assert_eq!(
            ids(
                s,
                "Patient?identifier=urn:oid:1.2.752.129.2.1.3.1|191212121212"
            )
            .await,
            ["p1"]
        );
    }
);

on_both_backends!(
    string_searches_ignore_case_and_accents_unless_exact,
    async |s: &TestServer| {
        load_world(s).await;
        assert_eq!(ids(s, "Patient?family=agr").await, ["p2"]);
        assert_eq!(ids(s, "Patient?family=ÅGR").await, ["p2"]);
        assert_eq!(ids(s, "Patient?family:exact=Ågren").await, ["p2"]);
        assert!(ids(s, "Patient?family:exact=agren").await.is_empty());
        assert_eq!(ids(s, "Patient?name:contains=ber").await, ["p3"]);
        assert_eq!(ids(s, "Patient?name=lena").await, ["p3"]);
        assert_eq!(ids(s, "Organization?name=solna").await, ["kommun"]);
    }
);

on_both_backends!(reference_searches_chains_and_has, async |s: &TestServer| {
    load_world(s).await;
    assert_eq!(
        sorted(ids(s, "CarePlan?subject=Patient/p1").await),
        ["cp1", "cp2"]
    );
    assert_eq!(sorted(ids(s, "CarePlan?patient=p1").await), ["cp1", "cp2"]);
    assert_eq!(
        sorted(ids(s, "CarePlan?subject:Patient=p1").await),
        ["cp1", "cp2"]
    );
    assert_eq!(
        sorted(ids(s, &format!("CarePlan?patient={}/Patient/p1", s.base)).await),
        ["cp1", "cp2"]
    );
    assert_eq!(ids(s, "CarePlan?part-of=CarePlan/cp1").await, ["cp2"]);
    assert_eq!(
        ids(s, "CarePlan?patient=p1&part-of:missing=true").await,
        ["cp1"]
    );
    assert_eq!(
        sorted(
            ids(
                s,
                &format!("CareTeam?patient.identifier={PNR}|191212121212")
            )
            .await
        ),
        ["ct1", "ct2"]
    );
    assert_eq!(ids(s, "CareTeam?patient.family=ågren").await, ["ct3"]);
    assert_eq!(
        sorted(ids(s, "Patient?_has:CareTeam:patient:status=active").await),
        ["p1", "p2"]
    );
    assert_eq!(
        ids(s, "Patient?_has:CarePlan:patient:status=draft").await,
        ["p2"]
    );
    assert_eq!(
        sorted(
            ids(
                s,
                "Task?owner=Organization/region&status=requested,accepted"
            )
            .await
        ),
        ["t1", "t2"]
    );
});

on_both_backends!(
    paraply_parameters_find_contacts_and_huvudman,
    async |s: &TestServer| {
        load_world(s).await;
        assert_eq!(
            ids(s, &format!("CareTeam?participant-role={ROLE}|2")).await,
            ["ct1"]
        );
        assert_eq!(
            ids(s, "CarePlan?huvudman=Organization/kommun").await,
            ["cp2"]
        );
        assert_eq!(
            ids(s, "CarePlan?huvudman=Organization/region").await,
            ["cp2"]
        );
        assert_eq!(
            ids(s, "Organization?huvudman-type=kommun").await,
            ["kommun"]
        );
        assert_eq!(
            sorted(ids(s, "CareTeam?participant=PractitionerRole/r1").await),
            ["ct1", "ct2"]
        );
    }
);

on_both_backends!(date_prefixes_compare_ranges, async |s: &TestServer| {
    load_world(s).await;
    assert_eq!(
        ids(s, "Appointment?patient=p1&date=ge2026-11-22&_sort=date").await,
        ["a1", "a4"]
    );
    assert_eq!(ids(s, "Appointment?date=lt2026-06").await, ["a2"]);
    assert_eq!(ids(s, "Appointment?date=2027-01").await, ["a1"]);
    assert_eq!(ids(s, "Appointment?date=eq2027-01-10").await, ["a1"]);
    assert_eq!(
        sorted(ids(s, "Appointment?date=ne2027-01-10").await),
        ["a2", "a3", "a4"]
    );
    assert_eq!(
        sorted(ids(s, "Appointment?date=sa2027-01-31").await),
        ["a3", "a4"]
    );
    assert_eq!(ids(s, "Appointment?date=eb2026-02").await, ["a2"]);
    assert_eq!(ids(s, "Appointment?date=gt2027-02-15").await, ["a4"]);
    assert_eq!(
        sorted(ids(s, "Appointment?date=le2027-01-10").await),
        ["a1", "a2"]
    );
    assert_eq!(ids(s, "Appointment?date=ap2027-03-01").await, ["a4"]);
    assert_eq!(ids(s, "Patient?birthdate=1912").await, ["p1"]);
    assert_eq!(
        ids(s, "CarePlan?date=ge2030-01-01").await,
        ["cp1"],
        "an open period reaches forever"
    );
    assert_eq!(s.get("Appointment?date=ge22-11-2026").await.status, 400);
});

on_both_backends!(id_last_updated_uri_and_quantity, async |s: &TestServer| {
    load_world(s).await;
    assert_eq!(sorted(ids(s, "Patient?_id=p1,p3").await), ["p1", "p3"]);
    assert_eq!(
        ids(
            s,
            "Patient?_profile=http://example.org/fhir/StructureDefinition/patient"
        )
        .await,
        ["p1"]
    );
    assert_eq!(
        ids(s, "Patient?_profile:below=http://example.org/fhir").await,
        ["p1"]
    );
    assert_eq!(ids(s, "Encounter?length=gt30").await, ["e1"]);
    assert!(ids(s, "Encounter?length=lt30").await.is_empty());
    assert_eq!(
        ids(s, "Encounter?length=45|http://unitsofmeasure.org|min").await,
        ["e1"]
    );
    assert_eq!(
        ids(s, "Patient?_lastUpdated=gt2000-01-01&_id=p2").await,
        ["p2"]
    );
    assert!(ids(s, "Patient?_lastUpdated=gt2999-01-01").await.is_empty());
});

on_both_backends!(sort_by_several_keys, async |s: &TestServer| {
    load_world(s).await;
    assert_eq!(
        ids(s, "Appointment?_sort=date").await,
        ["a2", "a1", "a3", "a4"]
    );
    assert_eq!(
        ids(s, "Appointment?_sort=-date").await,
        ["a4", "a3", "a1", "a2"]
    );
    assert_eq!(ids(s, "Patient?_sort=family").await, ["p2", "p3", "p1"]);
    assert_eq!(
        ids(s, "CareTeam?_sort=status,-_id").await,
        ["ct3", "ct1", "ct2"]
    );
    assert_eq!(s.get("Patient?_sort=colour").await.status, 400);
});

/// The URL of the reply's `relation` link, if it has one.
fn link(reply: &Reply, relation: &str) -> Option<String> {
    reply.body["link"].as_array().and_then(|links| {
        links
            .iter()
            .find(|l| l["relation"] == relation)
            .map(|l| l["url"].as_str().unwrap_or_default().to_owned())
    })
}

/// The parameter a lenient search reports it ignored, from its `outcome` entry.
fn ignored_parameter(reply: &Reply) -> &str {
    reply.body["entry"]
        .as_array()
        .and_then(|entries| entries.iter().find(|e| e["search"]["mode"] == "outcome"))
        .and_then(|outcome| outcome["resource"]["issue"][0]["expression"][0].as_str())
        .unwrap_or("(no outcome entry)")
}

/// Follows `relation` links from `first` until none is left.
async fn walk(s: &TestServer, first: &str, relation: &str) -> Vec<String> {
    let reply = s.get(first).await;
    follow(s, reply, relation).await
}

/// The matches of `reply` and of the pages its `relation` links lead to.
async fn follow(s: &TestServer, mut reply: Reply, relation: &str) -> Vec<String> {
    let mut seen = matches(&reply);
    for _ in 0..20 {
        let Some(next) = link(&reply, relation) else {
            return seen;
        };
        reply = Reply::send(s.client.get(&next)).await;
        assert_eq!(reply.status, 200, "{next}: {}", reply.text);
        seen.extend(matches(&reply));
    }
    panic!("paging did not end");
}

on_both_backends!(
    keyset_paging_walks_forward_and_back_and_survives_writes,
    async |s: &TestServer| {
        load_world(s).await;
        let all = ids(s, "Appointment?_sort=date&_count=100").await;
        assert_eq!(
            walk(s, "Appointment?_sort=date&_count=1", "next").await,
            all
        );
        let page1 = s
            .get("Appointment?_sort=date&_count=2&_total=accurate")
            .await;
        assert_eq!(page1.body["total"], 4);
        let next = link(&page1, "next").unwrap();
        // Writes before and after the boundary between two page reads move nothing.
        s.put(
            "Appointment/early",
            &appointment("early", "p2", "2025-01-01T09:00:00Z"),
        )
        .await;
        s.put(
            "Appointment/late",
            &appointment("late", "p2", "2028-01-01T09:00:00Z"),
        )
        .await;
        let page2 = Reply::send(s.client.get(&next)).await;
        assert_eq!(matches(&page2), ["a3", "a4"]);
        let previous = link(&page2, "previous").unwrap();
        let back = Reply::send(s.client.get(&previous)).await;
        assert_eq!(matches(&back), ["a2", "a1"]);
        let descending = walk(s, "Appointment?_sort=-date&_count=3", "next").await;
        assert_eq!(descending, ["late", "a4", "a3", "a1", "a2", "early"]);
        assert_eq!(s.get("Appointment?_page=garbage").await.status, 400);
    }
);

on_both_backends!(
    without_sort_pages_follow_writes_and_the_total_comes_when_free_or_asked,
    async |s: &TestServer| {
        load_world(s).await;
        let owned = "Task?owner=Organization/region&status=requested,accepted";
        // A page that holds every match is its own count.
        let all = s.get(owned).await;
        assert_eq!(matches(&all), ["t1", "t2"]);
        assert_eq!(all.body["total"], 2);
        // One that holds only some has no total unless one is asked for (R4 lets a server
        // leave it out, search.html#total; counting costs as much as reading every match).
        let first = s.get(&format!("{owned}&_count=1")).await;
        assert_eq!(matches(&first), ["t1"]);
        assert!(first.body.get("total").is_none(), "{}", first.text);
        let estimate = s.get(&format!("{owned}&_count=1&_total=estimate")).await;
        assert!(estimate.body.get("total").is_none(), "{}", estimate.text);
        for asked in ["_count=1&_total=accurate", "_summary=count", "_count=0"] {
            let reply = s.get(&format!("{owned}&{asked}")).await;
            assert_eq!(reply.body["total"], 2, "{asked}: {}", reply.text);
        }
        let none = s.get(&format!("{owned}&_total=none")).await;
        assert!(none.body.get("total").is_none(), "{}", none.text);

        // Pages follow the order of writes. t1 is updated after its page was read: its new
        // version comes again after t2, and following next links skips nothing.
        let updated = task("t1", "Organization/region", "accepted");
        assert_eq!(s.put("Task/t1", &updated).await.status, 200);
        assert_eq!(follow(s, first, "next").await, ["t1", "t2", "t1"]);
    }
);

/// The ids of the included resources, sorted.
fn included(reply: &Reply) -> Vec<String> {
    sorted(
        reply.body["entry"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|e| e["search"]["mode"] == "include")
            .map(|e| e["resource"]["id"].as_str().unwrap_or_default().to_owned())
            .collect(),
    )
}

on_both_backends!(includes_and_revincludes, async |s: &TestServer| {
    load_world(s).await;
    let reply = s
        .get("CarePlan?patient=p1&status=active&_include=CarePlan:care-team")
        .await;
    assert_eq!(sorted(matches(&reply)), ["cp1", "cp2"]);
    assert_eq!(included(&reply), ["ct1", "ct3"], "each included once");

    let reply = s
        .get("Patient?_id=p1&_revinclude=CareTeam:patient&_revinclude=CarePlan:patient")
        .await;
    assert_eq!(included(&reply), ["cp1", "cp2", "ct1", "ct2"]);

    let reply = s
        .get("CarePlan?_id=cp1&_include=CarePlan:care-team&_include:iterate=CareTeam:participant")
        .await;
    assert_eq!(included(&reply), ["ct1", "r1"]);
});

on_both_backends!(summary_elements_and_total, async |s: &TestServer| {
    load_world(s).await;
    let count = s.get("CarePlan?patient=p1&_summary=count").await;
    assert_eq!(count.body["total"], 2);
    assert!(count.body.get("entry").is_none());
    let summary = s.get("CarePlan?_id=cp1&_summary=true").await;
    let plan = &summary.body["entry"][0]["resource"];
    assert!(plan.get("careTeam").is_none() && plan.get("subject").is_some());
    assert_eq!(plan["meta"]["tag"][0]["code"], "SUBSETTED");
    let elements = s.get("CarePlan?_id=cp1&_elements=careTeam").await;
    let plan = &elements.body["entry"][0]["resource"];
    assert!(
        plan.get("careTeam").is_some()
            && plan.get("author").is_none()
            && plan.get("status").is_some()
    );
    let no_total = s.get("CarePlan?patient=p1&_total=none").await;
    assert!(no_total.body.get("total").is_none());
    assert_eq!(matches(&no_total).len(), 2);
});

on_both_backends!(
    unknown_parameters_are_refused_unless_lenient,
    async |s: &TestServer| {
        load_world(s).await;
        let strict = s.get("Patient?colour=red&gender=male").await;
        assert_eq!(strict.status, 400);
        assert_eq!(strict.outcome_issue()["expression"][0], "colour");
        let lenient = Reply::send(
            s.request(reqwest::Method::GET, "Patient?colour=red&gender=male")
                .header("prefer", "handling=lenient"),
        )
        .await;
        assert_eq!(lenient.status, 200);
        assert_eq!(matches(&lenient), ["p1"]);
        assert_eq!(ignored_parameter(&lenient), "colour");
    }
);

on_both_backends!(
    post_search_equals_get_and_index_follows_writes,
    async |s: &TestServer| {
        load_world(s).await;
        let posted = Reply::send(
            s.request(reqwest::Method::POST, "CareTeam/_search")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("patient=p1&status=active"),
        )
        .await;
        assert_eq!(
            matches(&posted),
            ids(s, "CareTeam?patient=p1&status=active").await
        );
        let mut changed = fast_kontakt("ct1", "p1", "inactive", "2");
        changed["id"] = json!("ct1");
        assert_eq!(s.put("CareTeam/ct1", &changed).await.status, 200);
        assert!(ids(s, "CareTeam?patient=p1&status=active").await.is_empty());
        assert_eq!(s.delete("CareTeam/ct2").await.status, 204);
        assert_eq!(ids(s, "CareTeam?patient=p1").await, ["ct1"]);
    }
);

on_both_backends!(
    repeated_parameters_and_meta_parameters,
    async |s: &TestServer| {
        load_world(s).await;
        // Repeated = AND: a date window.
        assert_eq!(
            ids(
                s,
                "Appointment?date=ge2027-01-01&date=lt2027-02-15&_sort=date"
            )
            .await,
            ["a1", "a3"]
        );
        let tagged = json!({"resourceType": "Goal", "lifecycleStatus": "active", "description": {"text": "Promenera varje dag"},
        "subject": {"reference": "Patient/p1"},
        "meta": {"tag": [{"system": "https://paraply.se/fhir/CodeSystem/tag", "code": "patientens-mal"}],
                 "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]}});
        let id = s.create(&tagged).await;
        let expected = vec![id];
        assert_eq!(
            ids(
                s,
                "Goal?_tag=https://paraply.se/fhir/CodeSystem/tag|patientens-mal"
            )
            .await,
            expected
        );
        assert_eq!(ids(s, "Goal?_security=R").await, expected);
        assert_eq!(
            ids(s, "Goal?patient=p1&lifecycle-status=active").await,
            expected
        );
        let data = s.get("CarePlan?_id=cp1&_summary=data").await;
        let plan = &data.body["entry"][0]["resource"];
        assert!(plan.get("text").is_none() && plan.get("careTeam").is_some());
    }
);

on_both_backends!(
    missing_on_every_kind_above_typed_chains_and_lenient_values,
    async |s: &TestServer| {
        load_world(s).await;
        // `:missing` on a string, date, uri, quantity and reference parameter.
        assert_eq!(
            sorted(ids(s, "Patient?address:missing=true").await),
            ["p1", "p2", "p3"]
        );
        assert_eq!(
            sorted(ids(s, "CarePlan?date:missing=true").await),
            ["cp2", "cp3"]
        );
        assert_eq!(
            sorted(ids(s, "Patient?_profile:missing=true").await),
            ["p2", "p3"]
        );
        assert_eq!(ids(s, "Encounter?length:missing=false").await, ["e1"]);
        assert_eq!(
            sorted(ids(s, "Organization?partof:missing=true").await),
            ["kommun", "region"]
        );
        // `:above`: the stored profile is a prefix of the value asked for.
        assert_eq!(
            ids(
                s,
                "Patient?_profile:above=http://example.org/fhir/StructureDefinition/patient/v2"
            )
            .await,
            ["p1"]
        );
        // A chain through a reference narrowed to one target type.
        assert_eq!(
            sorted(ids(s, "CarePlan?subject:Patient.family=tolv").await),
            ["cp1", "cp2"]
        );
        // `_revinclude:iterate` follows from what the first round added: the unit under the
        // region, then the role at that unit.
        let reply = s
            .get("Organization?_id=region&_revinclude=Organization:partof&_revinclude:iterate=PractitionerRole:organization")
            .await;
        assert_eq!(included(&reply), ["r1", "vc"]);
        let without_iterate = s
            .get("Organization?_id=region&_revinclude=Organization:partof&_revinclude=PractitionerRole:organization")
            .await;
        assert_eq!(included(&without_iterate), ["vc"]);
        // A bad value: 400 naming the parameter, or ignored and reported when lenient.
        let strict = s.get("Appointment?date=garbage&patient=p1").await;
        assert_eq!(strict.status, 400);
        assert_eq!(strict.outcome_issue()["expression"][0], "date");
        let lenient = Reply::send(
            s.request(reqwest::Method::GET, "Appointment?date=garbage&patient=p1")
                .header("prefer", "handling=lenient"),
        )
        .await;
        assert_eq!(lenient.status, 200);
        assert_eq!(sorted(matches(&lenient)), ["a1", "a2", "a4"]);
        assert_eq!(ignored_parameter(&lenient), "date");
    }
);
