//! Token validation against real OpenID providers (`tests/idp`, oidc-provider) and an attack
//! suite of forged tokens.
//!
//! Run `npm ci --prefix tests/idp` first; without `node` or `tests/idp/node_modules` the IdP
//! tests print a loud SKIPPED message and pass. Expiry and `nbf` are tested with tokens signed
//! by a throw-away key of a tiny in-process issuer (discovery + JWKS over loopback HTTP),
//! because the real IdP cannot mint a not-yet-valid token and waiting out a 1 s token plus the
//! 30 s leeway would slow the suite.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use paraply_auth::{
    AuthError, Authenticator, AuthenticatorOptions, Context, IssuerKind, Permission, Principal,
    TrustedIssuer,
};
use paraply_fhir::ResourceType;
use paraply_idp_harness::{
    self as harness, Idp, TEST_EC_PEM, TEST_RSA_PEM, TestIssuer, Tokens, http, idp_available, now,
    rotate, unverified_part,
};
use serde_json::{Value, json};

const FHIR_BASE: &str = "http://127.0.0.1:8080/fhir";

// ---------------------------------------------------------------------------------------------
// The real IdP

/// The shared and private providers of these tests, and what this suite trusts of them.
trait LocalIdp: Sized {
    fn shared() -> Option<&'static Self>;
    fn private() -> Option<Self>;
    fn trusted(&self) -> Vec<TrustedIssuer>;
}

impl LocalIdp for Idp {
    /// One IdP shared by the tests that do not rotate keys.
    fn shared() -> Option<&'static Idp> {
        static IDP: OnceLock<Option<Idp>> = OnceLock::new();
        IDP.get_or_init(|| idp_available().then(|| Idp::start(FHIR_BASE, "")))
            .as_ref()
    }

    /// A private IdP for tests that rotate keys.
    fn private() -> Option<Idp> {
        idp_available().then(|| Idp::start(FHIR_BASE, ""))
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

async fn client_credentials(issuer: &str, scope: &str) -> String {
    harness::client_credentials(issuer, scope, FHIR_BASE).await
}

async fn login(issuer: &str, login_hint: &str, scope: &str) -> Tokens {
    harness::login(issuer, login_hint, scope, FHIR_BASE).await
}

/// What this suite trusts of the in-process issuer, and its usual token.
trait LocalIssuer {
    fn trusted(&self) -> Vec<TrustedIssuer>;
    fn sign(&self, kid: &str, typ: Option<&str>, exp: i64, nbf: Option<i64>) -> String;
}

impl LocalIssuer for TestIssuer {
    fn trusted(&self) -> Vec<TrustedIssuer> {
        vec![TrustedIssuer::new(
            &self.issuer,
            FHIR_BASE,
            IssuerKind::Citizen,
        )]
    }

    fn sign(&self, kid: &str, typ: Option<&str>, exp: i64, nbf: Option<i64>) -> String {
        let mut claims = json!({
            "aud": FHIR_BASE, "sub": "tolvan", "exp": exp, "iat": now(),
            "client_id": "paraply-tests", "scope": "patient/CarePlan.rs",
            "https://id.oidc.se/claim/personalIdentityNumber": "191212121212",
        });
        if let Some(nbf) = nbf {
            claims["nbf"] = json!(nbf);
        }
        self.sign_claims(kid, typ, claims)
    }
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

#[tokio::test]
async fn a_remembered_token_still_expires() {
    let test = TestIssuer::start();
    let options = AuthenticatorOptions {
        leeway: Duration::ZERO,
        ..AuthenticatorOptions::default()
    };
    let auth = Authenticator::with_options(LocalIssuer::trusted(&test), http(), options).unwrap();
    let token = test.sign("test-ec", Some("at+jwt"), now() + 2, None);
    auth.authenticate(&token).await.unwrap();
    // Served from the verified-token cache the second time...
    auth.authenticate(&token).await.unwrap();
    // ... but never past its expiry.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        auth.authenticate(&token).await.unwrap_err(),
        AuthError::Expired
    );
}
