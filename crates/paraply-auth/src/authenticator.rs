//! Access-token validation against the trusted issuers' discovery documents and JWKS.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use crate::config::{AuthenticatorOptions, IssuerKind, TrustedIssuer};
use crate::error::AuthError;
use crate::principal::{Personnummer, Principal};
use crate::scopes::Scopes;

/// Discovery documents and JWKS are small; anything bigger is refused.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Validates bearer access tokens from the trusted issuers and turns them into [`Principal`]s.
///
/// Cheap to share behind an `Arc`; every issuer's discovery document and keys are fetched on
/// first use and cached for the process's lifetime, refreshed only when a token names an
/// unknown `kid` (at most once per [`AuthenticatorOptions::min_jwks_refetch_interval`]).
pub struct Authenticator {
    issuers: HashMap<String, IssuerEntry>,
    /// Issuer identifiers in configuration order (the SMART configuration names the first
    /// citizen issuer).
    order: Vec<String>,
    http: reqwest::Client,
    options: AuthenticatorOptions,
    /// Tokens whose signature and claims were verified, until they expire: a signature check
    /// (RSA in particular) costs more than the rest of a read, and a client sends the same
    /// token with every request.
    verified: std::sync::Mutex<HashMap<String, Verified>>,
}

/// A verified token's principal, validity window (seconds since the epoch), and the key
/// that verified it: when the issuer stops publishing that key, the token is checked again.
struct Verified {
    principal: Principal,
    issuer: String,
    key: Arc<VerificationKey>,
    not_before: Option<i64>,
    expires: i64,
}

/// At most this many verified tokens are remembered; past it, expired ones are dropped,
/// and if that is not enough, all (they are only a cache).
const MAX_VERIFIED_TOKENS: usize = 50_000;

struct IssuerEntry {
    config: TrustedIssuer,
    cache: RwLock<KeyCache>,
}

#[derive(Default)]
struct KeyCache {
    /// From the discovery document; `None` until discovery succeeded once.
    jwks_uri: Option<String>,
    keys: Vec<Arc<VerificationKey>>,
    /// When discovery/JWKS was last attempted, successful or not (the rate limit).
    last_fetch: Option<Instant>,
}

struct VerificationKey {
    kid: Option<String>,
    /// The JWK's `alg` if it names one; otherwise any allowed algorithm of its key type.
    alg: Option<Algorithm>,
    kind: KeyKind,
    key: DecodingKey,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
}

impl VerificationKey {
    fn fits(&self, alg: Algorithm) -> bool {
        let kind_fits = match alg {
            Algorithm::RS256 | Algorithm::PS256 => self.kind == KeyKind::Rsa,
            Algorithm::ES256 => self.kind == KeyKind::EcP256,
            _ => false,
        };
        kind_fits && self.alg.is_none_or(|a| a == alg)
    }
}

impl KeyCache {
    /// The key for `kid`; without a `kid`, the only key that fits `alg`.
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<VerificationKey>> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .cloned(),
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Some(Arc::clone(only)),
                    _ => None,
                }
            }
        }
    }
}

/// The JOSE header fields we look at before trusting anything.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// The OAuth endpoints an issuer publishes in its discovery document, for clients (SMART
/// configuration, CapabilityStatement).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IssuerEndpoints {
    /// The issuer identifier.
    pub issuer: String,
    /// Where a client sends the user to log in.
    pub authorization_endpoint: String,
    /// Where a client exchanges a code (or its credentials) for tokens.
    pub token_endpoint: String,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Authenticator {
    /// An authenticator with the default [`AuthenticatorOptions`].
    ///
    /// `http` should not follow redirects (`reqwest::redirect::Policy::none()`): the issuer's
    /// documents are fetched from the exact URLs it publishes.
    pub fn new(issuers: Vec<TrustedIssuer>, http: reqwest::Client) -> Result<Self, AuthError> {
        Self::with_options(issuers, http, AuthenticatorOptions::default())
    }

    /// An authenticator with explicit options (tests shorten the refetch interval).
    pub fn with_options(
        issuers: Vec<TrustedIssuer>,
        http: reqwest::Client,
        options: AuthenticatorOptions,
    ) -> Result<Self, AuthError> {
        let mut map = HashMap::with_capacity(issuers.len());
        let mut order = Vec::with_capacity(issuers.len());
        for config in issuers {
            let url = reqwest::Url::parse(&config.issuer).map_err(|_| {
                AuthError::Config(format!("issuer '{}' is not a URL", config.issuer))
            })?;
            if !matches!(url.scheme(), "https" | "http") {
                return Err(AuthError::Config(format!(
                    "issuer '{}' is not an http(s) URL",
                    config.issuer
                )));
            }
            if config.audience.is_empty() {
                return Err(AuthError::Config(format!(
                    "issuer '{}' has an empty audience",
                    config.issuer
                )));
            }
            let key = config.issuer.clone();
            order.push(key.clone());
            let entry = IssuerEntry {
                config,
                cache: RwLock::new(KeyCache::default()),
            };
            if map.insert(key.clone(), entry).is_some() {
                return Err(AuthError::Config(format!(
                    "issuer '{key}' is configured twice"
                )));
            }
        }
        Ok(Authenticator {
            issuers: map,
            order,
            http,
            options,
            verified: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Validates a bearer access token (the text after `Bearer `) and says who it speaks for.
    pub async fn authenticate(&self, bearer_token: &str) -> Result<Principal, AuthError> {
        let token = bearer_token.trim();
        if let Some(principal) = self.remembered(token).await {
            return Ok(principal);
        }
        let verified = self.verify(token).await?;
        let principal = verified.principal.clone();
        self.remember(token, verified);
        Ok(principal)
    }

    /// A token verified before, still inside its validity window (with the leeway), whose
    /// key the issuer still publishes.
    async fn remembered(&self, token: &str) -> Option<Principal> {
        let now = unix_now();
        let leeway = i64::try_from(self.options.leeway.as_secs()).unwrap_or(i64::MAX);
        let (principal, issuer, key) = {
            let verified = self.verified.lock().ok()?;
            let entry = verified.get(token)?;
            let valid = now <= entry.expires.saturating_add(leeway)
                && entry
                    .not_before
                    .is_none_or(|nbf| now.saturating_add(leeway) >= nbf);
            if !valid {
                return None;
            }
            (
                entry.principal.clone(),
                entry.issuer.clone(),
                entry.key.clone(),
            )
        };
        let published = self
            .issuers
            .get(&issuer)?
            .cache
            .read()
            .await
            .keys
            .iter()
            .any(|current| Arc::ptr_eq(current, &key));
        published.then_some(principal)
    }

    fn remember(&self, token: &str, entry: Verified) {
        let Ok(mut verified) = self.verified.lock() else {
            return;
        };
        if verified.len() >= MAX_VERIFIED_TOKENS {
            let now = unix_now();
            verified.retain(|_, entry| entry.expires >= now);
            if verified.len() >= MAX_VERIFIED_TOKENS {
                verified.clear();
            }
        }
        verified.insert(token.to_owned(), entry);
    }

    /// Full validation: issuer, key, signature and claims.
    async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let (header, payload) = split_unverified(token)?;

        // Only asymmetric algorithms, named by the header and checked against the key below.
        // `none` and HS* never get near a key (no "HS256 signed with the public key").
        let alg = match header.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "PS256" => Algorithm::PS256,
            "ES256" => Algorithm::ES256,
            _ => return Err(AuthError::DisallowedAlgorithm),
        };
        if header.crit.is_some() {
            // RFC 7515 §4.1.11: extensions we do not understand make the token invalid.
            return Err(AuthError::Malformed);
        }
        check_type(header.typ.as_deref())?;

        let iss = match payload.get("iss") {
            Some(Value::String(iss)) => iss,
            Some(_) => {
                return Err(AuthError::InvalidClaim {
                    name: "iss".to_owned(),
                });
            }
            None => {
                return Err(AuthError::MissingClaim {
                    name: "iss".to_owned(),
                });
            }
        };
        let issuer = self.issuers.get(iss).ok_or(AuthError::UntrustedIssuer)?;

        let key = self.key_for(issuer, header.kid.as_deref(), alg).await?;
        if !key.fits(alg) {
            return Err(AuthError::DisallowedAlgorithm);
        }

        let mut validation = Validation::new(alg);
        validation.leeway = self.options.leeway.as_secs();
        validation.set_audience(&[&issuer.config.audience]);
        validation.set_issuer(&[&issuer.config.issuer]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| map_jwt_error(e.kind()))?
            .claims;
        // NumericDate may carry a fraction (RFC 7519 §2); whole seconds are enough here.
        let seconds = |name: &str| {
            claims
                .get(name)
                .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        };
        let expires = seconds("exp").ok_or_else(|| AuthError::InvalidClaim {
            name: "exp".to_owned(),
        })?;
        let not_before = seconds("nbf");
        Ok(Verified {
            principal: principal(&issuer.config, &claims)?,
            issuer: issuer.config.issuer.clone(),
            key,
            not_before,
            expires,
        })
    }

    /// The trusted issuers, in configuration order.
    pub fn issuers(&self) -> impl Iterator<Item = &TrustedIssuer> {
        self.order
            .iter()
            .filter_map(|issuer| self.issuers.get(issuer).map(|entry| &entry.config))
    }

    /// Fetches `issuer`'s discovery document and returns its OAuth endpoints. Not cached here:
    /// callers publish them and keep the answer.
    pub async fn endpoints(&self, issuer: &str) -> Result<IssuerEndpoints, AuthError> {
        let entry = self.issuers.get(issuer).ok_or(AuthError::UntrustedIssuer)?;
        let url = format!(
            "{}/.well-known/openid-configuration",
            entry.config.issuer.trim_end_matches('/')
        );
        let endpoints: IssuerEndpoints = self.fetch_json(&url, "discovery document").await?;
        if endpoints.issuer != entry.config.issuer {
            return Err(AuthError::Discovery(
                "the discovery document names a different issuer".to_owned(),
            ));
        }
        Ok(endpoints)
    }

    async fn key_for(
        &self,
        issuer: &IssuerEntry,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerificationKey>, AuthError> {
        if let Some(key) = issuer.cache.read().await.find(kid, alg) {
            return Ok(key);
        }
        // Holding the write lock while fetching makes concurrent misses wait for one fetch.
        let mut cache = issuer.cache.write().await;
        if let Some(key) = cache.find(kid, alg) {
            return Ok(key); // another task refetched meanwhile
        }
        if let Some(last) = cache.last_fetch
            && last.elapsed() < self.options.min_jwks_refetch_interval
        {
            return Err(if cache.jwks_uri.is_some() {
                AuthError::UnknownKey
            } else {
                AuthError::Discovery(
                    "the issuer's discovery document was unavailable recently".to_owned(),
                )
            });
        }
        cache.last_fetch = Some(Instant::now());
        self.refresh(&issuer.config, &mut cache).await?;
        cache.find(kid, alg).ok_or(AuthError::UnknownKey)
    }

    async fn refresh(&self, config: &TrustedIssuer, cache: &mut KeyCache) -> Result<(), AuthError> {
        let jwks_uri = match &cache.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    config.issuer.trim_end_matches('/')
                );
                let discovery: Discovery = self.fetch_json(&url, "discovery document").await?;
                if discovery.issuer != config.issuer {
                    return Err(AuthError::Discovery(
                        "the discovery document names a different issuer".to_owned(),
                    ));
                }
                discovery.jwks_uri
            }
        };
        let set: JwkSet = self.fetch_json(&jwks_uri, "JWKS").await?;
        cache.keys = set
            .keys
            .iter()
            .filter_map(verification_key)
            .map(Arc::new)
            .collect();
        cache.jwks_uri = Some(jwks_uri);
        tracing::info!(issuer = %config.issuer, keys = cache.keys.len(), "fetched issuer signing keys");
        Ok(())
    }

    async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, AuthError> {
        let unavailable =
            |detail: &str| AuthError::Discovery(format!("the issuer's {what} {detail}"));
        let response = self
            .http
            .get(url)
            .timeout(self.options.fetch_timeout)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(%url, error = %e, "fetching issuer document failed");
                unavailable("could not be fetched")
            })?;
        if !response.status().is_success() {
            tracing::warn!(%url, status = %response.status(), "issuer document request failed");
            return Err(unavailable("could not be fetched"));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(unavailable("is too large"));
        }
        let body = response
            .bytes()
            .await
            .map_err(|_| unavailable("could not be read"))?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(unavailable("is too large"));
        }
        serde_json::from_slice(&body).map_err(|_| unavailable("is not valid"))
    }
}

/// Decodes header and payload without verifying anything: only to choose issuer and key.
fn split_unverified(token: &str) -> Result<(RawHeader, Map<String, Value>), AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed); // also JWE (five parts) and opaque tokens
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| AuthError::Malformed)
    };
    let header: RawHeader =
        serde_json::from_slice(&decode(header)?).map_err(|_| AuthError::Malformed)?;
    let payload: Map<String, Value> =
        serde_json::from_slice(&decode(payload)?).map_err(|_| AuthError::Malformed)?;
    Ok((header, payload))
}

/// RFC 9068 access tokens carry `typ: at+jwt`. Many issuers still write `JWT` (or nothing) on
/// access tokens, so those pass too; every other type (`logout+jwt`, `dpop+jwt`, `id+jwt`…) is a
/// token meant for something else. ID tokens usually say `JWT` or nothing: they are refused by
/// the audience check instead (their `aud` is the client, not this server).
fn check_type(typ: Option<&str>) -> Result<(), AuthError> {
    let Some(typ) = typ else { return Ok(()) };
    let lower = typ.to_ascii_lowercase();
    let media = lower.strip_prefix("application/").unwrap_or(&lower);
    match media {
        "at+jwt" | "jwt" => Ok(()),
        _ => Err(AuthError::WrongTokenType),
    }
}

/// Keeps only signature keys Paraply can use (RSA, EC P-256); symmetric keys never.
fn verification_key(jwk: &jsonwebtoken::jwk::Jwk) -> Option<VerificationKey> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let alg = match &jwk.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
        Some(KeyAlgorithm::PS256) => Some(Algorithm::PS256),
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(_) => return None,
    };
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => KeyKind::EcP256,
        _ => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerificationKey {
        kid: jwk.common.key_id.clone(),
        alg,
        kind,
        key,
    })
}

fn map_jwt_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
            AuthError::DisallowedAlgorithm
        }
        ErrorKind::MissingRequiredClaim(name) => AuthError::MissingClaim { name: name.clone() },
        ErrorKind::InvalidClaimFormat(name) => AuthError::InvalidClaim { name: name.clone() },
        // A key from the JWKS that the crypto backend cannot use: nothing verified the token.
        ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidKeyFormat => {
            AuthError::BadSignature
        }
        _ => AuthError::Malformed,
    }
}

/// Builds the principal from verified claims. A token without the issuer's person claim whose
/// `sub` is its own `client_id` is a client-credentials token: a [`Principal::System`].
fn principal(config: &TrustedIssuer, claims: &Map<String, Value>) -> Result<Principal, AuthError> {
    let issuer = config.issuer.clone();
    let scopes = scopes(claims)?;
    let names = &config.claims;
    let person_claim = match config.kind {
        IssuerKind::Citizen => &names.personnummer,
        IssuerKind::Staff => &names.hsa_id,
    };
    if !claims.contains_key(person_claim) {
        let client_id = optional_string(claims, "client_id")?;
        let sub = optional_string(claims, "sub")?;
        if let (Some(client_id), Some(sub)) = (client_id, sub)
            && client_id == sub
        {
            return Ok(Principal::System {
                client_id: client_id.to_owned(),
                issuer,
                scopes,
            });
        }
        return Err(AuthError::MissingClaim {
            name: person_claim.clone(),
        });
    }
    match config.kind {
        IssuerKind::Citizen => {
            let text = required_string(claims, &names.personnummer)?;
            let personnummer =
                Personnummer::parse(text).ok_or_else(|| AuthError::InvalidClaim {
                    name: names.personnummer.clone(),
                })?;
            Ok(Principal::Citizen {
                personnummer,
                issuer,
                scopes,
            })
        }
        IssuerKind::Staff => Ok(Principal::Staff {
            hsa_id: required_string(claims, &names.hsa_id)?.to_owned(),
            unit_hsa_id: required_string(claims, &names.unit_hsa_id)?.to_owned(),
            care_provider_hsa_id: required_string(claims, &names.care_provider_hsa_id)?.to_owned(),
            roles: string_list(claims, &names.roles)?,
            huvudman: config.huvudman.clone(),
            issuer,
            scopes,
        }),
    }
}

fn scopes(claims: &Map<String, Value>) -> Result<Scopes, AuthError> {
    match claims.get("scope") {
        None => Ok(Scopes::default()),
        Some(Value::String(s)) => Ok(Scopes::parse(s)),
        // Some issuers send the scopes as an array.
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str())
            .collect::<Option<Scopes>>()
            .ok_or_else(|| AuthError::InvalidClaim {
                name: "scope".to_owned(),
            }),
        Some(_) => Err(AuthError::InvalidClaim {
            name: "scope".to_owned(),
        }),
    }
}

fn optional_string<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(_) => Err(AuthError::InvalidClaim {
            name: name.to_owned(),
        }),
    }
}

fn required_string<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<&'a str, AuthError> {
    optional_string(claims, name)?.ok_or_else(|| AuthError::MissingClaim {
        name: name.to_owned(),
    })
}

fn string_list(claims: &Map<String, Value>, name: &str) -> Result<Vec<String>, AuthError> {
    let invalid = || AuthError::InvalidClaim {
        name: name.to_owned(),
    };
    match claims.get(name) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split_ascii_whitespace().map(str::to_owned).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(invalid))
            .collect(),
        Some(_) => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_types_pass_and_others_do_not() {
        for ok in [
            None,
            Some("at+jwt"),
            Some("application/at+jwt"),
            Some("AT+JWT"),
            Some("JWT"),
        ] {
            assert_eq!(check_type(ok), Ok(()), "{ok:?}");
        }
        for bad in ["logout+jwt", "dpop+jwt", "id+jwt", "secevent+jwt", ""] {
            assert_eq!(
                check_type(Some(bad)),
                Err(AuthError::WrongTokenType),
                "{bad}"
            );
        }
    }

    #[test]
    fn non_jws_shapes_are_malformed() {
        for bad in ["", "abc", "a.b", "a.b.c.d.e", "!!.!!.x", "e30.!!.x"] {
            assert!(
                matches!(split_unverified(bad), Err(AuthError::Malformed)),
                "{bad}"
            );
        }
    }

    #[test]
    fn principal_rules() {
        let staff = TrustedIssuer::new("http://idp", "aud", IssuerKind::Staff)
            .with_huvudman("Organization/r");
        let claims = |v: Value| v.as_object().cloned().unwrap();
        let c = claims(serde_json::json!({
            "urn:oid:1.2.752.29.6.2.1": "SE1", "http://sambi.se/attributes/1/healthCareUnitHsaId": "U",
            "http://sambi.se/attributes/1/healthCareProviderHsaId": "P", "roles": ["lakare"],
            "scope": "user/CarePlan.rs"
        }));
        assert!(
            matches!(principal(&staff, &c), Ok(Principal::Staff { ref roles, .. }) if roles == &["lakare"])
        );
        let c = claims(serde_json::json!({"urn:oid:1.2.752.29.6.2.1": "SE1", "roles": ["lakare"]}));
        assert_eq!(
            principal(&staff, &c),
            Err(AuthError::MissingClaim {
                name: "http://sambi.se/attributes/1/healthCareUnitHsaId".into()
            })
        );
        // A user token lacking the person claim is not mistaken for a system token.
        let c = claims(serde_json::json!({"sub": "someone", "client_id": "portal"}));
        assert_eq!(
            principal(&staff, &c),
            Err(AuthError::MissingClaim {
                name: "urn:oid:1.2.752.29.6.2.1".into()
            })
        );
        let citizen = TrustedIssuer::new("http://idp", "aud", IssuerKind::Citizen);
        let c = claims(
            serde_json::json!({"https://id.oidc.se/claim/personalIdentityNumber": "197001011234"}),
        );
        assert_eq!(
            principal(&citizen, &c),
            Err(AuthError::InvalidClaim {
                name: "https://id.oidc.se/claim/personalIdentityNumber".into()
            })
        );
        let c = claims(
            serde_json::json!({"https://id.oidc.se/claim/personalIdentityNumber": 191212121212u64}),
        );
        assert!(matches!(
            principal(&citizen, &c),
            Err(AuthError::InvalidClaim { .. })
        ));
        let c = claims(
            serde_json::json!({"sub": "svc", "client_id": "svc", "scope": ["system/*.rs", 1]}),
        );
        assert_eq!(
            principal(&citizen, &c),
            Err(AuthError::InvalidClaim {
                name: "scope".into()
            })
        );
    }

    #[test]
    fn configuration_mistakes_are_refused() {
        let http = reqwest::Client::new();
        let a = TrustedIssuer::new("http://idp", "aud", IssuerKind::Citizen);
        assert!(matches!(
            Authenticator::new(vec![a.clone(), a.clone()], http.clone()),
            Err(AuthError::Config(_))
        ));
        let no_url = TrustedIssuer::new("idp.example.se", "aud", IssuerKind::Citizen);
        assert!(matches!(
            Authenticator::new(vec![no_url], http.clone()),
            Err(AuthError::Config(_))
        ));
        let no_aud = TrustedIssuer::new("http://idp", "", IssuerKind::Citizen);
        assert!(matches!(
            Authenticator::new(vec![no_aud], http),
            Err(AuthError::Config(_))
        ));
    }
}
