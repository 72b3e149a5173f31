//! Subscription notifications end to end: a webhook receiver on loopback, the real server,
//! and the durable outbox between them — handshake, signed id-only notifications numbered
//! without gaps, failures shown in the Subscription and retried, `off` after too many,
//! nothing lost across a restart, and each notification delivered once by two nodes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use paraply_server::config::{FileConfig, SubscriptionsConfig};
use tokio::sync::Mutex;

use super::*;

const SECRET: &str = "kommun-x:s-hemliga-signeringsnyckel-0123456789";

/// What the receiver got: the headers and the parsed body of each request.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, Bytes)>>>);

/// A webhook receiver on `127.0.0.1:0` answering with `status` (settable while it runs).
pub(super) struct Receiver {
    pub(super) url: String,
    received: Received,
    status: Arc<AtomicU16>,
}

impl Receiver {
    pub(super) async fn start() -> Receiver {
        let received = Received::default();
        let status = Arc::new(AtomicU16::new(200));
        let (kept, answer) = (received.clone(), status.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (kept, answer) = (kept.clone(), answer.clone());
                async move {
                    let status = answer.load(Ordering::SeqCst);
                    if status == 200 {
                        kept.0.lock().await.push((headers, body));
                    }
                    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url,
            received,
            status,
        }
    }

    pub(super) fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// The accepted notifications so far, each checked for its signature and header.
    pub(super) async fn notifications(&self) -> Vec<Value> {
        let received = self.received.0.lock().await;
        received
            .iter()
            .map(|(headers, body)| {
                let signed = headers[paraply_notify::SIGNATURE_HEADER].to_str().unwrap();
                assert_eq!(signed, paraply_notify::signature(SECRET, body), "signed");
                assert_eq!(headers["authorization"], "Bearer mottagarens-nyckel");
                assert_eq!(headers["content-type"], "application/fhir+json");
                serde_json::from_slice(body).unwrap()
            })
            .collect()
    }

    /// Waits until `count` event notifications have arrived and returns them.
    pub(super) async fn events(&self, count: usize) -> Vec<Value> {
        for _ in 0..1200 {
            let events: Vec<Value> = self
                .notifications()
                .await
                .into_iter()
                .filter(|n| kind(n) == "event-notification")
                .collect();
            if events.len() >= count {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{count} notifications did not arrive in 60 s: {:?}",
            self.notifications().await
        );
    }
}

fn status_parameter<'a>(notification: &'a Value, name: &str) -> &'a Value {
    notification["entry"][0]["resource"]["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or(&Value::Null)
}

fn kind(notification: &Value) -> &str {
    status_parameter(notification, "type")["valueCode"]
        .as_str()
        .unwrap_or("")
}

fn event_number(notification: &Value) -> u64 {
    status_parameter(notification, "events-since-subscription-start")["valueString"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn config() -> FileConfig {
    FileConfig {
        subscriptions: SubscriptionsConfig {
            max_failures: 3,
            timeout_seconds: 1,
            retry_base_ms: 100,
            ..SubscriptionsConfig::default()
        },
        ..FileConfig::default()
    }
}

pub(super) fn subscription(endpoint: &str) -> Value {
    json!({"resourceType": "Subscription", "status": "requested",
        "reason": "Kvinnliga patienter", "criteria": "Patient?gender=female",
        "channel": {"type": "rest-hook", "endpoint": endpoint,
            "payload": "application/fhir+json",
            "header": ["Authorization: Bearer mottagarens-nyckel"],
            "extension": [{"url": paraply_notify::SIGNING_SECRET_EXTENSION,
                           "valueString": SECRET}]}})
}

/// Waits until the subscription's status is `status` and returns it.
async fn wait_for_status(server: &TestServer, id: &str, status: &str) -> Value {
    for _ in 0..400 {
        let reply = server.get(&format!("Subscription/{id}")).await;
        if reply.body["status"] == status {
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Subscription/{id} did not become {status}");
}

async fn patient(server: &TestServer, gender: &str) -> String {
    server
        .create(&json!({"resourceType": "Patient", "gender": gender}))
        .await
}

on_both_backends_with!(
    notifications_arrive_signed_numbered_and_failures_show_in_the_subscription,
    config(),
    async |s: &TestServer| {
        let receiver = Receiver::start().await;
        let created = s.post("Subscription", &subscription(&receiver.url)).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.body["id"].as_str().unwrap().to_owned();
        assert!(
            !created.text.contains(SECRET),
            "the secret is never shown back"
        );

        // The handshake, then active.
        wait_for_status(s, &id, "active").await;
        let handshake = &receiver.notifications().await[0];
        assert_eq!(kind(handshake), "handshake");
        assert_eq!(handshake["type"], "history");

        // Only matching changes, id-only, numbered from 1 in order.
        let mut women = Vec::new();
        for gender in ["female", "male", "female", "female"] {
            let patient = patient(s, gender).await;
            if gender == "female" {
                women.push(patient);
            }
        }
        let events = receiver.events(3).await;
        assert_eq!(events.len(), 3, "a man's record is not notified");
        for (n, (event, woman)) in events.iter().zip(&women).enumerate() {
            assert_eq!(event_number(event), n as u64 + 1);
            let focus = &event["entry"][1];
            assert_eq!(focus["fullUrl"], format!("{}/Patient/{woman}", s.base));
            assert!(focus.get("resource").is_none(), "no health data: {focus}");
        }
        let shown = events[0].to_string();
        paraply_fhir_validator::assert_valid(&[("notification.json", shown.as_str())]);

        // The endpoint fails: the subscription shows it, the notification waits.
        receiver.answer(503);
        let late = patient(s, "female").await;
        let failing = wait_for_status(s, &id, "error").await;
        assert!(
            failing["error"].as_str().unwrap().contains("HTTP 503"),
            "{failing}"
        );
        // Back: the waiting notification arrives, next in line, and the status is active.
        receiver.answer(200);
        let events = receiver.events(4).await;
        assert_eq!(event_number(&events[3]), 4);
        assert_eq!(
            events[3]["entry"][1]["fullUrl"],
            format!("{}/Patient/{late}", s.base)
        );
        wait_for_status(s, &id, "active").await;

        // Failing for good: off after max_failures (3) in a row, with the reason.
        receiver.answer(500);
        patient(s, "female").await;
        let off = wait_for_status(s, &id, "off").await;
        assert!(
            off["error"].as_str().unwrap().contains("3 time(s)"),
            "{off}"
        );
    }
);

on_both_backends_with!(
    subscriptions_to_endpoints_the_server_may_not_call_are_refused,
    config(),
    async |s: &TestServer| {
        let refused = |mut body: Value, edit: &dyn Fn(&mut Value)| {
            edit(&mut body);
            body
        };
        let base = subscription("http://127.0.0.1:9/hook");
        let cases: Vec<(&str, Value)> = vec![
            (
                "a host not allowed",
                refused(base.clone(), &|b| {
                    b["channel"]["endpoint"] = json!("https://evil.example/hook")
                }),
            ),
            (
                "cloud metadata",
                refused(base.clone(), &|b| {
                    b["channel"]["endpoint"] = json!("http://169.254.169.254/latest/meta-data")
                }),
            ),
            (
                "plain http off loopback",
                refused(base.clone(), &|b| {
                    b["channel"]["endpoint"] = json!("http://10.1.2.3/hook")
                }),
            ),
            (
                "no signing secret",
                refused(base.clone(), &|b| {
                    b["channel"].as_object_mut().unwrap().remove("extension");
                }),
            ),
            (
                "a criteria that is no search",
                refused(base.clone(), &|b| {
                    b["criteria"] = json!("Patient?no-such-parameter=1")
                }),
            ),
            (
                "an unserved type",
                refused(base.clone(), &|b| {
                    b["criteria"] = json!("Medication?code=x")
                }),
            ),
            (
                "not rest-hook",
                refused(base.clone(), &|b| b["channel"]["type"] = json!("email")),
            ),
        ];
        for (case, body) in cases {
            let reply = s.post("Subscription", &body).await;
            assert!(
                reply.status == 422 || reply.status == 400,
                "{case}: {} {}",
                reply.status,
                reply.text
            );
            assert_eq!(reply.body["resourceType"], "OperationOutcome", "{case}");
        }
        let search = s.get("Subscription").await;
        assert_eq!(
            search.body["total"].as_u64().unwrap_or(0),
            0,
            "nothing stored"
        );
    }
);

async fn restart_keeps_what_was_not_delivered(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let server = TestServer::start(&database.url, config()).await;
    let id = server.create(&subscription(&receiver.url)).await;
    wait_for_status(&server, &id, "active").await;
    // The endpoint is down while the changes happen, and the server stops.
    receiver.answer(503);
    for _ in 0..5 {
        patient(&server, "female").await;
    }
    wait_for_status(&server, &id, "error").await;
    server.stop().await;

    receiver.answer(200);
    let server = TestServer::start(&database.url, config()).await;
    let events = receiver.events(5).await;
    let numbers: Vec<u64> = events.iter().map(event_number).collect();
    assert_eq!(
        numbers,
        vec![1, 2, 3, 4, 5],
        "all, in order, after the restart"
    );
    server.stop().await;
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_wait_across_a_restart_sqlite() {
    restart_keeps_what_was_not_delivered(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_wait_across_a_restart_postgres() {
    restart_keeps_what_was_not_delivered(Backend::Postgres).await;
}

/// Two nodes on one PostgreSQL database: both run the worker, and each of 1,000 changes is
/// delivered once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_each_notification_once_in_order() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let nodes = [
        TestServer::start(&database.url, config()).await,
        TestServer::start(&database.url, config()).await,
    ];
    let id = nodes[0].create(&subscription(&receiver.url)).await;
    wait_for_status(&nodes[1], &id, "active").await;
    const CHANGES: usize = 1000;
    // Written through both nodes, 16 at a time.
    let writes = (0..CHANGES).map(|n| patient(&nodes[n % 2], "female"));
    futures::stream::iter(writes)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let events = receiver.events(CHANGES).await;
    assert_eq!(events.len(), CHANGES, "none delivered twice");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events_after = receiver.events(CHANGES).await;
    assert_eq!(
        events_after.len(),
        events.len(),
        "no duplicates arrive late"
    );
    let numbers: Vec<u64> = events.iter().map(event_number).collect();
    assert_eq!(
        numbers,
        (1..=CHANGES as u64).collect::<Vec<_>>(),
        "once each, in order"
    );
    let mut focuses: Vec<&str> = events
        .iter()
        .map(|e| e["entry"][1]["fullUrl"].as_str().unwrap())
        .collect();
    focuses.sort();
    focuses.dedup();
    assert_eq!(focuses.len(), CHANGES, "every change notified");
    for node in nodes {
        node.stop().await;
    }
    database.remove().await;
}

on_both_backends_with!(
    full_resource_notifications_carry_the_version_the_subscriber_may_read,
    config(),
    async |s: &TestServer| {
        let receiver = Receiver::start().await;
        let mut body = subscription(&receiver.url);
        body["channel"]["_payload"] = json!({"extension": [{
            "url": paraply_notify::PAYLOAD_CONTENT_EXTENSION, "valueCode": "full-resource"}]});
        let id = s.create(&body).await;
        wait_for_status(s, &id, "active").await;
        let woman = patient(s, "female").await;
        let event = &receiver.events(1).await[0];
        let resource = &event["entry"][1]["resource"];
        assert_eq!(resource["id"], woman.as_str(), "{event}");
        assert_eq!(resource["meta"]["versionId"], "1");
        let shown = event.to_string();
        paraply_fhir_validator::assert_valid(&[("full-resource.json", shown.as_str())]);
    }
);
