//! Token validation against real OpenID providers (`tests/idp`, oidc-provider) and an attack
//! suite of forged tokens.
//!
//! Run `npm ci --prefix tests/idp` first; without `node` or `tests/idp/node_modules` the IdP
//! tests print a loud SKIPPED message and pass. Expiry and `nbf` are tested with tokens signed
//! by a throw-away key of a tiny in-process issuer (discovery + JWKS over loopback HTTP),
//! because the real IdP cannot mint a not-yet-valid token and waiting out a 1 s token plus the
//! 30 s leeway would slow the suite.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use paraply_auth::{
    AuthError, Authenticator, AuthenticatorOptions, Context, IssuerKind, Permission, Principal,
    TrustedIssuer,
};
use paraply_fhir::ResourceType;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const FHIR_BASE: &str = "http://127.0.0.1:8080/fhir";
const REDIRECT_URI: &str = "http://127.0.0.1/paraply-tests/callback";
const TEST_RSA_PEM: &str = include_str!("keys/test-only-rsa.pem");
const TEST_EC_PEM: &str = include_str!("keys/test-only-ec-p256.pem");
const TEST_EC_X: &str = "xPZmY0UJrSrSJ0GYFfqF24q9ydS-YF9iVU6dqECBGB0";
const TEST_EC_Y: &str = "-6CzRdqVC6rUdzBe3J2E3lYJOW0IuJa_QNaVK12jnwg";

// ---------------------------------------------------------------------------------------------
// The real IdP

/// A running `tests/idp/idp.mjs`. Node runs under `sh`, which kills it (and removes the keys
/// directory) as soon as our end of its stdin closes: on drop, or when the test process exits,
/// so even the shared instance in a `static` never outlives the test binary.
struct Idp {
    citizen: String,
    region: String,
    kommun: String,
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
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp")
}

fn idp_available() -> bool {
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
    fn start(extra_args: &str) -> Idp {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "paraply-auth-idp-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let script = format!(
            "node '{idp}' --issuers citizen:0,region:0,kommun:0 --fhir-base '{FHIR_BASE}' \
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
            stdin: child.stdin.take(),
            child,
        }
    }

    /// One IdP shared by the tests that do not rotate keys.
    fn shared() -> Option<&'static Idp> {
        static IDP: OnceLock<Option<Idp>> = OnceLock::new();
        IDP.get_or_init(|| idp_available().then(|| Idp::start("")))
            .as_ref()
    }

    /// A private IdP for tests that rotate keys.
    fn private() -> Option<Idp> {
        idp_available().then(|| Idp::start(""))
    }

    fn trusted(&self) -> Vec<TrustedIssuer> {
        vec![
            TrustedIssuer::new(&self.citizen, FHIR_BASE, IssuerKind::Citizen),
            TrustedIssuer::new(&self.region, FHIR_BASE, IssuerKind::Staff)
                .with_huvudman("Organization/region-stockholm"),
            TrustedIssuer::new(&self.kommun, FHIR_BASE, IssuerKind::Staff)
                .with_huvudman("Organization/solna-stad"),
        ]
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn authenticator(issuers: Vec<TrustedIssuer>) -> Authenticator {
    Authenticator::new(issuers, http()).unwrap()
}

fn authenticator_with_refetch(issuers: Vec<TrustedIssuer>, interval: Duration) -> Authenticator {
    let options = AuthenticatorOptions {
        min_jwks_refetch_interval: interval,
        ..AuthenticatorOptions::default()
    };
    Authenticator::with_options(issuers, http(), options).unwrap()
}

async fn client_credentials(issuer: &str, scope: &str) -> String {
    let tokens: Value = http()
        .post(format!("{issuer}/token"))
        .basic_auth("paraply-tests", Some("paraply-tests-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("resource", FHIR_BASE),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {tokens}"))
        .to_owned()
}

struct Tokens {
    access: String,
    id: String,
}

/// The browserless authorization code + PKCE login of tests/idp/README.md.
async fn login(issuer: &str, login_hint: &str, scope: &str) -> Tokens {
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
            ("resource", FHIR_BASE),
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
    let tokens: Value = http
        .post(format!("{issuer}/token"))
        .basic_auth("paraply-tests", Some("paraply-tests-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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

async fn rotate(issuer: &str, keep: u32) -> String {
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

fn unverified_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---------------------------------------------------------------------------------------------
// Real tokens, real principals

#[tokio::test]
async fn client_credentials_token_is_a_system_principal() {
    let Some(idp) = Idp::shared() else { return };
    let token = client_credentials(&idp.region, "system/*.rs").await;
    let principal = authenticator(idp.trusted())
        .authenticate(&token)
        .await
        .unwrap();
    let Principal::System {
        client_id,
        issuer,
        scopes,
    } = &principal
    else {
        panic!("{principal:?}")
    };
    assert_eq!(client_id, "paraply-tests");
    assert_eq!(issuer, &idp.region);
    assert!(scopes.allows(
        Some(Context::System),
        ResourceType::CarePlan,
        Permission::Search
    ));
    assert!(!scopes.allows(
        Some(Context::System),
        ResourceType::CarePlan,
        Permission::Update
    ));
}

#[tokio::test]
async fn citizen_login_is_a_citizen_principal() {
    let Some(idp) = Idp::shared() else { return };
    let tokens = login(
        &idp.citizen,
        "tolvan",
        "openid fhirUser patient/CarePlan.rs patient/Goal.r",
    )
    .await;
    let principal = authenticator(idp.trusted())
        .authenticate(&tokens.access)
        .await
        .unwrap();
    let Principal::Citizen {
        personnummer,
        issuer,
        scopes,
    } = &principal
    else {
        panic!("{principal:?}")
    };
    assert_eq!(personnummer.as_str(), "191212121212");
    assert_eq!(issuer, &idp.citizen);
    assert!(scopes.allows(
        Some(Context::Patient),
        ResourceType::CarePlan,
        Permission::Read
    ));
    assert!(scopes.allows(Some(Context::Patient), ResourceType::Goal, Permission::Read));
    assert!(!scopes.allows(
        Some(Context::Patient),
        ResourceType::Goal,
        Permission::Search
    ));
    assert_eq!(scopes.iter().count(), 2);
}

#[tokio::test]
async fn region_staff_login_is_a_staff_principal() {
    let Some(idp) = Idp::shared() else { return };
    let tokens = login(
        &idp.region,
        "anna",
        "openid user/CarePlan.cruds user/CareTeam.rs",
    )
    .await;
    let principal = authenticator(idp.trusted())
        .authenticate(&tokens.access)
        .await
        .unwrap();
    let Principal::Staff {
        hsa_id,
        unit_hsa_id,
        care_provider_hsa_id,
        roles,
        huvudman,
        issuer,
        scopes,
    } = &principal
    else {
        panic!("{principal:?}")
    };
    assert_eq!(hsa_id, "SE2321000016-1003");
    assert_eq!(unit_hsa_id, "SE2321000016-15CQ");
    assert_eq!(care_provider_hsa_id, "SE2321000016-0001");
    assert_eq!(roles, &["lakare"]);
    assert_eq!(huvudman.as_deref(), Some("Organization/region-stockholm"));
    assert_eq!(issuer, &idp.region);
    assert!(scopes.allows(
        Some(Context::User),
        ResourceType::CarePlan,
        Permission::Delete
    ));
    assert!(!scopes.allows(
        Some(Context::User),
        ResourceType::CareTeam,
        Permission::Update
    ));
}

#[tokio::test]
async fn kommun_staff_token_verifies_with_es256() {
    let Some(idp) = Idp::shared() else { return };
    let tokens = login(&idp.kommun, "maria", "openid user/CarePlan.rs").await;
    assert_eq!(unverified_part(&tokens.access, 0)["alg"], "ES256");
    let principal = authenticator(idp.trusted())
        .authenticate(&tokens.access)
        .await
        .unwrap();
    assert!(
        matches!(&principal, Principal::Staff { hsa_id, huvudman: Some(h), .. }
            if hsa_id == "SE2120001314-3001" && h == "Organization/solna-stad"),
        "{principal:?}"
    );
}

#[tokio::test]
async fn id_token_is_not_an_access_token() {
    let Some(idp) = Idp::shared() else { return };
    let tokens = login(&idp.citizen, "karin", "openid patient/CarePlan.rs").await;
    let err = authenticator(idp.trusted())
        .authenticate(&tokens.id)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AuthError::WrongAudience | AuthError::WrongTokenType),
        "{err:?}"
    );
}

#[tokio::test]
async fn citizen_token_from_a_staff_configured_issuer_lacks_the_hsa_id() {
    let Some(idp) = Idp::shared() else { return };
    let tokens = login(&idp.citizen, "tolvan", "openid patient/CarePlan.rs").await;
    let misconfigured = vec![TrustedIssuer::new(
        &idp.citizen,
        FHIR_BASE,
        IssuerKind::Staff,
    )];
    let err = authenticator(misconfigured)
        .authenticate(&tokens.access)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AuthError::MissingClaim {
            name: "urn:oid:1.2.752.29.6.2.1".to_owned()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Attack suite

#[tokio::test]
async fn token_signed_by_another_key_is_refused() {
    let Some(idp) = Idp::shared() else { return };
    let real = client_credentials(&idp.region, "system/*.rs").await;
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("at+jwt".to_owned());
    header.kid = unverified_part(&real, 0)["kid"].as_str().map(str::to_owned);
    let forged = jsonwebtoken::encode(
        &header,
        &unverified_part(&real, 1),
        &EncodingKey::from_rsa_pem(TEST_RSA_PEM.as_bytes()).unwrap(),
    )
    .unwrap();
    let err = authenticator(idp.trusted())
        .authenticate(&forged)
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::BadSignature);
}

#[tokio::test]
async fn alg_none_is_refused() {
    let Some(idp) = Idp::shared() else { return };
    let real = client_credentials(&idp.region, "system/*.rs").await;
    let mut header = unverified_part(&real, 0);
    header["alg"] = json!("none");
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let auth = authenticator(idp.trusted());
    for unsigned in [
        format!("{}.{}.", b64(&header), b64(&unverified_part(&real, 1))),
        format!(
            "{}.{}.{}",
            b64(&header),
            b64(&unverified_part(&real, 1)),
            real.split('.').nth(2).unwrap()
        ),
    ] {
        assert_eq!(
            auth.authenticate(&unsigned).await.unwrap_err(),
            AuthError::DisallowedAlgorithm
        );
    }
}

#[tokio::test]
async fn hs256_signed_with_the_issuers_public_key_is_refused() {
    let Some(idp) = Idp::shared() else { return };
    let real = client_credentials(&idp.region, "system/*.rs").await;
    let jwks = http()
        .get(format!("{}/jwks", idp.region))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let jwks_json: Value = serde_json::from_slice(&jwks).unwrap();
    let n = jwks_json["keys"][0]["n"].as_str().unwrap().to_owned();
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".to_owned());
    header.kid = unverified_part(&real, 0)["kid"].as_str().map(str::to_owned);
    let auth = authenticator(idp.trusted());
    for secret in [
        &jwks[..],
        n.as_bytes(),
        &URL_SAFE_NO_PAD.decode(&n).unwrap(),
    ] {
        let forged = jsonwebtoken::encode(
            &header,
            &unverified_part(&real, 1),
            &EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert_eq!(
            auth.authenticate(&forged).await.unwrap_err(),
            AuthError::DisallowedAlgorithm
        );
    }
}

#[tokio::test]
async fn token_from_an_untrusted_issuer_is_refused() {
    let Some(idp) = Idp::shared() else { return };
    let kommun_token = client_credentials(&idp.kommun, "system/*.rs").await;
    let only_region = vec![TrustedIssuer::new(
        &idp.region,
        FHIR_BASE,
        IssuerKind::Staff,
    )];
    let auth = authenticator(only_region);
    assert_eq!(
        auth.authenticate(&kommun_token).await.unwrap_err(),
        AuthError::UntrustedIssuer
    );

    // The same issuer spelled differently is a different issuer (exact match).
    let region_token = client_credentials(&idp.region, "system/*.rs").await;
    let spelled = idp.region.replace("127.0.0.1", "localhost");
    let auth = authenticator(vec![TrustedIssuer::new(
        spelled,
        FHIR_BASE,
        IssuerKind::Staff,
    )]);
    assert_eq!(
        auth.authenticate(&region_token).await.unwrap_err(),
        AuthError::UntrustedIssuer
    );
}

#[tokio::test]
async fn token_for_another_audience_is_refused() {
    let Some(idp) = Idp::shared() else { return };
    let token = client_credentials(&idp.region, "system/*.rs").await;
    let other = vec![TrustedIssuer::new(
        &idp.region,
        "http://127.0.0.1:9999/other/fhir",
        IssuerKind::Staff,
    )];
    assert_eq!(
        authenticator(other).authenticate(&token).await.unwrap_err(),
        AuthError::WrongAudience
    );
}

#[tokio::test]
async fn discovery_naming_another_issuer_is_refused() {
    let Some(idp) = Idp::shared() else { return };
    // A token claiming iss = region + "/" is looked up exactly; its discovery (served by the
    // region issuer) names the issuer without the slash, so the keys are never trusted.
    let token = client_credentials(&idp.region, "system/*.rs").await;
    let mut claims = unverified_part(&token, 1);
    let slashed = format!("{}/", idp.region);
    claims["iss"] = json!(slashed);
    let mut header = Header::new(Algorithm::RS256);
    header.kid = unverified_part(&token, 0)["kid"]
        .as_str()
        .map(str::to_owned);
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(TEST_RSA_PEM.as_bytes()).unwrap(),
    )
    .unwrap();
    let auth = authenticator(vec![TrustedIssuer::new(
        slashed,
        FHIR_BASE,
        IssuerKind::Staff,
    )]);
    let err = auth.authenticate(&forged).await.unwrap_err();
    assert!(matches!(err, AuthError::Discovery(_)), "{err:?}");
    assert!(!err.is_token_rejected());
}

#[tokio::test]
async fn rotated_key_is_found_by_one_jwks_refetch() {
    let Some(idp) = Idp::private() else { return };
    let auth = authenticator_with_refetch(idp.trusted(), Duration::from_millis(200));
    let before = client_credentials(&idp.region, "system/*.rs").await;
    auth.authenticate(&before).await.unwrap();

    let new_kid = rotate(&idp.region, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = client_credentials(&idp.region, "system/*.rs").await;
    assert_eq!(unverified_part(&after, 0)["kid"], json!(new_kid));
    auth.authenticate(&after).await.unwrap();
    // The previous key is still published, so older tokens stay valid.
    auth.authenticate(&before).await.unwrap();

    // keep=0 drops the old key: after the next refetch the old token's kid is unknown.
    rotate(&idp.region, 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let newest = client_credentials(&idp.region, "system/*.rs").await;
    auth.authenticate(&newest).await.unwrap();
    assert_eq!(
        auth.authenticate(&before).await.unwrap_err(),
        AuthError::UnknownKey
    );
}

#[tokio::test]
async fn unknown_kid_is_refused_without_a_second_refetch_within_the_rate_limit() {
    let Some(idp) = Idp::private() else { return };
    let auth = authenticator_with_refetch(idp.trusted(), Duration::from_secs(60));
    let token = client_credentials(&idp.region, "system/*.rs").await;

    // A kid that nobody publishes: the first use fetches the JWKS, finds nothing.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("no-such-kid".to_owned());
    let forged = jsonwebtoken::encode(
        &header,
        &unverified_part(&token, 1),
        &EncodingKey::from_rsa_pem(TEST_RSA_PEM.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        auth.authenticate(&forged).await.unwrap_err(),
        AuthError::UnknownKey
    );
    auth.authenticate(&token).await.unwrap(); // the fetch did happen: the real kid is cached

    // After a rotation, a genuine token with the new kid is refused too: the authenticator does
    // not fetch again within the interval ...
    rotate(&idp.region, 1).await;
    let rotated = client_credentials(&idp.region, "system/*.rs").await;
    assert_eq!(
        auth.authenticate(&rotated).await.unwrap_err(),
        AuthError::UnknownKey
    );
    // ... while a fresh authenticator (which may fetch) accepts it.
    authenticator(idp.trusted())
        .authenticate(&rotated)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// A private issuer signing with a throw-away key: time claims and exact refetch counting

/// Serves `/.well-known/openid-configuration` and `/jwks` for a throw-away EC key on loopback
/// and counts JWKS requests.
struct TestIssuer {
    issuer: String,
    jwks_hits: Arc<AtomicUsize>,
}

impl TestIssuer {
    fn start() -> TestIssuer {
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

    fn trusted(&self) -> Vec<TrustedIssuer> {
        vec![TrustedIssuer::new(
            &self.issuer,
            FHIR_BASE,
            IssuerKind::Citizen,
        )]
    }

    fn sign(&self, kid: &str, typ: Option<&str>, exp: i64, nbf: Option<i64>) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        header.typ = typ.map(str::to_owned);
        let mut claims = json!({
            "iss": self.issuer, "aud": FHIR_BASE, "sub": "tolvan", "exp": exp, "iat": now(),
            "client_id": "paraply-tests", "scope": "patient/CarePlan.rs",
            "https://id.oidc.se/claim/personalIdentityNumber": "191212121212",
        });
        if let Some(nbf) = nbf {
            claims["nbf"] = json!(nbf);
        }
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ec_pem(TEST_EC_PEM.as_bytes()).unwrap(),
        )
        .unwrap()
    }
}

#[tokio::test]
async fn test_issuer_token_is_accepted_so_the_time_tests_mean_something() {
    let test = TestIssuer::start();
    let auth = authenticator(test.trusted());
    let principal = auth
        .authenticate(&test.sign("test-ec", Some("at+jwt"), now() + 300, None))
        .await
        .unwrap();
    assert!(
        matches!(principal, Principal::Citizen { .. }),
        "{principal:?}"
    );
    // Within the 30 s leeway on both sides.
    auth.authenticate(&test.sign("test-ec", None, now() - 10, Some(now() + 10)))
        .await
        .unwrap();
}

#[tokio::test]
async fn expired_token_is_refused() {
    let test = TestIssuer::start();
    let token = test.sign("test-ec", Some("at+jwt"), now() - 120, None);
    assert_eq!(
        authenticator(test.trusted())
            .authenticate(&token)
            .await
            .unwrap_err(),
        AuthError::Expired
    );
}

#[tokio::test]
async fn token_without_exp_is_refused() {
    let test = TestIssuer::start();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("test-ec".to_owned());
    let claims = json!({"iss": test.issuer, "aud": FHIR_BASE, "sub": "x", "client_id": "x"});
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ec_pem(TEST_EC_PEM.as_bytes()).unwrap(),
    )
    .unwrap();
    let err = authenticator(test.trusted())
        .authenticate(&token)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AuthError::MissingClaim {
            name: "exp".to_owned()
        }
    );
}

#[tokio::test]
async fn not_yet_valid_token_is_refused() {
    let test = TestIssuer::start();
    let token = test.sign("test-ec", Some("at+jwt"), now() + 600, Some(now() + 300));
    assert_eq!(
        authenticator(test.trusted())
            .authenticate(&token)
            .await
            .unwrap_err(),
        AuthError::NotYetValid
    );
}

#[tokio::test]
async fn token_of_another_type_is_refused() {
    let test = TestIssuer::start();
    let token = test.sign("test-ec", Some("logout+jwt"), now() + 300, None);
    assert_eq!(
        authenticator(test.trusted())
            .authenticate(&token)
            .await
            .unwrap_err(),
        AuthError::WrongTokenType
    );
}

#[tokio::test]
async fn es256_key_cannot_verify_an_rs256_token() {
    let test = TestIssuer::start();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-ec".to_owned());
    let claims = json!({"iss": test.issuer, "aud": FHIR_BASE, "exp": now() + 300});
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(TEST_RSA_PEM.as_bytes()).unwrap(),
    )
    .unwrap();
    let err = authenticator(test.trusted())
        .authenticate(&token)
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::DisallowedAlgorithm);
}

#[tokio::test]
async fn unknown_kid_triggers_exactly_one_refetch_per_interval() {
    let test = TestIssuer::start();
    let auth = authenticator_with_refetch(test.trusted(), Duration::from_millis(500));
    auth.authenticate(&test.sign("test-ec", None, now() + 300, None))
        .await
        .unwrap();
    assert_eq!(test.jwks_hits.load(Ordering::SeqCst), 1);

    // Keys are cached: no fetch for a known kid.
    auth.authenticate(&test.sign("test-ec", None, now() + 300, None))
        .await
        .unwrap();
    assert_eq!(test.jwks_hits.load(Ordering::SeqCst), 1);

    tokio::time::sleep(Duration::from_millis(600)).await;
    let unknown = test.sign("other-kid", None, now() + 300, None);
    assert_eq!(
        auth.authenticate(&unknown).await.unwrap_err(),
        AuthError::UnknownKey
    );
    assert_eq!(
        test.jwks_hits.load(Ordering::SeqCst),
        2,
        "one refetch for the unknown kid"
    );
    for _ in 0..5 {
        assert_eq!(
            auth.authenticate(&unknown).await.unwrap_err(),
            AuthError::UnknownKey
        );
    }
    assert_eq!(
        test.jwks_hits.load(Ordering::SeqCst),
        2,
        "no further refetch within the interval"
    );

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        auth.authenticate(&unknown).await.unwrap_err(),
        AuthError::UnknownKey
    );
    assert_eq!(
        test.jwks_hits.load(Ordering::SeqCst),
        3,
        "one refetch per interval"
    );
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_refetch() {
    let test = TestIssuer::start();
    let auth = Arc::new(authenticator_with_refetch(
        test.trusted(),
        Duration::from_secs(60),
    ));
    let unknown = test.sign("other-kid", None, now() + 300, None);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (auth, token) = (Arc::clone(&auth), unknown.clone());
            tokio::spawn(async move { auth.authenticate(&token).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap_err(), AuthError::UnknownKey);
    }
    assert_eq!(test.jwks_hits.load(Ordering::SeqCst), 1);
}
