//! Property tests: bearer-token validation never panics on arbitrary strings (random
//! bytes, three base64url segments of random JSON, `alg: none`, huge tokens, a real header
//! and payload with a forged signature) and always refuses them as the token's fault.
//!
//! The trusted issuer is the in-process [`TestIssuer`] (discovery + JWKS on loopback), so
//! tokens naming it reach key lookup and signature checking.
//!
//! 256 cases by default so CI stays fast; the target is 100 000:
//! `PARAPLY_PROPTEST_CASES=100000 cargo test -p paraply-auth --test properties`.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use paraply_auth::{Authenticator, IssuerKind, TrustedIssuer};
use paraply_idp_harness::{TestIssuer, http, now};
use paraply_proptest_support::{JsonShape, config};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tokio::runtime::Runtime;

const FHIR_BASE: &str = "http://127.0.0.1:8080/fhir";

/// One issuer, authenticator and runtime for every case: starting them per case would
/// dominate the run.
struct Harness {
    issuer: TestIssuer,
    authenticator: Authenticator,
    runtime: Runtime,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let issuer = TestIssuer::start();
        let trusted = vec![TrustedIssuer::new(
            &issuer.issuer,
            FHIR_BASE,
            IssuerKind::Citizen,
        )];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // reqwest's client must be built inside a runtime context.
        let authenticator =
            runtime.block_on(async { Authenticator::new(trusted, http()).unwrap() });
        Harness {
            issuer,
            authenticator,
            runtime,
        }
    })
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    paraply_proptest_support::arbitrary_json(
        JsonShape {
            keys: &[],
            depth: 3,
            size: 24,
            branch: 4,
        },
        any::<String>().boxed(),
    )
}

/// A string claim or header value: a meaningful one or anything.
fn one_of(choices: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => proptest::sample::select(choices).prop_map(|choice| json!(choice)),
        1 => arbitrary_json(),
    ]
}

fn header() -> impl Strategy<Value = Value> {
    (
        one_of(&[
            "RS256", "PS256", "ES256", "none", "None", "HS256", "ES384", "",
        ]),
        proptest::option::of(one_of(&["test-ec", "other", ""])),
        proptest::option::of(one_of(&[
            "JWT",
            "at+jwt",
            "application/at+jwt",
            "logout+jwt",
        ])),
        proptest::option::of(arbitrary_json()),
    )
        .prop_map(|(alg, kid, typ, crit)| {
            let mut header = json!({ "alg": alg });
            if let Some(kid) = kid {
                header["kid"] = kid;
            }
            if let Some(typ) = typ {
                header["typ"] = typ;
            }
            if let Some(crit) = crit {
                header["crit"] = crit;
            }
            header
        })
}

/// Claims naming the trusted issuer (a placeholder replaced per case) or not.
fn payload() -> impl Strategy<Value = Value> {
    let time = prop_oneof![
        Just(json!(now() + 600)),
        Just(json!(now() - 600)),
        any::<i64>().prop_map(|t| json!(t)),
        any::<f64>().prop_map(|t| json!(t)),
        arbitrary_json(),
    ];
    (
        proptest::option::of(one_of(&["trusted", "https://evil.example", ""])),
        proptest::option::of(one_of(&[FHIR_BASE, "https://other.example/fhir"])),
        proptest::option::of(time.clone()),
        proptest::option::of(time),
        proptest::collection::vec((any::<String>(), arbitrary_json()), 0..3),
    )
        .prop_map(|(iss, aud, exp, nbf, extra)| {
            let mut claims: Map<String, Value> = extra.into_iter().collect();
            for (name, value) in [("iss", iss), ("aud", aud), ("exp", exp), ("nbf", nbf)] {
                if let Some(value) = value {
                    claims.insert(name.to_owned(), value);
                }
            }
            Value::Object(claims)
        })
}

fn segment_of(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A token candidate; `trusted` in `iss` stands for the test issuer's URL.
#[derive(Debug, Clone)]
enum Candidate {
    Text(String),
    Segments {
        header: Value,
        payload: Value,
        signature: Vec<u8>,
    },
    /// A real header and payload signed by the issuer, with a forged signature.
    Forged {
        signature: Vec<u8>,
    },
    Huge {
        length: usize,
        dots: bool,
    },
}

fn candidate() -> impl Strategy<Value = Candidate> {
    prop_oneof![
        2 => any::<Vec<u8>>()
            .prop_map(|bytes| Candidate::Text(String::from_utf8_lossy(&bytes).into_owned())),
        1 => any::<String>().prop_map(Candidate::Text),
        1 => "[A-Za-z0-9_-]{0,40}(\\.[A-Za-z0-9_=+/-]{0,40}){0,4}".prop_map(Candidate::Text),
        6 => (header(), payload(), proptest::collection::vec(any::<u8>(), 0..80)).prop_map(
            |(header, payload, signature)| Candidate::Segments { header, payload, signature }
        ),
        1 => proptest::collection::vec(any::<u8>(), 0..80)
            .prop_map(|signature| Candidate::Forged { signature }),
        1 => (0usize..2_000_000, any::<bool>())
            .prop_map(|(length, dots)| Candidate::Huge { length, dots }),
    ]
}

impl Candidate {
    fn token(&self, harness: &Harness) -> String {
        let trusted = json!(harness.issuer.issuer);
        match self {
            Candidate::Text(text) => text.clone(),
            Candidate::Segments {
                header,
                payload,
                signature,
            } => {
                let mut payload = payload.clone();
                if payload.get("iss") == Some(&json!("trusted")) {
                    payload["iss"] = trusted;
                }
                format!(
                    "{}.{}.{}",
                    segment_of(header),
                    segment_of(&payload),
                    URL_SAFE_NO_PAD.encode(signature)
                )
            }
            Candidate::Forged { signature } => {
                let signed = harness.issuer.sign_claims(
                    "test-ec",
                    None,
                    json!({
                        "aud": FHIR_BASE, "sub": "tolvan", "exp": now() + 600, "iat": now(),
                        "client_id": "paraply-tests", "scope": "patient/CarePlan.rs",
                        "https://id.oidc.se/claim/personalIdentityNumber": "191212121212",
                    }),
                );
                let (signed_part, _) = signed.rsplit_once('.').unwrap();
                format!("{signed_part}.{}", URL_SAFE_NO_PAD.encode(signature))
            }
            Candidate::Huge { length, dots } => {
                let mut token = "A".repeat(*length);
                if *dots && *length > 2 {
                    token.replace_range(length / 3..length / 3 + 1, ".");
                    token.replace_range(2 * length / 3..2 * length / 3 + 1, ".");
                }
                token
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_tokens_are_refused_as_the_tokens_fault(candidate in candidate()) {
        let harness = harness();
        let token = candidate.token(harness);
        let verdict = harness.runtime.block_on(harness.authenticator.authenticate(&token));
        match verdict {
            Ok(principal) => prop_assert!(false, "accepted a forged token as {principal:?}"),
            Err(refusal) => {
                prop_assert!(refusal.is_token_rejected(), "{refusal:?}");
                prop_assert!(!refusal.to_string().is_empty());
            }
        }
    }
}
