//! Create, read, vread, update, patch, delete, history and conditional interactions.

use super::*;

fn patient(personnummer: &str) -> Value {
    json!({"resourceType": "Patient",
           "identifier": [{"system": "http://electronichealth.se/identifier/personnummer", "value": personnummer}],
           "name": [{"family": "Svensson", "given": ["Karin"]}],
           "gender": "female"})
}

on_both_backends!(
    create_answers_201_with_location_etag_and_last_modified,
    async |s: &TestServer| {
        let reply = s.post("Patient", &patient("197001011233")).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let id = reply.body["id"].as_str().unwrap();
        let location = reply.header("location").unwrap();
        assert_eq!(location, format!("{}/Patient/{id}/_history/1", s.base));
        assert_eq!(reply.header("etag"), Some("W/\"1\""));
        assert!(reply.header("last-modified").is_some());
        assert_eq!(reply.body["meta"]["versionId"], "1");
        assert!(reply.header("x-request-id").is_some());

        let read = s.get(&format!("Patient/{id}")).await;
        assert_eq!(read.status, 200);
        assert_eq!(read.body, reply.body);
        assert_eq!(read.header("etag"), Some("W/\"1\""));
    }
);

on_both_backends!(
    client_supplied_id_on_create_is_ignored,
    async |s: &TestServer| {
        let mut body = patient("197001011233");
        body["id"] = json!("chosen-by-client");
        let reply = s.post("Patient", &body).await;
        assert_eq!(reply.status, 201);
        assert_ne!(reply.body["id"], "chosen-by-client");
    }
);

on_both_backends!(
    update_makes_version_2_and_vread_keeps_version_1,
    async |s: &TestServer| {
        let id = s.create(&patient("197001011233")).await;
        let mut changed = patient("197001011233");
        changed["id"] = json!(id);
        changed["gender"] = json!("other");
        let reply = s.put(&format!("Patient/{id}"), &changed).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.header("etag"), Some("W/\"2\""));
        assert_eq!(
            s.get(&format!("Patient/{id}")).await.body["gender"],
            "other"
        );
        let v1 = s.get(&format!("Patient/{id}/_history/1")).await;
        assert_eq!(v1.status, 200);
        assert_eq!(v1.body["gender"], "female");
        assert_eq!(s.get(&format!("Patient/{id}/_history/9")).await.status, 404);
    }
);

on_both_backends!(update_with_stale_if_match_is_412, async |s: &TestServer| {
    let id = s.create(&patient("197001011233")).await;
    let mut body = patient("197001011233");
    body["id"] = json!(id);
    let first = Reply::send(
        s.request(reqwest::Method::PUT, &format!("Patient/{id}"))
            .header("content-type", "application/fhir+json")
            .header("if-match", "W/\"1\"")
            .body(body.to_string()),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let stale = Reply::send(
        s.request(reqwest::Method::PUT, &format!("Patient/{id}"))
            .header("content-type", "application/fhir+json")
            .header("if-match", "W/\"1\"")
            .body(body.to_string()),
    )
    .await;
    assert_eq!(stale.status, 412);
    assert_eq!(stale.outcome_issue()["code"], "conflict");
    assert_eq!(
        s.get(&format!("Patient/{id}")).await.body["meta"]["versionId"],
        "2"
    );
});

on_both_backends!(
    update_as_create_uses_the_client_id,
    async |s: &TestServer| {
        let mut body = patient("197001011233");
        body["id"] = json!("karin-1");
        let reply = s.put("Patient/karin-1", &body).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        assert_eq!(s.get("Patient/karin-1").await.status, 200);
    }
);

on_both_backends!(json_patch_changes_one_element, async |s: &TestServer| {
    let id = s.create(&patient("197001011233")).await;
    let reply = Reply::send(
        s.request(reqwest::Method::PATCH, &format!("Patient/{id}"))
            .header("content-type", "application/json-patch+json")
            .body(json!([{"op": "replace", "path": "/gender", "value": "unknown"}]).to_string()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["gender"], "unknown");
    assert_eq!(reply.body["meta"]["versionId"], "2");

    let invalid = Reply::send(
        s.request(reqwest::Method::PATCH, &format!("Patient/{id}"))
            .header("content-type", "application/json-patch+json")
            .body(json!([{"op": "replace", "path": "/gender", "value": "kvinna"}]).to_string()),
    )
    .await;
    assert_eq!(invalid.status, 422);
    assert_eq!(invalid.outcome_issue()["expression"][0], "Patient.gender");
    assert_eq!(
        s.get(&format!("Patient/{id}")).await.body["gender"],
        "unknown"
    );
});

on_both_backends!(
    delete_then_read_is_410_and_history_keeps_versions,
    async |s: &TestServer| {
        let id = s.create(&patient("197001011233")).await;
        assert_eq!(s.delete(&format!("Patient/{id}")).await.status, 204);
        let gone = s.get(&format!("Patient/{id}")).await;
        assert_eq!(gone.status, 410);
        assert_eq!(gone.outcome_issue()["code"], "deleted");
        assert_eq!(
            s.delete(&format!("Patient/{id}")).await.status,
            204,
            "delete is idempotent"
        );
        let history = s.get(&format!("Patient/{id}/_history")).await;
        assert_eq!(history.status, 200);
        assert_eq!(history.body["type"], "history");
        assert_eq!(history.body["total"], 2);
        assert_eq!(history.body["entry"][0]["request"]["method"], "DELETE");
        assert!(history.body["entry"][0].get("resource").is_none());
        assert_eq!(history.body["entry"][1]["resource"]["id"], id.as_str());
        assert_eq!(s.get(&format!("Patient/{id}/_history/1")).await.status, 200);
        assert_eq!(s.delete("Patient/never-existed").await.status, 404);
    }
);

on_both_backends!(
    history_pages_by_count_and_filters_by_since,
    async |s: &TestServer| {
        for personnummer in [
            "197001010011",
            "197001010029",
            "197001010037",
            "197001010045",
            "197001010052",
        ] {
            s.create(&patient(personnummer)).await;
        }
        let page1 = s.get("Patient/_history?_count=2").await;
        assert_eq!(page1.status, 200);
        assert_eq!(page1.body["total"], 5);
        assert_eq!(page1.body["entry"].as_array().unwrap().len(), 2);
        let next = page1.body["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let page2 = Reply::send(s.client.get(&next)).await;
        assert_eq!(page2.body["entry"].as_array().unwrap().len(), 2);
        assert_ne!(
            page1.body["entry"][0]["fullUrl"],
            page2.body["entry"][0]["fullUrl"]
        );

        let system = s.get("_history?_since=2999-01-01T00:00:00Z").await;
        assert_eq!(system.status, 200);
        assert_eq!(system.body["total"], 0);
        assert_eq!(s.get("_history?_since=yesterday").await.status, 400);
    }
);

on_both_backends!(
    conditional_create_returns_the_existing_match,
    async |s: &TestServer| {
        let criteria = "identifier=http://electronichealth.se/identifier/personnummer|197001011233";
        let send = || {
            Reply::send(
                s.request(reqwest::Method::POST, "Patient")
                    .header("content-type", "application/fhir+json")
                    .header("if-none-exist", criteria)
                    .body(patient("197001011233").to_string()),
            )
        };
        let first = send().await;
        assert_eq!(first.status, 201);
        let second = send().await;
        assert_eq!(second.status, 200);
        assert_eq!(second.body["id"], first.body["id"]);
        s.create(&patient("197001011233")).await;
        assert_eq!(send().await.status, 412, "two matches");
    }
);

on_both_backends!(
    conditional_update_and_delete_by_personnummer,
    async |s: &TestServer| {
        let url = "Patient?identifier=urn:oid:1.2.752.129.2.1.3.1|197001011233";
        let created = s.put(url, &patient("197001011233")).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.body["id"].as_str().unwrap().to_owned();
        let mut changed = patient("197001011233");
        changed["gender"] = json!("other");
        let updated = s.put(url, &changed).await;
        assert_eq!(updated.status, 200);
        assert_eq!(updated.body["id"], id.as_str());
        assert_eq!(updated.body["meta"]["versionId"], "2");

        assert_eq!(s.delete(url).await.status, 204);
        assert_eq!(s.get(&format!("Patient/{id}")).await.status, 410);
        assert_eq!(s.delete(url).await.status, 204, "nothing left to delete");
        s.create(&patient("198002022344")).await;
        s.create(&patient("198002022344")).await;
        assert_eq!(
            s.delete("Patient?identifier=198002022344").await.status,
            412
        );
    }
);

on_both_backends!(search_by_identifier_and_id, async |s: &TestServer| {
    let id = s.create(&patient("197001011233")).await;
    s.create(&patient("198002022344")).await;
    let found = s
        .get("Patient?identifier=http://electronichealth.se/identifier/personnummer|197001011233")
        .await;
    assert_eq!(found.status, 200);
    assert_eq!(found.body["type"], "searchset");
    assert_eq!(found.body["total"], 1);
    assert_eq!(found.body["entry"][0]["resource"]["id"], id.as_str());
    assert_eq!(found.body["entry"][0]["search"]["mode"], "match");
    let by_id = s.get(&format!("Patient?_id={id}")).await;
    assert_eq!(by_id.body["total"], 1);
    let posted = Reply::send(
        s.request(reqwest::Method::POST, "Patient/_search")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("identifier=198002022344"),
    )
    .await;
    assert_eq!(posted.body["total"], 1);
});

on_both_backends!(prefer_header_controls_the_body, async |s: &TestServer| {
    let send = |prefer: &'static str| {
        Reply::send(
            s.request(reqwest::Method::POST, "Patient")
                .header("content-type", "application/fhir+json")
                .header("prefer", prefer)
                .body(patient("197001011233").to_string()),
        )
    };
    let minimal = send("return=minimal").await;
    assert_eq!(minimal.status, 201);
    assert!(minimal.text.is_empty());
    assert!(minimal.header("location").is_some());
    let outcome = send("return=OperationOutcome").await;
    assert_eq!(outcome.body["resourceType"], "OperationOutcome");
    let full = send("return=representation").await;
    assert_eq!(full.body["resourceType"], "Patient");
});

on_both_backends!(pretty_and_format_parameters, async |s: &TestServer| {
    let id = s.create(&patient("197001011233")).await;
    let pretty = s.get(&format!("Patient/{id}?_pretty=true")).await;
    assert!(pretty.text.contains("\n  "));
    assert_eq!(
        s.get(&format!("Patient/{id}?_format=json")).await.status,
        200
    );
    assert_eq!(
        s.get(&format!("Patient/{id}?_format=application/fhir%2Bjson"))
            .await
            .status,
        200
    );
    let xml = s.get(&format!("Patient/{id}?_format=xml")).await;
    assert_eq!(xml.status, 406);
    xml.outcome_issue();
});
