//! The OpenID Connect side: discovery (cached), the authorization request, and the code
//! exchange with ID-token verification.

use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreGenderClaim, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalClaims, AdditionalProviderMetadata, AuthorizationCode, CsrfToken, EndSessionUrl,
    IdToken, LoginHint, LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, ProviderMetadata, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::error::PortalError;
use crate::settings::Config;

/// Discovery (and with it the JWKS) is fetched again after this long, so a rotated signing
/// key is picked up without a restart.
const DISCOVERY_TTL: Duration = Duration::from_secs(15 * 60);

/// Provider metadata the core type leaves out.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct ExtraMetadata {
    /// RP-Initiated Logout 1.0.
    end_session_endpoint: Option<EndSessionUrl>,
    /// RFC 9207: the provider promises `iss` on every authorization response.
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The Swedish claims: citizen eID (Swedish OIDC claims specification) and staff (HSA).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct SwedishClaims {
    #[serde(rename = "https://id.oidc.se/claim/personalIdentityNumber")]
    personnummer: Option<String>,
    #[serde(rename = "urn:oid:1.2.752.29.6.2.1")]
    hsa_id: Option<String>,
    #[serde(rename = "http://sambi.se/attributes/1/healthCareUnitHsaId")]
    unit_hsa_id: Option<String>,
    #[serde(rename = "http://sambi.se/attributes/1/healthCareProviderHsaId")]
    care_provider_hsa_id: Option<String>,
}

impl AdditionalClaims for SwedishClaims {}

type PortalIdToken = IdToken<
    SwedishClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// What the portal keeps of the ID token's claims (stored with the session as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personnummer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hsa_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_hsa_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub care_provider_hsa_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
}

/// An authorization request to send the browser to.
pub(crate) struct Authorization {
    pub(crate) url: url::Url,
    pub(crate) state: String,
    pub(crate) nonce: String,
    pub(crate) pkce_verifier: String,
}

/// A verified login.
pub(crate) struct Login {
    pub(crate) subject: String,
    pub(crate) claims: UserClaims,
    pub(crate) access_token: String,
    pub(crate) access_token_expires: Option<OffsetDateTime>,
    pub(crate) id_token: String,
}

/// The relying party: settings plus the provider's metadata, discovered on first use.
pub(crate) struct RelyingParty {
    config: Config,
    http: reqwest::Client,
    discovered: Mutex<Option<(Instant, Metadata)>>,
}

impl RelyingParty {
    pub(crate) fn new(config: Config, http: reqwest::Client) -> Self {
        RelyingParty {
            config,
            http,
            discovered: Mutex::new(None),
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The provider's metadata; discovery runs at the first login (the server starts even when
    /// the provider is down) and again after [`DISCOVERY_TTL`].
    async fn metadata(&self) -> Result<Metadata, PortalError> {
        let mut cached = self.discovered.lock().await;
        if let Some((at, metadata)) = cached.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(metadata.clone());
        }
        let metadata = Metadata::discover_async(self.config.issuer.clone(), &self.http)
            .await
            .map_err(|e| PortalError::Provider(format!("discovery failed: {e}")))?;
        *cached = Some((Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    fn client(
        &self,
        metadata: Metadata,
    ) -> CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            metadata,
            self.config.client_id.clone(),
            self.config.client_secret.clone(),
        )
        .set_redirect_uri(self.config.redirect.clone())
    }

    /// An authorization-code request with PKCE (S256), a fresh `state` and `nonce`.
    pub(crate) async fn authorize(
        &self,
        login_hint: Option<&str>,
    ) -> Result<Authorization, PortalError> {
        let client = self.client(self.metadata().await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                || CsrfToken::new_random_len(32),
                || Nonce::new_random_len(32),
            )
            .set_pkce_challenge(challenge)
            .add_scopes(self.config.scopes.iter().cloned().map(Scope::new));
        if let Some(hint) = login_hint {
            request = request.set_login_hint(LoginHint::new(hint.to_owned()));
        }
        let (url, state, nonce) = request.url();
        Ok(Authorization {
            url,
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// RFC 9207: the `iss` of the authorization response must name our provider; it is
    /// required when the provider says it always sends it. This stops a mix-up where another
    /// provider's code is replayed here.
    pub(crate) async fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), PortalError> {
        let metadata = self.metadata().await?;
        match iss {
            Some(iss) if iss != metadata.issuer().as_str() => Err(PortalError::LoginFailed(
                "the login answer came from another identity provider".into(),
            )),
            None if metadata
                .additional_metadata()
                .authorization_response_iss_parameter_supported =>
            {
                Err(PortalError::LoginFailed(
                    "the login answer does not name its identity provider (iss)".into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Exchanges the code (with the PKCE verifier) and verifies the ID token: signature,
    /// issuer, audience, expiry and nonce.
    pub(crate) async fn finish(
        &self,
        code: String,
        pkce_verifier: String,
        nonce: String,
    ) -> Result<Login, PortalError> {
        let client = self.client(self.metadata().await?);
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| PortalError::Provider(format!("no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| PortalError::LoginFailed(format!("the code exchange failed: {e}")))?;
        let raw_id_token = tokens
            .id_token()
            .ok_or_else(|| PortalError::LoginFailed("the provider sent no ID token".into()))?
            .to_string();
        // Parsed again with the Swedish claims: the core token type drops them.
        let id_token: PortalIdToken = raw_id_token
            .parse()
            .map_err(|_| PortalError::LoginFailed("the ID token is malformed".into()))?;
        let verified = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(nonce))
            .map_err(|e| PortalError::LoginFailed(format!("the ID token is invalid: {e}")))?;
        let extra = verified.additional_claims();
        let claims = UserClaims {
            personnummer: extra.personnummer.clone(),
            hsa_id: extra.hsa_id.clone(),
            unit_hsa_id: extra.unit_hsa_id.clone(),
            care_provider_hsa_id: extra.care_provider_hsa_id.clone(),
            name: verified
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.to_string()),
            given_name: verified
                .given_name()
                .and_then(|n| n.get(None))
                .map(|n| n.to_string()),
            family_name: verified
                .family_name()
                .and_then(|n| n.get(None))
                .map(|n| n.to_string()),
        };
        let access_token_expires = tokens.expires_in().map(|lifetime| {
            OffsetDateTime::now_utc() + time::Duration::seconds(lifetime.as_secs() as i64)
        });
        Ok(Login {
            subject: verified.subject().to_string(),
            claims,
            access_token: tokens.access_token().secret().clone(),
            access_token_expires,
            id_token: raw_id_token,
        })
    }

    /// Where to send the browser after the local logout: the provider's end-session endpoint
    /// (with the ID token as hint) if it has one.
    pub(crate) async fn logout_url(&self, id_token: &str) -> Option<String> {
        let metadata = self.metadata().await.ok()?;
        let endpoint = metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let mut request =
            LogoutRequest::from(endpoint).set_client_id(self.config.client_id.clone());
        if let Ok(token) = id_token.parse::<PortalIdToken>() {
            request = request.set_id_token_hint(&token);
        }
        Some(request.http_get_url().to_string())
    }
}
