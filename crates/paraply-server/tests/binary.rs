//! End-to-end tests of the real `paraply` binary: each test starts it as a child process
//! on its own SQLite file and loopback port, speaks HTTP to it and stops it with signals.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_paraply");
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const FHIR_JSON: &str = "application/fhir+json";

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

/// A fresh directory for one test's database, config and logs.
fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir()
        .join("paraply-bin-tests")
        .join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// Removes a passed test's directory; a failed test's stays behind for inspection.
fn remove_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite://{}", dir.join(file).display())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

fn send_sigterm(pid: u32) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid} failed");
}

/// Runs the binary with `args` in `dir`, stdout and stderr going to files named after `log`.
fn spawn(dir: &Path, log: &str, args: &[&str], envs: &[(&str, &str)]) -> Child {
    let stdout = File::create(dir.join(format!("{log}.stdout"))).expect("stdout file");
    let stderr = File::create(dir.join(format!("{log}.stderr"))).expect("stderr file");
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    for var in PARAPLY_VARS {
        command.env_remove(var);
    }
    command.envs(envs.iter().copied());
    command.spawn().expect("start the paraply binary")
}

/// Waits for `child` to exit, for at most `limit`.
async fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A running `paraply`; killed when dropped, whatever happened in the test.
struct Server {
    child: Child,
    dir: PathBuf,
    log: String,
    base: String,
}

impl Server {
    /// Starts `paraply <subcommand>` on a free port and `database`, and waits until ready.
    /// `serve` runs with `--auth none` (these tests are not about logins); `demo` with its
    /// own demo issuer.
    async fn start(
        subcommand: &str,
        dir: &Path,
        log: &str,
        database: &str,
        envs: &[(&str, &str)],
    ) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![subcommand, "--listen", &listen, "--database", database];
        if subcommand == "serve" {
            args.extend(["--auth", "none"]);
        }
        let child = spawn(dir, log, &args, envs);
        let mut server = Server {
            child,
            dir: dir.to_owned(),
            log: log.to_owned(),
            base: format!("http://{listen}"),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let client = client();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                panic!(
                    "paraply exited with {status} before it was ready:\n{}",
                    self.logs()
                );
            }
            let answer = client
                .get(format!("{}/readyz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for a successful exit.
    async fn stop(&mut self) {
        send_sigterm(self.pid());
        let status = wait_exit(&mut self.child, Duration::from_secs(10)).await;
        match status {
            Some(status) => assert!(
                status.success(),
                "paraply exited with {status}:\n{}",
                self.logs()
            ),
            None => panic!("paraply did not exit within 10 s of SIGTERM"),
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.stdout", self.log))).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.stderr", self.log))).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"));
    (status, body)
}

/// Logs `login_hint` in at the demo issuer `issuer` the way an app does: authorization code
/// with PKCE, no browser. Returns the token response.
async fn demo_login(client: &reqwest::Client, issuer: &str, login_hint: &str) -> Value {
    use base64::Engine as _;
    use sha2::Digest as _;
    let redirect_uri = "http://127.0.0.1/demo-app/callback";
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let (_, discovery) = get_json(
        client,
        &format!("{issuer}/.well-known/openid-configuration"),
    )
    .await;
    assert_eq!(discovery["issuer"], issuer, "{discovery}");
    let authorize = discovery["authorization_endpoint"]
        .as_str()
        .expect("authorize");
    // The redirect to the app is read, not followed: nothing listens there.
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    let response = browser
        .get(authorize)
        .query(&[
            ("response_type", "code"),
            ("client_id", "demo-app"),
            ("redirect_uri", redirect_uri),
            // Staff apps act as their user, patients' apps for their patient (SMART).
            (
                "scope",
                if issuer.ends_with("/citizen") {
                    "openid launch/patient patient/*.rs"
                } else {
                    "openid user/*.rs"
                },
            ),
            ("state", "s1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("login_hint", login_hint),
        ])
        .send()
        .await
        .expect("authorize");
    assert!(response.status().is_redirection(), "{}", response.status());
    let location =
        reqwest::Url::parse(response.headers()["location"].to_str().expect("a Location"))
            .expect("an absolute redirect");
    assert!(location.as_str().starts_with(redirect_uri), "{location}");
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("state").as_deref(), Some("s1"));
    assert_eq!(param("iss").as_deref(), Some(issuer));
    let code = param("code").expect("a code");
    let token_endpoint = discovery["token_endpoint"].as_str().expect("token");
    let exchange = |verifier: String| {
        client.post(token_endpoint).form(&[
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", redirect_uri.to_owned()),
            ("client_id", "demo-app".to_owned()),
            ("code_verifier", verifier),
        ])
    };
    let tokens: Value = exchange(verifier)
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    assert_eq!(tokens["token_type"], "Bearer", "{tokens}");
    // A code is good for one exchange only.
    let again = exchange("x".repeat(43)).send().await.expect("token again");
    assert_eq!(again.status(), 400);
    tokens
}

fn bearer(tokens: &Value) -> String {
    format!(
        "Bearer {}",
        tokens["access_token"].as_str().expect("an access token")
    )
}

async fn get_as(client: &reqwest::Client, url: &str, authorization: &str) -> (u16, Value) {
    let response = client
        .get(url)
        .header("authorization", authorization)
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"));
    (status, body)
}

#[tokio::test]
async fn demo_serves_the_demo_patient_ready_to_click() {
    let dir = fresh_dir();
    let database = sqlite_url(&dir, "demo.db");
    let client = client();

    let mut first = Server::start("demo", &dir, "first", &database, &[]).await;
    assert!(
        first.stdout().contains("DEMO") || first.stderr().contains("DEMO"),
        "the demo login service is announced loudly:\n{}",
        first.logs()
    );
    let citizen = first.url("/demo-idp/citizen");

    // Without a token: 401 and a challenge, as an OperationOutcome.
    let response = client
        .get(first.url("/fhir/Patient/demo-tolvan"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"paraply\""
    );
    let outcome: Value = response.json().await.expect("an OperationOutcome");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["code"], "login");
    let response = client
        .get(first.url("/fhir/Patient/demo-tolvan"))
        .header("authorization", "Bearer not.a.token")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // The public documents tell an app where to log in.
    let (status, smart) =
        get_json(&client, &first.url("/fhir/.well-known/smart-configuration")).await;
    assert_eq!(status, 200, "{smart}");
    assert_eq!(smart["issuer"], citizen.as_str());
    assert_eq!(
        smart["authorization_endpoint"],
        format!("{citizen}/authorize")
    );
    assert_eq!(smart["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        smart["paraply_trusted_issuers"].as_array().map(Vec::len),
        Some(3)
    );
    let (status, capabilities) = get_json(&client, &first.url("/fhir/metadata")).await;
    assert_eq!(status, 200, "{capabilities}");
    assert_eq!(capabilities["resourceType"], "CapabilityStatement");
    assert_eq!(capabilities["fhirVersion"], "4.0.1");
    let security = &capabilities["rest"][0]["security"];
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    assert_eq!(
        security["extension"][0]["extension"][1]["valueUri"],
        format!("{citizen}/token")
    );

    // Without login_hint the demo login shows whom one may be.
    let page = client
        .get(format!("{citizen}/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "demo-app"),
            ("redirect_uri", "http://127.0.0.1/demo-app/callback"),
            ("code_challenge", "abc"),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("HTML");
    assert!(
        page.contains("Tolvan Tolvansson") && page.contains("DEMO"),
        "{page}"
    );

    let tokens = demo_login(&client, &citizen, "tolvan").await;
    assert_eq!(tokens["patient"], "demo-tolvan", "{tokens}");
    let tolvan = bearer(&tokens);
    let (status, patient) = get_as(&client, &first.url("/fhir/Patient/demo-tolvan"), &tolvan).await;
    assert_eq!(status, 200, "{patient}");
    let identifiers = patient["identifier"].as_array().expect("identifiers");
    assert!(
        identifiers.iter().any(|i| i["system"]
            == "http://electronichealth.se/identifier/personnummer"
            && i["value"] == "191212121212"),
        "{patient}"
    );
    assert_eq!(patient["meta"]["versionId"], "1", "{patient}");
    // An ID token is not an access token for this server.
    let id_token = format!(
        "Bearer {}",
        tokens["id_token"].as_str().expect("an ID token")
    );
    let (status, _) = get_as(&client, &first.url("/fhir/Patient/demo-tolvan"), &id_token).await;
    assert_eq!(status, 401);

    // The demo patientkontrakt answers the searches the portal and clinicians use.
    let search = "/fhir/CareTeam?patient=demo-tolvan&category=fast-kontakt&status=active";
    let (status, contacts) = get_as(&client, &first.url(search), &tolvan).await;
    assert_eq!(status, 200, "{contacts}");
    // Fast vårdkontakt (coordinating), fast läkarkontakt and fast omsorgskontakt.
    assert_eq!(contacts["total"], 3, "{contacts}");
    let search =
        "/fhir/CarePlan?patient=demo-tolvan&category=patientkontrakt&_include=CarePlan:care-team";
    let (status, plans) = get_as(&client, &first.url(search), &tolvan).await;
    assert_eq!(status, 200, "{plans}");
    assert_eq!(plans["entry"].as_array().map(Vec::len), Some(4), "{plans}");

    // The relative and the physician log in too.
    let lisa = demo_login(&client, &citizen, "198505052384").await;
    let (status, relative) = get_as(
        &client,
        &first.url("/fhir/RelatedPerson/demo-lisa"),
        &bearer(&lisa),
    )
    .await;
    assert_eq!(status, 200, "{relative}");
    let anna = demo_login(&client, &first.url("/demo-idp/staff"), "anna").await;
    let (status, patient) = get_as(
        &client,
        &first.url("/fhir/Patient/demo-tolvan"),
        &bearer(&anna),
    )
    .await;
    assert_eq!(status, 200, "{patient}");

    // The municipality's SIP coordinator logs in through the kommun issuer and reads the SIP
    // she coordinates, internal note included; Tolvan's daughter sees it without (I14).
    let karin = demo_login(&client, &first.url("/demo-idp/kommun"), "karin").await;
    let sip = first.url("/fhir/CarePlan/demo-sip-tolvan");
    let (status, plan) = get_as(&client, &sip, &bearer(&karin)).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["note"].as_array().map(Vec::len), Some(2), "{plan}");
    let (status, plan) = get_as(&client, &sip, &bearer(&lisa)).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["note"].as_array().map(Vec::len), Some(1), "{plan}");

    // The cancer patient sees her umbrella and Min vårdplan under it.
    let eva = demo_login(&client, &citizen, "eva").await;
    let (status, plans) = get_as(
        &client,
        &first.url("/fhir/CarePlan?patient=demo-eva"),
        &bearer(&eva),
    )
    .await;
    assert_eq!(status, 200, "{plans}");
    assert_eq!(plans["entry"].as_array().map(Vec::len), Some(2), "{plans}");

    // The portal logs a patient in through the demo login service.
    let browser = reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    let mut url = first.url("/auth/login?login_hint=tolvan&return_to=/min-plan");
    for _ in 0..10 {
        let response = browser.get(&url).send().await.expect("a login step");
        let Some(location) = response.headers().get("location") else {
            break;
        };
        let next = location.to_str().expect("an ASCII Location").to_owned();
        if next == "/min-plan" {
            break;
        }
        url = if next.starts_with('/') {
            first.url(&next)
        } else {
            next
        };
    }
    let session: Value = browser
        .get(first.url("/auth/session"))
        .send()
        .await
        .expect("the session")
        .json()
        .await
        .expect("session JSON");
    assert!(
        session.to_string().contains("191212121212"),
        "the portal session names Tolvan: {session}"
    );
    first.stop().await;
    drop(first);

    // The same database again: loading the demo data a second time changes nothing.
    let mut second = Server::start("demo", &dir, "second", &database, &[]).await;
    let tokens = demo_login(&client, &second.url("/demo-idp/citizen"), "tolvan").await;
    let (status, patient) = get_as(
        &client,
        &second.url("/fhir/Patient/demo-tolvan"),
        &bearer(&tokens),
    )
    .await;
    assert_eq!(status, 200, "{patient}");
    assert_eq!(patient["meta"]["versionId"], "1", "{patient}");
    second.stop().await;
    remove_dir(&dir);
}

/// A start-up that a bad setting must stop, and what its message must name.
struct BadStart<'a> {
    name: &'a str,
    args: &'a [&'a str],
    envs: &'a [(&'a str, &'a str)],
    mentions: &'a [&'a str],
}

#[tokio::test]
async fn bad_settings_stop_startup_naming_the_setting() {
    let dir = fresh_dir();
    let database = sqlite_url(&dir, "never.db");
    let unknown_key = dir.join("unknown-key.toml");
    std::fs::write(&unknown_key, "max_body_byte = 5\n").expect("write the config");
    let unknown_key = unknown_key.display().to_string();

    let listen_flag = ["serve", "--listen", "nonsense", "--database", &database];
    let listen_env = ["serve", "--database", &database];
    let bad_database = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        "mysql://x",
    ];
    let missing_config = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        &database,
        "--config",
        "/nonexistent.toml",
    ];
    let unknown_key_config = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        &database,
        "--config",
        &unknown_key,
    ];
    let oidc_without_issuers = ["serve", "--listen", "127.0.0.1:0", "--database", &database];
    let auth_none_public = [
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--database",
        &database,
        "--auth",
        "none",
    ];
    // Settings that are fine but for the one each case spoils.
    let good = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        &database,
        "--auth",
        "none",
    ];
    let cases = [
        BadStart {
            name: "log-filter",
            args: &good,
            envs: &[("PARAPLY_LOG", "info,paraply=loud")],
            mentions: &["PARAPLY_LOG", "paraply=loud"],
        },
        BadStart {
            name: "log-format",
            args: &good,
            envs: &[("PARAPLY_LOG_FORMAT", "xml")],
            mentions: &["PARAPLY_LOG_FORMAT", "xml"],
        },
        BadStart {
            name: "public-base-url-env",
            args: &good,
            envs: &[("PARAPLY_PUBLIC_BASE_URL", "http://fhir.example.se/fhir")],
            mentions: &["PARAPLY_PUBLIC_BASE_URL", "https"],
        },
        BadStart {
            name: "oidc-without-issuers",
            args: &oidc_without_issuers,
            envs: &[],
            mentions: &["PARAPLY_AUTH", "[[issuer]]"],
        },
        BadStart {
            name: "auth-none-on-a-public-address",
            args: &auth_none_public,
            envs: &[],
            mentions: &["PARAPLY_AUTH", "loopback"],
        },
        BadStart {
            name: "auth-none-by-env-on-a-public-address",
            args: &["serve", "--listen", "0.0.0.0:0", "--database", &database],
            envs: &[("PARAPLY_AUTH", "none")],
            mentions: &["PARAPLY_AUTH", "loopback"],
        },
        BadStart {
            name: "listen-flag",
            args: &listen_flag,
            envs: &[],
            mentions: &["PARAPLY_LISTEN"],
        },
        BadStart {
            name: "listen-env",
            args: &listen_env,
            envs: &[("PARAPLY_LISTEN", "nonsense")],
            mentions: &["PARAPLY_LISTEN"],
        },
        BadStart {
            name: "database",
            args: &bad_database,
            envs: &[],
            mentions: &["PARAPLY_DATABASE_URL"],
        },
        BadStart {
            name: "config-missing",
            args: &missing_config,
            envs: &[],
            mentions: &["PARAPLY_CONFIG"],
        },
        BadStart {
            name: "config-unknown-key",
            args: &unknown_key_config,
            envs: &[],
            mentions: &["PARAPLY_CONFIG", "max_body_byte"],
        },
    ];

    for BadStart {
        name,
        args,
        envs,
        mentions,
    } in cases
    {
        let mut child = spawn(&dir, name, args, envs);
        let status = wait_exit(&mut child, Duration::from_secs(10)).await;
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let stderr =
            std::fs::read_to_string(dir.join(format!("{name}.stderr"))).unwrap_or_default();
        let status = status.unwrap_or_else(|| panic!("{name}: paraply did not stop: {stderr}"));
        assert!(!status.success(), "{name}: exited with {status}");
        for &mention in mentions {
            assert!(
                stderr.contains(mention),
                "{name}: stderr does not mention {mention}:\n{stderr}"
            );
        }
    }
    assert!(
        !dir.join("never.db").exists(),
        "a bad setting still created the database"
    );
    remove_dir(&dir);
}

/// A transaction Bundle creating `count` Patients.
fn patient_transaction(count: usize) -> Value {
    let entries: Vec<Value> = (0..count)
        .map(|n| {
            json!({
                "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                "request": {"method": "POST", "url": "Patient"},
                "resource": {
                    "resourceType": "Patient",
                    "active": true,
                    "name": [{"family": format!("Testsson{n}"), "given": ["Test", "Signal"]}],
                    "gender": "female",
                    "birthDate": "1980-01-01"
                }
            })
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// Reads exactly one response with a Content-Length from a kept-alive connection.
fn read_one_response(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let read = stream.read(&mut byte).expect("read a response head");
        assert!(read == 1, "the connection closed mid-head");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("read a response body");
    raw.extend_from_slice(&body);
    parse_response(&raw)
}

/// Splits a raw HTTP/1.1 response into status and body (Content-Length or chunked).
fn parse_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {text}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    if !chunked {
        return (status, body.to_owned());
    }
    let mut decoded = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        decoded.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    (status, decoded)
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let dir = fresh_dir();
    let mut server = Server::start("serve", &dir, "server", &sqlite_url(&dir, "p.db"), &[]).await;
    let body = serde_json::to_vec(&patient_transaction(300)).expect("serialize the bundle");
    let port = server.port();

    // The request is sent in two halves over a raw, already-accepted connection, with
    // SIGTERM in between: the server has the request in hand but cannot finish it before
    // the signal, however fast it is, so the overlap is certain rather than a matter of
    // timing. The 300-entry transaction then keeps it busy for a while after the signal.
    let (first_sent_tx, first_sent_rx) = std::sync::mpsc::channel::<()>();
    let (go_on_tx, go_on_rx) = std::sync::mpsc::channel::<()>();
    let request = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        // One full exchange first proves the server has accepted this connection.
        stream
            .write_all(format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
            .expect("send the readiness check");
        let (status, text) = read_one_response(&mut stream);
        assert_eq!(status, 200, "{text}");
        let head = format!(
            "POST /fhir HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {FHIR_JSON}\r\n\
             Accept: {FHIR_JSON}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let half = body.len() / 2;
        stream.write_all(head.as_bytes()).expect("send the head");
        stream
            .write_all(&body[..half])
            .expect("send the first half");
        stream.flush().expect("flush");
        first_sent_tx.send(()).expect("signal the test");
        go_on_rx.recv().expect("wait for the test");
        stream
            .write_all(&body[half..])
            .expect("send the second half");
        stream.flush().expect("flush");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read the response");
        parse_response(&raw)
    });

    first_sent_rx.recv().expect("the first half was sent");
    // Give the server time to parse the head and start reading the body.
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_sigterm(server.pid());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.child.try_wait().expect("poll").is_none(),
        "paraply exited with a request in flight:\n{}",
        server.logs()
    );
    go_on_tx.send(()).expect("let the request finish");

    let (status, text) = tokio::task::spawn_blocking(move || request.join())
        .await
        .expect("join")
        .expect("the request thread");
    assert_eq!(status, 200, "{text}");
    let response: Value = serde_json::from_str(&text).expect("a JSON response");
    assert_eq!(response["resourceType"], "Bundle");
    assert_eq!(response["type"], "transaction-response");
    let entries = response["entry"].as_array().expect("entries");
    assert_eq!(entries.len(), 300);
    assert!(
        entries.iter().all(|e| e["response"]["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("201"))),
        "{response}"
    );

    let exit = wait_exit(&mut server.child, Duration::from_secs(10)).await;
    match exit {
        Some(status) => assert!(status.success(), "exited with {status}:\n{}", server.logs()),
        None => panic!(
            "paraply did not exit within 10 s of SIGTERM:\n{}",
            server.logs()
        ),
    }
    remove_dir(&dir);
}

#[tokio::test]
async fn json_logs_carry_request_ids_and_no_patient_data() {
    let dir = fresh_dir();
    let mut server = Server::start(
        "serve",
        &dir,
        "server",
        &sqlite_url(&dir, "p.db"),
        &[("PARAPLY_LOG_FORMAT", "json")],
    )
    .await;
    let client = client();
    let patient = json!({
        "resourceType": "Patient",
        "identifier": [{
            "system": "http://electronichealth.se/identifier/personnummer",
            "value": "197001011233"
        }],
        "name": [{"family": "Hemligsson", "given": ["Hemlig"]}]
    });
    let created = client
        .post(server.url("/fhir/Patient"))
        .header("content-type", FHIR_JSON)
        .body(patient.to_string())
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("the created Patient");
    let id = created["id"].as_str().expect("an id").to_owned();

    let read = client
        .get(server.url(&format!("/fhir/Patient/{id}")))
        .header("x-request-id", "test-req-42")
        .send()
        .await
        .expect("read");
    assert_eq!(read.status(), 200);
    assert_eq!(
        read.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("test-req-42")
    );
    let read: Value = read.json().await.expect("the Patient");
    assert_eq!(read["name"][0]["family"], "Hemligsson");

    // A search by personnummer must not leak its value into the logs either.
    let searched = client
        .get(server.url(
            "/fhir/Patient?identifier=http://electronichealth.se/identifier/personnummer|197001011233",
        ))
        .send()
        .await
        .expect("search");
    let search_status = searched.status();
    let search_text = searched.text().await.expect("the search Bundle");
    assert_eq!(search_status, 200, "{search_text}");

    server.stop().await;
    let logs = format!("{}{}", server.stdout(), server.stderr());
    let mut lines = 0;
    let mut tagged = false;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        lines += 1;
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        tagged |=
            entry["request_id"] == "test-req-42" || entry["fields"]["request_id"] == "test-req-42";
    }
    assert!(lines > 0, "no logs at all");
    assert!(tagged, "no log line carries the request id:\n{logs}");
    assert!(
        !logs.contains("197001011233"),
        "the personnummer leaked:\n{logs}"
    );
    assert!(!logs.contains("Hemligsson"), "the name leaked:\n{logs}");
    remove_dir(&dir);
}

#[tokio::test]
async fn metrics_count_requests_by_interaction() {
    let dir = fresh_dir();
    let mut server = Server::start("serve", &dir, "server", &sqlite_url(&dir, "p.db"), &[]).await;
    let client = client();
    let put = client
        .put(server.url("/fhir/Patient/metrics-1"))
        .header("content-type", FHIR_JSON)
        .body(json!({"resourceType": "Patient", "id": "metrics-1", "active": true}).to_string())
        .send()
        .await
        .expect("update");
    assert!(put.status().is_success(), "{}", put.status());
    for _ in 0..3 {
        let read = client
            .get(server.url("/fhir/Patient/metrics-1"))
            .send()
            .await
            .expect("read");
        assert_eq!(read.status(), 200);
    }

    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("metrics text");
    let reads = text
        .lines()
        .find(|l| {
            l.starts_with("paraply_http_requests_total{")
                && l.contains(r#"interaction="read""#)
                && l.contains(r#"status="200""#)
        })
        .unwrap_or_else(|| panic!("no read counter:\n{text}"));
    let count: f64 = reads
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no count in {reads}"));
    assert!(count >= 3.0, "{reads}");
    assert!(
        text.contains("paraply_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("paraply_db_pool_connections"), "{text}");
    server.stop().await;
    remove_dir(&dir);
}

/// The JSON log lines of `log`'s stdout.
fn json_logs(dir: &Path, log: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join(format!("{log}.stdout")))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Runs `paraply reindex --database <database>` to a successful end; returns its log lines.
async fn run_reindex(dir: &Path, log: &str, database: &str) -> Vec<Value> {
    let mut child = spawn(
        dir,
        log,
        &["reindex", "--database", database],
        &[("PARAPLY_LOG_FORMAT", "json")],
    );
    let status = wait_exit(&mut child, Duration::from_secs(60)).await;
    let logs = json_logs(dir, log);
    assert!(
        status.is_some_and(|s| s.success()),
        "paraply reindex ended with {status:?}: {logs:?}"
    );
    logs
}

fn with_message<'a>(logs: &'a [Value], message: &str) -> Vec<&'a Value> {
    logs.iter().filter(|l| l["message"] == message).collect()
}

/// A database as a version before recorded index definitions (migration 0004) left it, and
/// without `Consent?provision-type` rows, as one written before that parameter was added:
/// `paraply reindex` reindexes it completely once, logging progress, a second run has
/// nothing to do, and the consents are found by `provision-type` again.
#[tokio::test]
async fn reindex_brings_an_older_database_up_to_date_once() {
    let dir = fresh_dir();
    let database = sqlite_url(&dir, "p.db");
    let client = client();
    let mut server = Server::start("serve", &dir, "before", &database, &[]).await;
    for kind in ["deny", "permit"] {
        let consent = json!({"resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": {"type": kind}});
        let created = client
            .post(server.url("/fhir/Consent"))
            .header("content-type", FHIR_JSON)
            .body(consent.to_string())
            .send()
            .await
            .expect("create");
        assert_eq!(created.status(), 201);
    }
    server.stop().await;
    drop(server);

    let old = sqlx::SqlitePool::connect(&database)
        .await
        .expect("open the database");
    for statement in [
        "DELETE FROM indexed_param",
        "DELETE FROM index_token WHERE param = 'provision-type'",
    ] {
        sqlx::query(statement)
            .execute(&old)
            .await
            .expect("age the database");
    }
    old.close().await;

    let first = run_reindex(&dir, "reindex-1", &database).await;
    let of_consent = |message: &str| {
        with_message(&first, message)
            .into_iter()
            .find(|l| l["resource_type"] == "Consent")
    };
    let started = of_consent("reindexing").expect("Consent is reindexed");
    assert!(
        started["params"]
            .as_str()
            .is_some_and(|p| p.split(',').any(|p| p == "provision-type")),
        "{started}"
    );
    let finished = of_consent("reindexed").expect("Consent is finished");
    assert_eq!(
        (&finished["done"], &finished["total"]),
        (&json!(2), &json!(2))
    );
    assert!(finished["per_second"].is_number(), "{finished}");
    let summary = with_message(&first, "search index is up to date");
    assert_eq!(summary.len(), 1, "{first:?}");
    assert_eq!(summary[0]["reindexed"], "Consent");
    assert_eq!(summary[0]["resources"], 2);

    let second = run_reindex(&dir, "reindex-2", &database).await;
    assert!(with_message(&second, "reindexing").is_empty(), "{second:?}");
    let summary = with_message(&second, "search index is up to date");
    assert_eq!(summary.len(), 1, "{second:?}");
    assert_eq!(summary[0]["resources"], 0);

    let mut server = Server::start("serve", &dir, "after", &database, &[]).await;
    for kind in ["deny", "permit"] {
        let (status, bundle) = get_json(
            &client,
            &server.url(&format!("/fhir/Consent?provision-type={kind}")),
        )
        .await;
        assert_eq!(status, 200, "{bundle}");
        let entries = bundle["entry"].as_array().map(Vec::len);
        assert_eq!(entries, Some(1), "{kind}: {bundle}");
    }
    server.stop().await;
    remove_dir(&dir);
}

/// Runs `paraply audit <action> --database <database>`; returns whether it succeeded and
/// what it printed.
async fn run_audit(dir: &Path, log: &str, action: &str, database: &str) -> (bool, String) {
    let mut child = spawn(dir, log, &["audit", action, "--database", database], &[]);
    let status = wait_exit(&mut child, Duration::from_secs(60)).await;
    let printed = ["stdout", "stderr"]
        .iter()
        .map(|kind| std::fs::read_to_string(dir.join(format!("{log}.{kind}"))).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let status = status.unwrap_or_else(|| panic!("paraply audit {action} did not end: {printed}"));
    (status.success(), printed)
}

/// Runs `statement` on `database` behind Paraply's back; returns the first column of each
/// row as text (empty for statements without rows).
async fn sql(database: &str, statement: &str) -> Vec<String> {
    let statement = sqlx::AssertSqlSafe(statement.to_owned());
    if database.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(database).await.expect("open");
        let rows: Vec<(String,)> = sqlx::query_as(statement)
            .fetch_all(&pool)
            .await
            .expect("SQL");
        pool.close().await;
        rows.into_iter().map(|(text,)| text).collect()
    } else {
        let pool = sqlx::PgPool::connect(database).await.expect("connect");
        let rows: Vec<(String,)> = sqlx::query_as(statement)
            .fetch_all(&pool)
            .await
            .expect("SQL");
        pool.close().await;
        rows.into_iter().map(|(text,)| text).collect()
    }
}

/// Refused logins through HTTP leave access-log entries; `paraply audit verify` passes,
/// finds exactly the entry whose body was edited with SQL, passes again once it is put
/// back, finds a deleted entry; `paraply audit purge` then deletes what is older than the
/// retention, records that it ran and logs itself, and `verify` passes after it.
async fn audit_commands_on(dir: &Path, database: &str) {
    let client = client();
    let mut server = Server::start("demo", dir, "audit-demo", database, &[]).await;
    for _ in 0..6 {
        let response = client
            .get(server.url("/fhir/Patient/demo-tolvan"))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 401);
    }
    server.stop().await;
    drop(server);

    let (ok, printed) = run_audit(dir, "verify-1", "verify", database).await;
    assert!(ok && printed.contains("access log OK"), "{printed}");
    let ids = sql(database, "SELECT id FROM access_log ORDER BY seq").await;
    assert!(ids.len() >= 6, "{ids:?}");

    let edited = &ids[2];
    sql(
        database,
        &format!("UPDATE access_log SET body = body || ' ' WHERE id = '{edited}' RETURNING id"),
    )
    .await;
    let (ok, printed) = run_audit(dir, "verify-2", "verify", database).await;
    assert!(!ok, "an edited entry passes: {printed}");
    assert!(
        printed.contains(&format!("AuditEvent {edited}")) && printed.contains("was changed"),
        "{printed}"
    );
    for other in ids.iter().filter(|id| *id != edited) {
        assert!(
            !printed.contains(other.as_str()),
            "{other} named: {printed}"
        );
    }
    sql(
        database,
        &format!("UPDATE access_log SET body = rtrim(body) WHERE id = '{edited}' RETURNING id"),
    )
    .await;
    let (ok, printed) = run_audit(dir, "verify-3", "verify", database).await;
    assert!(ok, "put back: {printed}");

    let deleted = &ids[3];
    sql(
        database,
        &format!("DELETE FROM access_log WHERE id = '{deleted}' RETURNING id"),
    )
    .await;
    let (ok, printed) = run_audit(dir, "verify-4", "verify", database).await;
    assert!(!ok, "a deleted entry passes: {printed}");
    assert!(
        printed.contains("BROKEN") && (printed.contains("missing") || printed.contains("deleted")),
        "{printed}"
    );

    // Everything left is made older than the retention (which breaks its hashes too): the
    // purge deletes it all and leaves each chain anchored where it ended.
    sql(database, "UPDATE access_log SET recorded = 0 RETURNING id").await;
    let (ok, printed) = run_audit(dir, "purge", "purge", database).await;
    assert!(ok, "{printed}");
    assert!(
        printed.contains(&format!("purged {} access-log entries", ids.len() - 1)),
        "{printed}"
    );
    let purges = sql(
        database,
        "SELECT CAST(deleted AS TEXT) FROM access_log_purge",
    )
    .await;
    assert_eq!(purges, [(ids.len() - 1).to_string()]);
    let left = sql(database, "SELECT subtype FROM access_log").await;
    assert_eq!(left, ["delete"], "only the purge's own entry is left");
    let (ok, printed) = run_audit(dir, "verify-5", "verify", database).await;
    assert!(
        ok && printed.contains("access log OK: 1 entries"),
        "{printed}"
    );
}

#[tokio::test]
async fn audit_verify_finds_tampering_and_purge_keeps_the_chains_verifiable() {
    let dir = fresh_dir();
    audit_commands_on(&dir, &sqlite_url(&dir, "audit.db")).await;
    if let Some(postgres) = paraply_store_sql::testing::PostgresTestDatabase::create().await {
        let pg_dir = dir.join("postgres");
        std::fs::create_dir_all(&pg_dir).expect("a directory");
        audit_commands_on(&pg_dir, &postgres.url).await;
        postgres.remove().await;
    }
    remove_dir(&dir);
}
