//! Test harness for logins: starts the real OpenID providers of `tests/idp` (npm
//! oidc-provider), drives their browserless code + PKCE login and client-credentials grants,
//! and runs a tiny in-process issuer whose key the tests own (for expired, not-yet-valid and
//! unknown-`kid` tokens the real provider cannot mint). Shared by the token tests of
//! paraply-auth and the end-to-end access tests, so both speak to the providers one way.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Where the login flows redirect; nothing listens there, the harness reads `Location`.
pub const REDIRECT_URI: &str = "http://127.0.0.1/paraply-tests/callback";
/// Throw-away keys: they protect nothing and are trusted nowhere but in tests.
pub const TEST_RSA_PEM: &str = include_str!("../keys/test-only-rsa.pem");
pub const TEST_EC_PEM: &str = include_str!("../keys/test-only-ec-p256.pem");
const TEST_EC_X: &str = "xPZmY0UJrSrSJ0GYFfqF24q9ydS-YF9iVU6dqECBGB0";
const TEST_EC_Y: &str = "-6CzRdqVC6rUdzBe3J2E3lYJOW0IuJa_QNaVK12jnwg";

/// A running `tests/idp/idp.mjs`. Node runs under `sh`, which kills it (and removes the keys
/// directory) as soon as our end of its stdin closes: on drop, or when the test process exits,
/// so even the shared instance in a `static` never outlives the test binary.
pub struct Idp {
    pub citizen: String,
    pub region: String,
    pub kommun: String,
    /// The FHIR base the providers put in `aud`.
    pub fhir_base: String,
    /// The providers' keys file: the backend client's private key is in it.
    pub keys: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../idp")
}

/// Whether `node` and the installed providers are here; says loudly when not.
pub fn idp_available() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    let ok =
        node.is_ok_and(|s| s.success()) && idp_dir().join("node_modules/oidc-provider").is_dir();
    if !ok {
        eprintln!(
            "\n!!!!! SKIPPED: the test IdP needs `node` and `npm ci --prefix tests/idp`; \
             token tests against the real OpenID providers did NOT run !!!!!\n"
        );
    }
    ok
}

impl Idp {
    /// Starts citizen, region and kommun issuers on free ports, with `aud` = `fhir_base`.
    pub fn start(fhir_base: &str, extra_args: &str) -> Idp {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "paraply-auth-idp-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let script = format!(
            "node '{idp}' --issuers citizen:0,region:0,kommun:0 --fhir-base '{fhir_base}' \
             --keys '{keys}' {extra_args} & pid=$!; cat >/dev/null; kill $pid; wait $pid; rm -rf '{dir}'",
            idp = idp_dir().join("idp.mjs").display(),
            keys = dir.join("keys.json").display(),
            dir = dir.display(),
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(issuer) = line
                    .strip_prefix("issuer ")
                    .and_then(|l| l.strip_suffix(" ready"))
                {
                    let _ = tx.send(issuer.to_owned());
                }
            }
        });
        let mut ready = Vec::new();
        for _ in 0..3 {
            ready.push(
                rx.recv_timeout(Duration::from_secs(60))
                    .expect("the test IdP did not start"),
            );
        }
        Idp {
            citizen: ready[0].clone(),
            region: ready[1].clone(),
            kommun: ready[2].clone(),
            fhir_base: fhir_base.to_owned(),
            keys: dir.join("keys.json"),
            stdin: child.stdin.take(),
            child,
        }
    }
}

/// A client that does not follow redirects.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A system token by the client-credentials grant of the `paraply-tests` client.
pub async fn client_credentials(issuer: &str, scope: &str, fhir_base: &str) -> String {
    let tokens = token_endpoint(
        issuer,
        &[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("resource", fhir_base),
        ],
    )
    .await;
    tokens["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {tokens}"))
        .to_owned()
}

/// The SMART Backend Services client of the region issuer (`tests/idp/README.md`).
pub const BACKEND_CLIENT: &str = "paraply-backend";

/// A system token for the backend-services client `paraply-backend` of the region issuer:
/// the client-credentials grant authenticated by a JWT assertion signed RS384 with the
/// client's own key, read from the providers' keys file (`private_key_jwt`, no secret).
pub async fn backend_services_token(idp: &Idp, scope: &str) -> String {
    static JTI: AtomicUsize = AtomicUsize::new(0);
    let keys: Value = serde_json::from_str(
        &std::fs::read_to_string(&idp.keys).expect("the IdP's keys file is readable"),
    )
    .expect("the keys file is JSON");
    let key = &keys["clients"][BACKEND_CLIENT];
    let mut header = Header::new(Algorithm::RS384);
    header.kid = key["kid"].as_str().map(str::to_owned);
    let token_endpoint = format!("{}/token", idp.region);
    let assertion = jsonwebtoken::encode(
        &header,
        &json!({
            "iss": BACKEND_CLIENT,
            "sub": BACKEND_CLIENT,
            "aud": token_endpoint,
            // Unique per assertion: the provider refuses a `jti` it has seen.
            "jti": format!("{}-{}", std::process::id(), JTI.fetch_add(1, Ordering::SeqCst)),
            "iat": now(),
            "exp": now() + 300,
        }),
        &EncodingKey::from_rsa_pem(
            key["pem"]
                .as_str()
                .expect("the client key's PEM")
                .as_bytes(),
        )
        .expect("the client key parses"),
    )
    .expect("signing works");
    let tokens: Value = http()
        .post(token_endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("resource", idp.fhir_base.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .await
        .expect("the token endpoint answers")
        .json()
        .await
        .expect("the token endpoint answers JSON");
    tokens["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {tokens}"))
        .to_owned()
}

/// A request to the issuer's token endpoint as the `paraply-tests` client.
async fn token_endpoint(issuer: &str, form: &[(&str, &str)]) -> Value {
    http()
        .post(format!("{issuer}/token"))
        .basic_auth("paraply-tests", Some("paraply-tests-secret"))
        .form(form)
        .send()
        .await
        .expect("the token endpoint answers")
        .json()
        .await
        .expect("the token endpoint answers JSON")
}

/// What a login returns.
pub struct Tokens {
    pub access: String,
    pub id: String,
}

/// The browserless authorization code + PKCE login of tests/idp/README.md.
pub async fn login(issuer: &str, login_hint: &str, scope: &str, fhir_base: &str) -> Tokens {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let verifier = format!("verifier-{nanos}-{login_hint}-0123456789abcdefghijklmnopqrstuvwxyz");
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut url = reqwest::Url::parse_with_params(
        &format!("{issuer}/auth"),
        &[
            ("client_id", "paraply-tests"),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("scope", scope),
            ("state", "s1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("login_hint", login_hint),
            ("resource", fhir_base),
        ],
    )
    .unwrap();
    let code = loop {
        let res = http.get(url.clone()).send().await.unwrap();
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        url = url.join(&location).unwrap();
        if url.as_str().starts_with(REDIRECT_URI) {
            let param = |name: &str| {
                url.query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            };
            assert_eq!(param("state").as_deref(), Some("s1"));
            assert_eq!(param("iss").as_deref(), Some(issuer));
            break param("code").unwrap_or_else(|| panic!("login failed: {url}"));
        }
    };
    let tokens = token_endpoint(
        issuer,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    Tokens {
        access: tokens["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{tokens}"))
            .to_owned(),
        id: tokens["id_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{tokens}"))
            .to_owned(),
    }
}

/// Rotates an issuer's signing key (`POST /admin/rotate`), keeping `keep` old keys.
pub async fn rotate(issuer: &str, keep: u32) -> String {
    let res: Value = http()
        .post(format!("{issuer}/admin/rotate?keep={keep}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    res["kid"].as_str().unwrap().to_owned()
}

/// A JWT part (0 header, 1 claims), decoded without any check.
pub fn unverified_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Serves `/.well-known/openid-configuration` and `/jwks` for a throw-away EC key on loopback
/// and counts JWKS requests.
pub struct TestIssuer {
    pub issuer: String,
    pub jwks_hits: Arc<AtomicUsize>,
}

impl TestIssuer {
    pub fn start() -> TestIssuer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let (hits, iss) = (Arc::clone(&jwks_hits), issuer.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request);
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let body = match path {
                    "/.well-known/openid-configuration" => {
                        json!({"issuer": iss, "jwks_uri": format!("{iss}/jwks")})
                    }
                    "/jwks" => {
                        hits.fetch_add(1, Ordering::SeqCst);
                        json!({"keys": [{"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
                                         "kid": "test-ec", "x": TEST_EC_X, "y": TEST_EC_Y}]})
                    }
                    _ => json!({}),
                }
                .to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TestIssuer { issuer, jwks_hits }
    }

    /// Signs `claims` (with `iss` set to this issuer) with the issuer's own ES256 key.
    pub fn sign_claims(&self, kid: &str, typ: Option<&str>, mut claims: Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        header.typ = typ.map(str::to_owned);
        claims["iss"] = json!(self.issuer);
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ec_pem(TEST_EC_PEM.as_bytes()).expect("the test EC key parses"),
        )
        .expect("signing works")
    }
}
