//! Crash recovery of the real `paraply` binary, on SQLite and (when
//! `PARAPLY_TEST_DATABASE_URL` is set) PostgreSQL: concurrent writers create and update
//! Goals over HTTP, the server is killed with SIGKILL at a random moment, restarted on the
//! same database, and every write it had acknowledged must be readable at its acknowledged
//! version with the content that was written.
//!
//! What this proves and what it does not: SIGKILL ends the process, not the machine — the
//! operating system still holds the page cache and writes it out, so this test would pass
//! with SQLite's `synchronous=NORMAL` too. It proves that the server answers 200/201 only
//! for committed transactions and that the database recovers from a crash mid-write
//! (a torn WAL, open transactions, a half-sent response). Surviving power loss or an OS
//! crash is what `synchronous=FULL` (the default `[storage] sqlite_synchronous`) and
//! PostgreSQL's `synchronous_commit=on` add; no test here pulls the plug.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paraply_store_sql::testing::PostgresTestDatabase;
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_paraply");
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const FHIR_JSON: &str = "application/fhir+json";

/// Kill-and-restart rounds per backend.
const ROUNDS: usize = 10;
/// Concurrent writers per round.
const WRITERS: usize = 4;
/// How long after the writers start the server is killed: a random moment in this range.
const KILL_AFTER_MS: std::ops::Range<u64> = 300..1500;

/// Environment variables the binary reads; children never inherit them from the test run.
const PARAPLY_VARS: &[&str] = &[
    "PARAPLY_LISTEN",
    "PARAPLY_DATABASE_URL",
    "PARAPLY_CONFIG",
    "PARAPLY_AUTH",
    "PARAPLY_LOG",
    "PARAPLY_LOG_FORMAT",
    "PARAPLY_PUBLIC_BASE_URL",
];

/// A write the server answered with success: the Goal's id, the version the answer named,
/// and the description that version carries.
#[derive(Debug, Clone)]
struct Acknowledged {
    id: String,
    version: u64,
    description: String,
}

/// A `paraply serve --auth none` or `paraply demo` child; killed when dropped.
struct Server {
    child: Child,
    dir: PathBuf,
    log: String,
    base: String,
}

impl Server {
    async fn start(dir: &Path, log: &str, database: &str) -> Server {
        Self::start_as("serve", dir, log, database).await
    }

    /// `subcommand` is `serve` (with `--auth none`: the writes need no logins) or `demo`
    /// (logins through its demo OpenID provider, so reads are audited).
    async fn start_as(subcommand: &str, dir: &Path, log: &str, database: &str) -> Server {
        Self::start_configured(subcommand, dir, log, database, None).await
    }

    /// [`Server::start_as`] with a `--config` file.
    async fn start_configured(
        subcommand: &str,
        dir: &Path,
        log: &str,
        database: &str,
        config: Option<&Path>,
    ) -> Server {
        let listen = format!("127.0.0.1:{}", free_port());
        let stdout = File::create(dir.join(format!("{log}.stdout"))).expect("stdout file");
        let stderr = File::create(dir.join(format!("{log}.stderr"))).expect("stderr file");
        let mut args = vec![subcommand, "--listen", &listen, "--database", database];
        if subcommand == "serve" {
            args.extend(["--auth", "none"]);
        }
        let config = config.map(|path| path.display().to_string());
        if let Some(config) = &config {
            args.extend(["--config", config.as_str()]);
        }
        let mut command = Command::new(BINARY);
        command
            .args(&args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for var in PARAPLY_VARS {
            command.env_remove(var);
        }
        let child = command.spawn().expect("start the paraply binary");
        let mut server = Server {
            child,
            dir: dir.to_owned(),
            log: log.to_owned(),
            base: format!("http://{listen}/fhir"),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let client = client(Duration::from_secs(2));
        let ready = self.base.replace("/fhir", "/readyz");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                panic!(
                    "paraply exited with {status} before it was ready:\n{}",
                    self.logs()
                );
            }
            let answer = client.get(&ready).send().await;
            if answer.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "paraply was not ready within {READY_TIMEOUT:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush, no checkpoint.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }

    fn logs(&self) -> String {
        let read = |stream: &str| {
            std::fs::read_to_string(self.dir.join(format!("{}.{stream}", self.log)))
                .unwrap_or_default()
        };
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            read("stdout"),
            read("stderr")
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .expect("an HTTP client")
}

/// A random number in `range`; uuid's v4 generator is randomness enough for a test.
fn random_in(range: std::ops::Range<u64>) -> u64 {
    let span = u128::from(range.end - range.start);
    range.start + u64::try_from(uuid::Uuid::new_v4().as_u128() % span).expect("in range")
}

fn goal(id: Option<&str>, description: &str) -> Value {
    let mut goal = json!({
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": description},
        "subject": {"reference": "Patient/crash-test"}
    });
    if let Some(id) = id {
        goal["id"] = json!(id);
    }
    goal
}

/// Creates and updates Goals until the server stops answering, recording each success.
/// A non-success answer from a live server is a failure of its own.
async fn writer(
    base: String,
    name: String,
    acknowledged: Arc<Mutex<Vec<Acknowledged>>>,
) -> Result<(), String> {
    let client = client(Duration::from_secs(10));
    let mut own: Vec<String> = Vec::new();
    for n in 0u64.. {
        let description = format!("{name}-{n}");
        // Every third write creates, the others update one of this writer's own Goals (so
        // writers never race on one resource).
        let pick = usize::try_from(random_in(0..own.len().max(1) as u64)).unwrap_or(0);
        let (request, id) = match own.get(pick) {
            Some(id) if n % 3 != 0 => (
                client
                    .put(format!("{base}/Goal/{id}"))
                    .body(goal(Some(id), &description).to_string()),
                Some(id.clone()),
            ),
            _ => (
                client
                    .post(format!("{base}/Goal"))
                    .body(goal(None, &description).to_string()),
                None,
            ),
        };
        let Ok(response) = request.header("content-type", FHIR_JSON).send().await else {
            // The server is gone: what was sent may or may not have committed.
            return Ok(());
        };
        let status = response.status().as_u16();
        // Only a complete answer is an acknowledgement.
        let Ok(text) = response.text().await else {
            return Ok(());
        };
        if !matches!(status, 200 | 201) {
            return Err(format!("{name}: write answered {status}: {text}"));
        }
        let body: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        let returned_id = body["id"].as_str().ok_or(format!("no id: {body}"))?;
        if let Some(id) = &id {
            if id != returned_id {
                return Err(format!("updated {id}, answer names {returned_id}"));
            }
        } else {
            own.push(returned_id.to_owned());
        }
        let version = body["meta"]["versionId"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .ok_or(format!("no numeric versionId: {body}"))?;
        acknowledged
            .lock()
            .expect("the acknowledgement list")
            .push(Acknowledged {
                id: returned_id.to_owned(),
                version,
                description,
            });
    }
    Ok(())
}

/// Every acknowledged write is there: the current version is at least the acknowledged
/// one, and reading the acknowledged version gives what was written.
async fn check_all_readable(base: &str, writes: &[Acknowledged]) {
    let client = client(Duration::from_secs(30));
    let mut checks = tokio::task::JoinSet::new();
    for chunk in writes.chunks(writes.len().div_ceil(4).max(1)) {
        let (client, base, chunk) = (client.clone(), base.to_owned(), chunk.to_vec());
        checks.spawn(async move {
            for write in chunk {
                let current: Value = get_ok(&client, &format!("{base}/Goal/{}", write.id)).await;
                let current_version: u64 = current["meta"]["versionId"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                assert!(
                    current_version >= write.version,
                    "{write:?} acknowledged, but the current version is {current_version}"
                );
                let url = format!("{base}/Goal/{}/_history/{}", write.id, write.version);
                let version: Value = get_ok(&client, &url).await;
                assert_eq!(
                    version["description"]["text"], write.description,
                    "{write:?}: {version}"
                );
            }
        });
    }
    while let Some(done) = checks.join_next().await {
        done.expect("a check task");
    }
}

async fn get_ok(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(status, 200, "{url} after the restart: {text}");
    serde_json::from_str(&text).expect("JSON")
}

/// The rounds on one database: write, kill at a random moment, restart, check.
/// `dir` holds the logs (and the SQLite file); it is removed when the test passes.
async fn acknowledged_writes_survive_sigkill_on(dir: &Path, database: &str) {
    let started = Instant::now();
    let mut all: Vec<Acknowledged> = Vec::new();
    let mut server = Server::start(dir, "start-0", database).await;
    for round in 0..ROUNDS {
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                tokio::spawn(writer(
                    server.base.clone(),
                    format!("r{round}w{w}"),
                    acknowledged.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(random_in(KILL_AFTER_MS))).await;
        server.kill();
        for writer in writers {
            if let Err(failure) = writer.await.expect("a writer task") {
                panic!("round {round}: {failure}\n{}", server.logs());
            }
        }
        server = Server::start(dir, &format!("start-{}", round + 1), database).await;
        let round_writes = acknowledged.lock().expect("the list").clone();
        check_all_readable(&server.base, &round_writes).await;
        all.extend(round_writes);
    }
    // Later rounds and recoveries have not undone earlier ones.
    check_all_readable(&server.base, &all).await;
    assert!(
        all.len() >= ROUNDS,
        "only {} writes were acknowledged in {ROUNDS} rounds: the test tested little",
        all.len()
    );
    eprintln!(
        "{ROUNDS} SIGKILLs, {} acknowledged writes, all readable ({:.1} s)",
        all.len(),
        started.elapsed().as_secs_f64()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir()
        .join("paraply-crash-tests")
        .join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// Tolvan's access token from `paraply demo`'s citizen login, fetched the way an app does
/// (authorization code with PKCE, no browser).
async fn demo_patient_token(client: &reqwest::Client, fhir_base: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let issuer = fhir_base.replace("/fhir", "/demo-idp/citizen");
    let redirect_uri = "http://127.0.0.1/crash-test/callback";
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    let answer = no_redirects
        .get(format!("{issuer}/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "crash-test"),
            ("redirect_uri", redirect_uri),
            ("scope", "openid launch/patient patient/*.rs"),
            ("state", "s"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("login_hint", "tolvan"),
        ])
        .send()
        .await
        .expect("authorize");
    let location = reqwest::Url::parse(answer.headers()["location"].to_str().expect("Location"))
        .expect("an absolute redirect");
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let tokens: Value = client
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("client_id", "crash-test"),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    format!(
        "Bearer {}",
        tokens["access_token"].as_str().expect("a token")
    )
}

/// Reads Tolvan's Patient until the server stops answering; returns the `X-Request-Id` of
/// every read answered 200.
async fn reader(base: String, authorization: String) -> Result<Vec<String>, String> {
    let client = client(Duration::from_secs(10));
    let mut acknowledged = Vec::new();
    loop {
        let Ok(response) = client
            .get(format!("{base}/Patient/demo-tolvan"))
            .header("authorization", &authorization)
            .send()
            .await
        else {
            return Ok(acknowledged);
        };
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Ok(text) = response.text().await else {
            return Ok(acknowledged);
        };
        if status != 200 {
            return Err(format!("read answered {status}: {text}"));
        }
        acknowledged.push(request_id.ok_or("a 200 without X-Request-Id")?);
    }
}

/// The request ids the access-log entries in the SQLite file carry (the compact body's
/// `r`, rendered as the AuditEvent's request-id entity).
async fn logged_request_ids(database: &str) -> std::collections::HashSet<String> {
    let pool = sqlx::SqlitePool::connect(database)
        .await
        .expect("open the database");
    let bodies: Vec<(String,)> = sqlx::query_as("SELECT body FROM access_log")
        .fetch_all(&pool)
        .await
        .expect("the access log");
    pool.close().await;
    bodies
        .iter()
        .filter_map(|(body,)| serde_json::from_str::<Value>(body).ok())
        .filter_map(|entry| entry["r"].as_str().map(str::to_owned))
        .collect()
}

/// The access log's promise under a crash: a read answered 200 has its AuditEvent
/// committed, so after SIGKILL and a restart the log names every acknowledged read (by its
/// `X-Request-Id`). SQLite only: the access log goes through the same store on both backends,
/// and this costs a `paraply demo` start per round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_reads_are_in_the_access_log_after_sigkill_on_sqlite() {
    let dir = fresh_dir();
    let database = format!("sqlite://{}", dir.join("p.db").display());
    let mut reads = 0;
    for round in 0..3 {
        let mut server = Server::start_as("demo", &dir, &format!("demo-{round}"), &database).await;
        let token = demo_patient_token(&client(Duration::from_secs(10)), &server.base).await;
        let readers: Vec<_> = (0..WRITERS)
            .map(|_| tokio::spawn(reader(server.base.clone(), token.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(random_in(KILL_AFTER_MS))).await;
        server.kill();
        let mut acknowledged = Vec::new();
        for reader in readers {
            match reader.await.expect("a reader task") {
                Ok(ids) => acknowledged.extend(ids),
                Err(failure) => panic!("round {round}: {failure}\n{}", server.logs()),
            }
        }
        // The restart recovers the database as a server would find it.
        let restarted =
            Server::start_as("demo", &dir, &format!("demo-{round}-restart"), &database).await;
        let logged = logged_request_ids(&database).await;
        let missing: Vec<_> = acknowledged
            .iter()
            .filter(|id| !logged.contains(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} of {} acknowledged reads have no AuditEvent: {missing:?}",
            missing.len(),
            acknowledged.len()
        );
        reads += acknowledged.len();
        drop(restarted);
    }
    assert!(
        reads > 0,
        "no read was acknowledged: the test tested nothing"
    );
    eprintln!("3 SIGKILLs, {reads} acknowledged reads, each with its AuditEvent");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_on_sqlite() {
    let dir = fresh_dir();
    let database = format!("sqlite://{}", dir.join("p.db").display());
    acknowledged_writes_survive_sigkill_on(&dir, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_on_postgres() {
    let Some(db) = PostgresTestDatabase::create().await else {
        return;
    };
    acknowledged_writes_survive_sigkill_on(&fresh_dir(), &db.url).await;
    db.remove().await;
}

/// A webhook receiver on loopback: every notification's event number and focus, after
/// checking its signature.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(u64, String)>>>);

const SECRET: &str = "krasch-test-signeringsnyckel-0123456789abcdef";

async fn receiver() -> (String, Received) {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    let received = Received::default();
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let kept = kept.clone();
            async move {
                let signed = headers
                    .get(paraply_notify::SIGNATURE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                assert_eq!(signed, paraply_notify::signature(SECRET, &body), "signed");
                let bundle: Value = serde_json::from_slice(&body).expect("a JSON notification");
                let parameters = bundle["entry"][0]["resource"]["parameter"].clone();
                let of = |name: &str| {
                    parameters
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|p| p["name"] == name)
                        .cloned()
                        .unwrap_or(Value::Null)
                };
                if of("type")["valueCode"] == "event-notification" {
                    let number: u64 = of("events-since-subscription-start")["valueString"]
                        .as_str()
                        .and_then(|n| n.parse().ok())
                        .expect("an event number");
                    let focus = bundle["entry"][1]["fullUrl"]
                        .as_str()
                        .and_then(|url| url.rsplit('/').next())
                        .unwrap_or_default()
                        .to_owned();
                    kept.0.lock().expect("the list").push((number, focus));
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// Creates Patients until the server stops answering; the ids it acknowledged.
async fn patient_writer(base: String, acknowledged: Arc<Mutex<Vec<String>>>) {
    let client = client(Duration::from_secs(5));
    loop {
        let reply = client
            .post(format!("{base}/Patient"))
            .header("content-type", FHIR_JSON)
            .body(json!({"resourceType": "Patient", "gender": "female"}).to_string())
            .send()
            .await;
        let Ok(reply) = reply else { return };
        if reply.status() != 201 {
            return;
        }
        let Ok(body) = reply.json::<Value>().await else {
            return;
        };
        if let Some(id) = body["id"].as_str() {
            acknowledged.lock().expect("the list").push(id.to_owned());
        }
    }
}

/// Notifications pending when a node dies are delivered after the restart: the outbox is
/// written in each change's own transaction, and the leases of the dead node run out.
async fn pending_notifications_survive_sigkill_on(dir: &Path, database: &str) {
    let config = dir.join("paraply.toml");
    std::fs::write(
        &config,
        "[subscriptions]\ntimeout_seconds = 1\nretry_base_ms = 100\n",
    )
    .expect("write the config");
    let (endpoint, received) = receiver().await;
    let mut server =
        Server::start_configured("serve", dir, "notify-0", database, Some(&config)).await;
    let http = client(Duration::from_secs(5));
    let subscription = json!({"resourceType": "Subscription", "status": "requested",
        "reason": "krasch", "criteria": "Patient?gender=female",
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": FHIR_JSON,
            "extension": [{"url": paraply_notify::SIGNING_SECRET_EXTENSION, "valueString": SECRET}]}});
    let created = http
        .post(format!("{}/Subscription", server.base))
        .header("content-type", FHIR_JSON)
        .body(subscription.to_string())
        .send()
        .await
        .expect("create the subscription");
    assert_eq!(created.status(), 201);
    // Changes are notified from the handshake on: wait for it.
    let created: Value = created.json().await.expect("the subscription");
    let url = format!(
        "{}/Subscription/{}",
        server.base,
        created["id"].as_str().unwrap_or("")
    );
    let deadline = Instant::now() + READY_TIMEOUT;
    while get_ok(&http, &url).await["status"] != "active" {
        assert!(
            Instant::now() < deadline,
            "the subscription never became active"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    for round in 0..3 {
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| tokio::spawn(patient_writer(server.base.clone(), acknowledged.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(random_in(KILL_AFTER_MS))).await;
        server.kill();
        for writer in writers {
            writer.await.expect("a writer task");
        }
        server = Server::start_configured(
            "serve",
            dir,
            &format!("notify-{}", round + 1),
            database,
            Some(&config),
        )
        .await;
    }
    let expected: std::collections::HashSet<String> = acknowledged
        .lock()
        .expect("the list")
        .iter()
        .cloned()
        .collect();
    assert!(
        expected.len() >= 3,
        "too few writes acknowledged to test anything"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = received.0.lock().expect("the list").clone();
        let notified: std::collections::HashSet<&String> = got.iter().map(|(_, f)| f).collect();
        if expected.iter().all(|id| notified.contains(id)) {
            // At least once: a repeat carries a number already seen, so the receiver can
            // tell; the numbers have no gaps.
            let mut numbers: Vec<u64> = got.iter().map(|(n, _)| *n).collect();
            numbers.sort_unstable();
            numbers.dedup();
            let last = *numbers.last().expect("some notifications");
            assert_eq!(numbers, (1..=last).collect::<Vec<_>>(), "no gaps");
            eprintln!(
                "3 SIGKILLs, {} acknowledged creates, all notified ({} notifications, {} repeats)",
                expected.len(),
                got.len(),
                got.len() - numbers.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged writes notified after 60 s\n{}",
            expected.iter().filter(|id| notified.contains(id)).count(),
            expected.len(),
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_notifications_survive_sigkill_on_sqlite() {
    let dir = fresh_dir();
    let database = format!("sqlite://{}", dir.join("paraply.db").display());
    pending_notifications_survive_sigkill_on(&dir, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_notifications_survive_sigkill_on_postgres() {
    let Some(db) = PostgresTestDatabase::create().await else {
        return;
    };
    pending_notifications_survive_sigkill_on(&fresh_dir(), &db.url).await;
}
