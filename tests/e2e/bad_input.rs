//! Bad input gets a clear refusal, never a wider answer: links are built from the
//! configured public base URL whatever `Host` a caller sends, an unreadable search form is
//! refused rather than read as "no criteria", and a Subscription's channel headers (the
//! subscriber's credentials) are never shown.

use paraply_server::config::FileConfig;

use super::*;

const PUBLIC_BASE: &str = "https://paraply.example.se/fhir";

fn patient() -> Value {
    json!({"resourceType": "Patient", "name": [{"family": "Tolvansson"}]})
}

/// Every absolute URL in `text` (links, full URLs, locations) starts with `base`.
fn assert_links_start_with(reply: &Reply, base: &str) {
    assert!(
        !reply.text.contains("evil.example"),
        "the Host header reached the answer: {}",
        reply.text
    );
    let mut urls = Vec::new();
    collect_urls(&reply.body, &mut urls);
    assert!(!urls.is_empty(), "no links in {}", reply.text);
    for url in urls {
        assert!(
            url.starts_with(&format!("{base}/")),
            "{url} is not under {base}"
        );
    }
}

fn collect_urls(value: &Value, urls: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("url" | "fullUrl" | "location", Value::String(url)) if url.contains("://") => {
                        urls.push(url.clone());
                    }
                    _ => collect_urls(value, urls),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_urls(item, urls)),
        _ => {}
    }
}

/// Creates, searches, reads history and runs a transaction with a forged `Host`; every
/// link and `Location` must start with `base`.
async fn links_ignore_the_host_header(s: &TestServer, base: &str) {
    let forged = |method, path: &str| s.request(method, path).header("host", "evil.example");
    let created = Reply::send(
        forged(reqwest::Method::POST, "Patient")
            .header("content-type", "application/fhir+json")
            .body(patient().to_string()),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap();
    for header in ["location", "content-location"] {
        let location = created.header(header).unwrap_or_default();
        assert!(
            location.starts_with(&format!("{base}/Patient/{id}")),
            "{header}: {location}"
        );
    }

    let search = Reply::send(forged(reqwest::Method::GET, "Patient?_count=1")).await;
    assert_eq!(search.status, 200, "{}", search.text);
    assert_links_start_with(&search, base);
    let self_link = search.body["link"][0]["url"].as_str().unwrap();
    assert_eq!(self_link, format!("{base}/Patient?_count=1"));

    let history = Reply::send(forged(
        reqwest::Method::GET,
        &format!("Patient/{id}/_history"),
    ))
    .await;
    assert_eq!(history.status, 200, "{}", history.text);
    assert_links_start_with(&history, base);

    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(), "request": {"method": "POST", "url": "Patient"}}
    ]});
    let transaction = Reply::send(
        forged(reqwest::Method::POST, "")
            .header("content-type", "application/fhir+json")
            .body(bundle.to_string()),
    )
    .await;
    assert_eq!(transaction.status, 200, "{}", transaction.text);
    assert!(
        !transaction.text.contains("evil.example"),
        "{}",
        transaction.text
    );
}

async fn configured_base_on(backend: Backend) {
    let file = FileConfig {
        public_base_url: Some(PUBLIC_BASE.into()),
        ..FileConfig::default()
    };
    let Some(bed) = TestBed::start_with(backend, file).await else {
        return;
    };
    links_ignore_the_host_header(&bed.server, PUBLIC_BASE).await;
    bed.finish().await;
}

mod links_use_the_configured_public_base_url_not_the_host_header {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        configured_base_on(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        configured_base_on(Backend::Postgres).await;
    }
}

on_both_backends!(
    links_default_to_the_listen_address_not_the_host_header,
    async |s: &TestServer| {
        links_ignore_the_host_header(s, &s.base).await;
    }
);

on_both_backends!(
    a_search_form_that_is_not_utf8_is_refused_not_read_as_no_criteria,
    async |s: &TestServer| {
        s.create(&patient()).await;
        let reply = Reply::send(
            s.request(reqwest::Method::POST, "Patient/_search")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(b"family=Tolv\xe4nsson".to_vec()),
        )
        .await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        let issue = reply.outcome_issue();
        assert_eq!(issue["code"], "structure");
        assert!(
            issue["diagnostics"].as_str().unwrap().contains("UTF-8"),
            "{issue}"
        );
    }
);

fn subscription() -> Value {
    json!({"resourceType": "Subscription", "status": "off",
        "reason": "Nya vårdplaner", "criteria": "CarePlan?status=active",
        "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/mottagare-hook",
                "extension": [{"url": "https://paraply.se/fhir/StructureDefinition/subscription-signing-secret",
                    "valueString": "en-hemlighet-som-ar-minst-32-tecken-lang"}],
                
            "payload": "application/fhir+json",
            "header": ["Authorization: Bearer hemlig-nyckel"]}})
}

on_both_backends!(
    subscription_channel_headers_are_never_returned,
    async |s: &TestServer| {
        let created = s.post("Subscription", &subscription()).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.body["id"].as_str().unwrap().to_owned();
        let replies = [
            created,
            s.get(&format!("Subscription/{id}")).await,
            s.get(&format!("Subscription/{id}/_history/1")).await,
            s.get(&format!("Subscription/{id}/_history")).await,
            s.get("Subscription?status=off").await,
            s.get("_history").await,
        ];
        for reply in replies {
            assert!(matches!(reply.status, 200 | 201), "{}", reply.text);
            assert!(
                reply.text.contains("mottagare-hook"),
                "the Subscription is shown: {}",
                reply.text
            );
            assert!(!reply.text.contains("hemlig-nyckel"), "{}", reply.text);
            assert!(!reply.text.contains("en-hemlighet"), "{}", reply.text);
        }
        // Stored as written: the server still has the headers it will send.
        let stored = s
            .store
            .read(
                paraply_fhir::ResourceType::Subscription,
                &id.parse().unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(stored.body.unwrap().contains("hemlig-nyckel"));
    }
);
