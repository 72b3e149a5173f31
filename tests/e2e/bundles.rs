//! Batch and transaction Bundles.

use super::*;

fn transaction(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

fn statuses(reply: &Reply) -> Vec<String> {
    reply.body["entry"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn stored_versions(s: &TestServer) -> u64 {
    s.get("_history?_count=1").await.body["total"]
        .as_u64()
        .unwrap()
}

on_both_backends!(
    transaction_resolves_urn_uuids_into_references,
    async |s: &TestServer| {
        let bundle = transaction(vec![
            json!({"fullUrl": "urn:uuid:3a8e4c1e-0000-4000-8000-000000000001",
               "resource": {"resourceType": "Patient", "identifier": [{"system": "http://electronichealth.se/identifier/personnummer", "value": "194005051232"}]},
               "request": {"method": "POST", "url": "Patient"}}),
            json!({"fullUrl": "urn:uuid:3a8e4c1e-0000-4000-8000-000000000002",
               "resource": {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                            "subject": {"reference": "urn:uuid:3a8e4c1e-0000-4000-8000-000000000001"}},
               "request": {"method": "POST", "url": "CarePlan"}}),
        ]);
        let reply = s.post("", &bundle).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["type"], "transaction-response");
        assert_eq!(statuses(&reply), ["201 Created", "201 Created"]);
        let patient_id = reply.body["entry"][0]["resource"]["id"].as_str().unwrap();
        let plan = &reply.body["entry"][1]["resource"];
        assert_eq!(
            plan["subject"]["reference"],
            format!("Patient/{patient_id}")
        );
        let location = reply.body["entry"][1]["response"]["location"]
            .as_str()
            .unwrap();
        assert!(location.starts_with(&format!("{}/CarePlan/", s.base)));
    }
);

on_both_backends!(
    transaction_resolves_conditional_references_by_personnummer,
    async |s: &TestServer| {
        let patient_id = s
        .create(&json!({"resourceType": "Patient", "identifier": [
            {"system": "http://electronichealth.se/identifier/personnummer", "value": "191212121212"}]}))
        .await;
        let conditional =
            "Patient?identifier=http://electronichealth.se/identifier/personnummer|191212121212";
        let bundle = transaction(vec![json!({
        "resource": {"resourceType": "CareTeam", "status": "active", "subject": {"reference": conditional}},
        "request": {"method": "POST", "url": "CareTeam"}})]);
        let reply = s.post("", &bundle).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(
            reply.body["entry"][0]["resource"]["subject"]["reference"],
            format!("Patient/{patient_id}")
        );

        let before = stored_versions(s).await;
        let unknown = transaction(vec![json!({
        "resource": {"resourceType": "CareTeam", "status": "active",
                     "subject": {"reference": "Patient?identifier=http://electronichealth.se/identifier/personnummer|200001019991"}},
        "request": {"method": "POST", "url": "CareTeam"}})]);
        let failed = s.post("", &unknown).await;
        assert_eq!(failed.status, 404);
        assert!(
            failed.outcome_issue()["diagnostics"]
                .as_str()
                .unwrap()
                .contains("nothing was stored")
        );
        assert_eq!(stored_versions(s).await, before);

        s.create(&json!({"resourceType": "Patient", "identifier": [
        {"system": "http://electronichealth.se/identifier/personnummer", "value": "191212121212"}]})).await;
        let ambiguous = s.post("", &transaction(vec![json!({
        "resource": {"resourceType": "CareTeam", "status": "active", "subject": {"reference": conditional}},
        "request": {"method": "POST", "url": "CareTeam"}})])).await;
        assert_eq!(ambiguous.status, 412);
        ambiguous.outcome_issue();
    }
);

on_both_backends!(
    failing_transaction_stores_nothing,
    async |s: &TestServer| {
        let bundle = transaction(vec![
            json!({"resource": {"resourceType": "Patient", "gender": "female"}, "request": {"method": "POST", "url": "Patient"}}),
            json!({"resource": {"resourceType": "Patient", "gender": "kvinna"}, "request": {"method": "POST", "url": "Patient"}}),
        ]);
        let reply = s.post("", &bundle).await;
        assert_eq!(reply.status, 422);
        let issue = reply.outcome_issue();
        assert!(issue["diagnostics"].as_str().unwrap().contains("entry 1"));
        assert_eq!(issue["expression"][0], "Patient.gender");
        assert_eq!(stored_versions(s).await, 0);
    }
);

on_both_backends!(
    transaction_runs_reads_after_writes_and_answers_in_entry_order,
    async |s: &TestServer| {
        let mut old = json!({"resourceType": "Patient", "id": "old", "gender": "male"});
        assert_eq!(s.put("Patient/old", &old).await.status, 201);
        assert_eq!(
            s.put(
                "Patient/gone",
                &json!({"resourceType": "Patient", "id": "gone"})
            )
            .await
            .status,
            201
        );
        old["gender"] = json!("other");
        let bundle = transaction(vec![
            json!({"request": {"method": "GET", "url": "Patient/old"}}),
            json!({"resource": old, "request": {"method": "PUT", "url": "Patient/old"}}),
            json!({"request": {"method": "DELETE", "url": "Patient/gone"}}),
            json!({"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}),
        ]);
        let reply = s.post("", &bundle).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(
            statuses(&reply),
            ["200 OK", "200 OK", "204 No Content", "201 Created"]
        );
        // The GET ran last, so it sees the PUT.
        assert_eq!(reply.body["entry"][0]["resource"]["gender"], "other");
        assert_eq!(s.get("Patient/gone").await.status, 410);
    }
);

on_both_backends!(
    official_transaction_example_fails_atomically,
    async |s: &TestServer| {
        let Some(dir) = shared_fhir_dir() else { return };
        let text =
            std::fs::read_to_string(dir.join("examples/Bundle-bundle-transaction.json")).unwrap();
        let bundle: Value = serde_json::from_str(&text).unwrap();
        let reply = s.post("", &bundle).await;
        assert!(
            reply.status >= 400,
            "the example cannot succeed as a whole: {}",
            reply.text
        );
        let issue = reply.outcome_issue();
        assert!(
            issue["diagnostics"]
                .as_str()
                .unwrap()
                .contains("nothing was stored"),
            "{}",
            reply.text
        );
        assert_eq!(stored_versions(s).await, 0, "nothing stored");
    }
);

on_both_backends!(
    official_transaction_example_as_batch_answers_each_entry,
    async |s: &TestServer| {
        let Some(dir) = shared_fhir_dir() else { return };
        let text =
            std::fs::read_to_string(dir.join("examples/Bundle-bundle-transaction.json")).unwrap();
        let mut bundle: Value = serde_json::from_str(&text).unwrap();
        bundle["type"] = json!("batch");
        let reply = s.post("", &bundle).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["type"], "batch-response");
        assert_eq!(
            statuses(&reply),
            [
                "201 Created",             // POST Patient
                "201 Created",             // conditional create, no match yet
                "201 Created",             // PUT Patient/123, update as create
                "201 Created",             // conditional update, no match
                "412 Precondition Failed", // If-Match W/"2" on a resource that does not exist
                "404 Not Found",           // DELETE Patient/234
                "204 No Content",          // conditional delete, nothing matches
                "404 Not Found",           // POST ValueSet/$lookup: not served
                "200 OK",                  // GET Patient?name=peter: a searchset
                "404 Not Found",           // GET Patient/12334
            ]
        );
        assert_eq!(reply.body["entry"][8]["resource"]["type"], "searchset");
        for failed in [4, 5, 7, 9] {
            assert_eq!(
                reply.body["entry"][failed]["response"]["outcome"]["resourceType"],
                "OperationOutcome"
            );
        }
        assert_eq!(s.get("Patient/123").await.status, 200);
    }
);

on_both_backends!(
    batch_entry_and_the_same_request_alone_answer_alike,
    async |s: &TestServer| {
        let bad = json!({"resourceType": "Patient", "gender": "kvinna"});
        let alone = s.post("Patient", &bad).await;
        let batch = s
            .post(
                "",
                &json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": bad, "request": {"method": "POST", "url": "Patient"}},
            {"request": {"method": "GET", "url": "Patient/nope"}}]}),
            )
            .await;
        assert_eq!(batch.status, 200);
        let entry = &batch.body["entry"][0]["response"];
        assert_eq!(entry["status"], "422 Unprocessable Entity");
        assert_eq!(alone.status, 422);
        assert_eq!(entry["outcome"], alone.body);
        let read_alone = s.get("Patient/nope").await;
        assert_eq!(
            batch.body["entry"][1]["response"]["outcome"],
            read_alone.body
        );
    }
);

on_both_backends!(
    batch_patch_entry_takes_a_binary_json_patch,
    async |s: &TestServer| {
        let id = s
            .create(&json!({"resourceType": "Patient", "gender": "male"}))
            .await;
        // base64 of [{"op":"replace","path":"/gender","value":"female"}]
        let data = "W3sib3AiOiJyZXBsYWNlIiwicGF0aCI6Ii9nZW5kZXIiLCJ2YWx1ZSI6ImZlbWFsZSJ9XQ==";
        let reply = s
        .post("", &json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data},
             "request": {"method": "PATCH", "url": format!("Patient/{id}")}}]}))
        .await;
        assert_eq!(statuses(&reply), ["200 OK"], "{}", reply.text);
        assert_eq!(
            s.get(&format!("Patient/{id}")).await.body["gender"],
            "female"
        );
    }
);

on_both_backends!(bundle_of_another_type_is_refused, async |s: &TestServer| {
    let reply = s
        .post("", &json!({"resourceType": "Bundle", "type": "collection"}))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.outcome_issue()["expression"][0], "Bundle.type");
});

on_both_backends!(
    concurrent_transactions_and_writes_on_one_resource_all_succeed,
    async |s: &TestServer| {
        let patient = json!({"resourceType": "Patient", "id": "shared", "gender": "female"});
        assert_eq!(s.put("Patient/shared", &patient).await.status, 201);
        // Transactions and single updates without If-Match, all at once on one resource:
        // a writer that loses the race to a version is retried, never refused or lost.
        const WRITERS: usize = 12;
        let tasks = (0..WRITERS).map(|writer| {
            let client = s.client.clone();
            let (base, resource) = (s.url(""), s.url("Patient/shared"));
            async move {
                let mut body = json!({"resourceType": "Patient", "id": "shared",
                                      "birthDate": format!("19{writer:02}-01-01")});
                let request = if writer % 2 == 0 {
                    body = transaction(vec![
                        json!({"resource": body, "request": {"method": "PUT", "url": "Patient/shared"}}),
                        json!({"resource": {"resourceType": "Goal", "lifecycleStatus": "active",
                                            "description": {"text": format!("Mål {writer}")},
                                            "subject": {"reference": "Patient/shared"}},
                               "request": {"method": "POST", "url": "Goal"}}),
                    ]);
                    client.post(base)
                } else {
                    client.put(resource)
                };
                let reply = request
                    .header("content-type", "application/fhir+json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                (reply.status().as_u16(), reply.text().await.unwrap())
            }
        });
        for (status, text) in futures::future::join_all(tasks).await {
            assert_eq!(status, 200, "{text}");
        }
        let current = s.get("Patient/shared").await;
        assert_eq!(
            current.body["meta"]["versionId"],
            format!("{}", WRITERS + 1)
        );
        let history = s.get("Patient/shared/_history").await;
        assert_eq!(history.body["total"], WRITERS + 1);
        let goals = s.get("Goal?patient=shared&_total=accurate").await;
        assert_eq!(goals.body["total"], WRITERS / 2);
    }
);
