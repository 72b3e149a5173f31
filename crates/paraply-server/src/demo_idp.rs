//! A tiny OpenID provider for `paraply demo` only: three issuers under `/demo-idp` (`citizen`
//! for the demo patients and relative, `staff` for Region Stockholm's staff, `kommun` for
//! Solna stad's staff) so the demo can be tried with real bearer tokens and no external
//! login service.
//!
//! **It is a demo.** Anyone may log in as any demo person by clicking a name (or naming it
//! in `login_hint`); any client id and redirect URI are accepted; the RSA signing key is
//! published in the source tree (`demo/demo-idp-key.pem`). `paraply serve` never mounts it.
//!
//! What it does follow, so real clients work against it: discovery, JWKS, authorization code
//! with PKCE (S256 required), RFC 9068 access tokens (`typ: at+jwt`, `aud` = the FHIR base)
//! carrying the same claims as the issuers in `tests/idp`, SMART scopes, and an ID token.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use paraply_auth::{IssuerKind, SmartScope, TrustedIssuer};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::ServerError;

/// The demo signing key. Public on purpose: it signs demo tokens only.
const DEMO_KEY_PEM: &str = include_str!("../demo/demo-idp-key.pem");
const KID: &str = "paraply-demo-1";
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
const CODE_LIFETIME: Duration = Duration::from_secs(120);

/// The demo issuers. Region and municipality staff log in through different issuers, as
/// in real life, because each staff issuer speaks for one huvudman.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Realm {
    Citizen,
    /// Region Stockholm's staff.
    Staff,
    /// Solna stad's staff.
    Kommun,
}

impl Realm {
    fn parse(name: &str) -> Option<Realm> {
        match name {
            "citizen" => Some(Realm::Citizen),
            "staff" => Some(Realm::Staff),
            "kommun" => Some(Realm::Kommun),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Realm::Citizen => "citizen",
            Realm::Staff => "staff",
            Realm::Kommun => "kommun",
        }
    }
}

/// A demo person; everything matches `demo/demo-bundle.json`.
struct DemoPerson {
    login: &'static str,
    realm: Realm,
    sub: &'static str,
    description: &'static str,
    given_name: &'static str,
    family_name: &'static str,
    /// The Patient a citizen's SMART launch is about (their own record).
    patient: Option<&'static str>,
    /// Identity claims, named as Paraply's defaults (and `tests/idp`) name them.
    claims: &'static [(&'static str, &'static str)],
    roles: &'static [&'static str],
}

const PEOPLE: &[DemoPerson] = &[
    DemoPerson {
        login: "tolvan",
        realm: Realm::Citizen,
        sub: "demo-citizen-tolvan",
        description: "Tolvan Tolvansson, patient (191212121212)",
        given_name: "Tolvan",
        family_name: "Tolvansson",
        patient: Some("demo-tolvan"),
        claims: &[(
            "https://id.oidc.se/claim/personalIdentityNumber",
            "191212121212",
        )],
        roles: &[],
    },
    DemoPerson {
        login: "lisa",
        realm: Realm::Citizen,
        sub: "demo-citizen-lisa",
        description: "Lisa Tolvansson, Tolvan's daughter and relative (198505052384)",
        given_name: "Lisa",
        family_name: "Tolvansson",
        patient: None,
        claims: &[(
            "https://id.oidc.se/claim/personalIdentityNumber",
            "198505052384",
        )],
        roles: &[],
    },
    DemoPerson {
        login: "anna",
        realm: Realm::Staff,
        sub: "demo-staff-anna",
        description: "Anna Berg, physician at Vårdcentralen Solna (SE2321000016-1003)",
        given_name: "Anna",
        family_name: "Berg",
        patient: None,
        claims: &[
            ("urn:oid:1.2.752.29.6.2.1", "SE2321000016-1003"),
            (
                "http://sambi.se/attributes/1/healthCareUnitHsaId",
                "SE2321000016-15CQ",
            ),
            (
                "http://sambi.se/attributes/1/healthCareUnitName",
                "Vårdcentralen Solna",
            ),
            (
                "http://sambi.se/attributes/1/healthCareProviderHsaId",
                "SE2321000016-0001",
            ),
            (
                "http://sambi.se/attributes/1/healthCareProviderName",
                "Region Stockholm",
            ),
        ],
        roles: &["lakare"],
    },
    DemoPerson {
        login: "eva",
        realm: Realm::Citizen,
        sub: "demo-citizen-eva",
        description: "Eva Lindqvist, patient in cancer care (196103142383)",
        given_name: "Eva",
        family_name: "Lindqvist",
        patient: Some("demo-eva"),
        claims: &[(
            "https://id.oidc.se/claim/personalIdentityNumber",
            "196103142383",
        )],
        roles: &[],
    },
    DemoPerson {
        login: "elias",
        realm: Realm::Citizen,
        sub: "demo-citizen-elias",
        description: "Elias Karlsson, young adult in psychiatric care with a SIP (200706114576)",
        given_name: "Elias",
        family_name: "Karlsson",
        patient: Some("demo-elias"),
        claims: &[(
            "https://id.oidc.se/claim/personalIdentityNumber",
            "200706114576",
        )],
        roles: &[],
    },
    DemoPerson {
        login: "sara",
        realm: Realm::Staff,
        sub: "demo-staff-sara",
        description: "Sara Ek, kontaktsjuksköterska at Onkologiska mottagningen Solna (SE2321000016-2005)",
        given_name: "Sara",
        family_name: "Ek",
        patient: None,
        claims: &[
            ("urn:oid:1.2.752.29.6.2.1", "SE2321000016-2005"),
            (
                "http://sambi.se/attributes/1/healthCareUnitHsaId",
                "SE2321000016-4ONK",
            ),
            (
                "http://sambi.se/attributes/1/healthCareUnitName",
                "Onkologiska mottagningen Solna",
            ),
            (
                "http://sambi.se/attributes/1/healthCareProviderHsaId",
                "SE2321000016-0001",
            ),
            (
                "http://sambi.se/attributes/1/healthCareProviderName",
                "Region Stockholm",
            ),
        ],
        roles: &["sjukskoterska"],
    },
    DemoPerson {
        login: "karin",
        realm: Realm::Kommun,
        sub: "demo-kommun-karin",
        description: "Karin Sjöberg, biståndshandläggare and SIP-samordnare at Solna stad (SE2120001314-3002)",
        given_name: "Karin",
        family_name: "Sjöberg",
        patient: None,
        claims: &[
            ("urn:oid:1.2.752.29.6.2.1", "SE2120001314-3002"),
            (
                "http://sambi.se/attributes/1/healthCareUnitHsaId",
                "SE2120001314-BI01",
            ),
            (
                "http://sambi.se/attributes/1/healthCareUnitName",
                "Äldreomsorgens biståndsenhet Solna",
            ),
            (
                "http://sambi.se/attributes/1/healthCareProviderHsaId",
                "SE2120001314-0001",
            ),
            (
                "http://sambi.se/attributes/1/healthCareProviderName",
                "Solna stad",
            ),
        ],
        roles: &["bistandshandlaggare"],
    },
];

impl DemoPerson {
    /// `login_hint` may be the login, the `sub` or any identity claim value.
    fn find(realm: Realm, hint: &str) -> Option<&'static DemoPerson> {
        PEOPLE.iter().find(|p| {
            p.realm == realm
                && (p.login == hint || p.sub == hint || p.claims.iter().any(|(_, v)| *v == hint))
        })
    }

    fn claims(&self) -> Map<String, Value> {
        let mut claims: Map<String, Value> = self
            .claims
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        claims.insert("given_name".into(), json!(self.given_name));
        claims.insert("family_name".into(), json!(self.family_name));
        claims.insert(
            "name".into(),
            json!(format!("{} {}", self.given_name, self.family_name)),
        );
        if !self.roles.is_empty() {
            claims.insert("roles".into(), json!(self.roles));
        }
        claims
    }
}

/// A code waiting to be exchanged at the token endpoint.
struct PendingCode {
    realm: Realm,
    person: &'static DemoPerson,
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    scope: String,
    nonce: Option<String>,
    expires: Instant,
}

/// The demo OpenID provider of one running server.
#[derive(Clone)]
pub struct DemoIdp {
    inner: Arc<Inner>,
}

struct Inner {
    /// `http://<address>/demo-idp`; each issuer is this plus `/citizen` or `/staff`.
    root: String,
    fhir_base: String,
    signing_key: EncodingKey,
    jwks: Value,
    codes: Mutex<HashMap<String, PendingCode>>,
}

impl DemoIdp {
    /// The provider for a server listening on `address`. An unspecified address (`0.0.0.0`)
    /// is named as loopback, an address a browser on this machine can reach.
    pub fn new(address: SocketAddr) -> Result<DemoIdp, ServerError> {
        let mut address = address;
        if address.ip().is_unspecified() {
            address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let demo_key = |e: &dyn std::fmt::Display| ServerError::Demo(format!("demo key: {e}"));
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(DEMO_KEY_PEM).map_err(|e| demo_key(&e))?;
        let signing_key =
            EncodingKey::from_rsa_pem(DEMO_KEY_PEM.as_bytes()).map_err(|e| demo_key(&e))?;
        let jwks = json!({"keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": KID,
            "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
        }]});
        Ok(DemoIdp {
            inner: Arc::new(Inner {
                root: format!("http://{address}/demo-idp"),
                fhir_base: format!("http://{address}/fhir"),
                signing_key,
                jwks,
                codes: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// `http://<address>/demo-idp`.
    pub fn root(&self) -> &str {
        &self.inner.root
    }

    /// The issuers the demo server trusts: citizen logins, staff of the demo region and
    /// staff of the demo municipality.
    pub fn trusted_issuers(&self) -> Vec<TrustedIssuer> {
        vec![
            TrustedIssuer::new(
                self.inner.issuer(Realm::Citizen),
                &self.inner.fhir_base,
                IssuerKind::Citizen,
            ),
            TrustedIssuer::new(
                self.inner.issuer(Realm::Staff),
                &self.inner.fhir_base,
                IssuerKind::Staff,
            )
            .with_huvudman("Organization/demo-region"),
            TrustedIssuer::new(
                self.inner.issuer(Realm::Kommun),
                &self.inner.fhir_base,
                IssuerKind::Staff,
            )
            .with_huvudman("Organization/demo-kommun"),
        ]
    }

    /// The portal of `paraply demo` logs citizens in here.
    pub fn portal_settings(&self) -> paraply_portal::PortalSettings {
        paraply_portal::PortalSettings {
            issuer: self.inner.issuer(Realm::Citizen),
            client_id: "paraply-portal".to_owned(),
            client_secret: None,
            public_url: self.inner.fhir_base.trim_end_matches("/fhir").to_owned(),
            scopes: "openid patient/*.cruds".to_owned(),
            session_lifetime_minutes: 60,
            accessibility_contact: None,
        }
    }

    /// The routes under `/demo-idp/{citizen|staff|kommun}/`.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/demo-idp/{realm}/.well-known/openid-configuration",
                get(discovery),
            )
            .route("/demo-idp/{realm}/jwks", get(jwks))
            .route("/demo-idp/{realm}/authorize", get(authorize))
            .route("/demo-idp/{realm}/token", post(token))
            .with_state(self.inner.clone())
    }
}

impl Inner {
    fn issuer(&self, realm: Realm) -> String {
        format!("{}/{}", self.root, realm.name())
    }

    fn sign(&self, typ: &str, claims: &Map<String, Value>) -> Result<String, String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KID.to_owned());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &self.signing_key).map_err(|e| e.to_string())
    }
}

fn no_such_issuer() -> Response {
    (
        StatusCode::NOT_FOUND,
        "the demo login service has the issuers 'citizen', 'staff' and 'kommun'",
    )
        .into_response()
}

async fn discovery(State(idp): State<Arc<Inner>>, Path(realm): Path<String>) -> Response {
    let Some(realm) = Realm::parse(&realm) else {
        return no_such_issuer();
    };
    let issuer = idp.issuer(realm);
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "profile", "launch/patient", "patient/*.rs", "user/*.rs", "user/*.cruds"],
    }))
    .into_response()
}

async fn jwks(State(idp): State<Arc<Inner>>, Path(realm): Path<String>) -> Response {
    match Realm::parse(&realm) {
        Some(_) => Json(idp.jwks.clone()).into_response(),
        None => no_such_issuer(),
    }
}

#[derive(Deserialize)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    login_hint: Option<String>,
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("demo login: {message}")).into_response()
}

async fn authorize(
    State(idp): State<Arc<Inner>>,
    Path(realm): Path<String>,
    Query(params): Query<AuthorizeParams>,
    Query(raw): Query<Vec<(String, String)>>,
) -> Response {
    let Some(realm) = Realm::parse(&realm) else {
        return no_such_issuer();
    };
    let Some(redirect_uri) = params
        .redirect_uri
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
    else {
        return bad_request("redirect_uri must be an absolute http(s) URL");
    };
    if params.response_type.as_deref() != Some("code") {
        return bad_request("only response_type=code is supported");
    }
    let Some(client_id) = params.client_id.filter(|c| !c.is_empty()) else {
        return bad_request("client_id is required");
    };
    let Some(code_challenge) = params.code_challenge.filter(|c| !c.is_empty()) else {
        return bad_request("PKCE is required: send code_challenge and code_challenge_method=S256");
    };
    if params.code_challenge_method.as_deref() != Some("S256") {
        return bad_request("code_challenge_method must be S256");
    }
    let issuer = idp.issuer(realm);
    let mut back = redirect_uri.clone();
    let Some(hint) = params.login_hint.filter(|h| !h.is_empty()) else {
        return pick_a_person(realm, &raw);
    };
    let Some(person) = DemoPerson::find(realm, &hint) else {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", "no such demo person")
            .append_pair("iss", &issuer);
        if let Some(state) = &params.state {
            back.query_pairs_mut().append_pair("state", state);
        }
        return Redirect::to(back.as_str()).into_response();
    };
    let code = uuid::Uuid::new_v4().simple().to_string();
    {
        let mut codes = idp.codes.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        codes.retain(|_, pending| pending.expires > now);
        codes.insert(
            code.clone(),
            PendingCode {
                realm,
                person,
                client_id,
                redirect_uri: redirect_uri.to_string(),
                code_challenge,
                scope: params.scope.unwrap_or_default(),
                nonce: params.nonce,
                expires: now + CODE_LIFETIME,
            },
        );
    }
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("iss", &issuer);
    if let Some(state) = &params.state {
        back.query_pairs_mut().append_pair("state", state);
    }
    Redirect::to(back.as_str()).into_response()
}

/// The login page: one link per demo person, each repeating the request with a `login_hint`.
fn pick_a_person(realm: Realm, raw: &[(String, String)]) -> Response {
    let mut items = String::new();
    for person in PEOPLE.iter().filter(|p| p.realm == realm) {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(raw.iter().filter(|(k, _)| k != "login_hint"))
            .append_pair("login_hint", person.login)
            .finish();
        items.push_str(&format!(
            "<li><a href=\"authorize?{}\">{}</a></li>\n",
            escape_html(&query),
            escape_html(person.description)
        ));
    }
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Paraply demo login</title></head>\n\
         <body><h1>Paraply demo login ({})</h1>\n\
         <p><strong>DEMO ONLY.</strong> Anyone can log in as these demo people; never use this with real data.</p>\n\
         <ul>\n{items}</ul></body></html>\n",
        realm.name()
    ))
    .into_response()
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
}

/// Token endpoint errors use the OAuth 2.0 shape (RFC 6749 §5.2), which OAuth clients
/// expect here, not an OperationOutcome: this is not a FHIR endpoint.
fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The client id of HTTP Basic client authentication, if any. The demo checks no secrets.
fn basic_client_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, _secret) = decoded.split_once(':')?;
    Some(id.to_owned())
}

async fn token(
    State(idp): State<Arc<Inner>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let Some(realm) = Realm::parse(&realm) else {
        return no_such_issuer();
    };
    if form.grant_type.as_deref() != Some("authorization_code") {
        return oauth_error(
            "unsupported_grant_type",
            "the demo login service supports authorization_code only",
        );
    }
    let pending = form.code.as_deref().and_then(|code| {
        idp.codes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(code) // a code is good for one exchange only
    });
    let Some(pending) = pending.filter(|p| p.expires > Instant::now() && p.realm == realm) else {
        return oauth_error("invalid_grant", "unknown, used or expired code");
    };
    let client_id = form.client_id.or_else(|| basic_client_id(&headers));
    if client_id
        .as_deref()
        .is_some_and(|id| id != pending.client_id)
    {
        return oauth_error("invalid_grant", "the code was issued to another client");
    }
    if form.redirect_uri.as_deref() != Some(pending.redirect_uri.as_str()) {
        return oauth_error(
            "invalid_grant",
            "redirect_uri differs from the authorization request",
        );
    }
    let Some(verifier) = form.code_verifier else {
        return oauth_error("invalid_request", "code_verifier is required (PKCE)");
    };
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != pending.code_challenge {
        return oauth_error(
            "invalid_grant",
            "code_verifier does not match the code_challenge",
        );
    }
    match issue_tokens(&idp, &pending) {
        Ok(body) => ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response(),
        Err(reason) => {
            tracing::error!(%reason, "demo login: cannot sign a token");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "server_error"})),
            )
                .into_response()
        }
    }
}

fn issue_tokens(idp: &Inner, pending: &PendingCode) -> Result<Value, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let issuer = idp.issuer(pending.realm);
    let person = pending.person;
    // Only SMART scopes reach the access token, as with the issuers in tests/idp.
    let scope: Vec<&str> = pending
        .scope
        .split_ascii_whitespace()
        .filter(|s| s.parse::<SmartScope>().is_ok() || s.starts_with("launch"))
        .collect();
    let scope = scope.join(" ");

    let mut access = person.claims();
    for (name, value) in [
        ("iss", json!(issuer)),
        ("aud", json!(idp.fhir_base)),
        ("sub", json!(person.sub)),
        ("client_id", json!(pending.client_id)),
        ("iat", json!(now)),
        ("exp", json!(now + TOKEN_LIFETIME.as_secs())),
        ("jti", json!(uuid::Uuid::new_v4().to_string())),
        ("scope", json!(scope)),
    ] {
        access.insert(name.into(), value);
    }
    let mut id = person.claims();
    for (name, value) in [
        ("iss", json!(issuer)),
        ("aud", json!(pending.client_id)),
        ("sub", json!(person.sub)),
        ("iat", json!(now)),
        ("exp", json!(now + TOKEN_LIFETIME.as_secs())),
    ] {
        id.insert(name.into(), value);
    }
    if let Some(nonce) = &pending.nonce {
        id.insert("nonce".into(), json!(nonce));
    }
    let mut body = json!({
        "access_token": idp.sign("at+jwt", &access)?,
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME.as_secs(),
        "scope": scope,
        "id_token": idp.sign("JWT", &id)?,
    });
    if let (Some(patient), Some(map)) = (person.patient, body.as_object_mut()) {
        map.insert("patient".into(), json!(patient));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_key_loads_and_people_are_found_by_any_identifier() {
        let idp = DemoIdp::new("0.0.0.0:8080".parse().unwrap()).unwrap();
        assert_eq!(idp.root(), "http://127.0.0.1:8080/demo-idp");
        assert_eq!(
            idp.trusted_issuers()[1].issuer,
            "http://127.0.0.1:8080/demo-idp/staff"
        );
        assert_eq!(
            DemoPerson::find(Realm::Citizen, "191212121212").map(|p| p.login),
            Some("tolvan")
        );
        assert_eq!(
            DemoPerson::find(Realm::Staff, "SE2321000016-1003").map(|p| p.login),
            Some("anna")
        );
        assert!(DemoPerson::find(Realm::Staff, "tolvan").is_none());
        assert_eq!(
            idp.trusted_issuers()[2].huvudman.as_deref(),
            Some("Organization/demo-kommun")
        );
        assert_eq!(
            DemoPerson::find(Realm::Kommun, "SE2120001314-3002").map(|p| p.login),
            Some("karin")
        );
        assert!(DemoPerson::find(Realm::Staff, "karin").is_none());
    }

    #[test]
    fn html_escaping() {
        assert_eq!(escape_html("a&b<\"c\">"), "a&amp;b&lt;&quot;c&quot;&gt;");
    }
}
