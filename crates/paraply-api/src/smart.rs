//! The public discovery documents of a protected server: `/.well-known/smart-configuration`
//! (SMART App Launch v2) and the CapabilityStatement's `rest.security`.

use paraply_auth::{IssuerEndpoints, IssuerKind};
use paraply_core::Security;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::auth::EdgeAuth;

/// SMART scopes a client may ask for. Access rules decide what each principal really gets.
const SCOPES_SUPPORTED: &[&str] = &[
    "openid",
    "fhirUser",
    "launch/patient",
    "offline_access",
    "patient/*.rs",
    "patient/*.cruds",
    "user/*.rs",
    "user/*.cruds",
    "system/*.rs",
    "system/*.cruds",
    "patient/*.read",
    "user/*.read",
    "system/*.read",
];

/// How clients authenticate at the token endpoint: a backend-services client with a JWT it
/// signs with its own key (`private_key_jwt`, RS384 or ES384), others with a secret.
const TOKEN_ENDPOINT_AUTH_METHODS: &[&str] = &["private_key_jwt", "client_secret_basic"];
const TOKEN_ENDPOINT_AUTH_SIGNING_ALGS: &[&str] = &["RS384", "ES384"];

const CAPABILITIES: &[&str] = &[
    "launch-standalone",
    "context-standalone-patient",
    "client-public",
    "client-confidential-symmetric",
    // SMART Backend Services (bulk `$export`): a system client signs a JWT assertion.
    "client-confidential-asymmetric",
    "permission-v2",
    "permission-v1",
    "permission-patient",
    "permission-user",
];

/// The published issuer's endpoints, read from its discovery document once it answers.
#[derive(Default)]
pub(crate) struct PublishedIssuer {
    endpoints: OnceCell<IssuerEndpoints>,
}

impl PublishedIssuer {
    /// SMART configuration has room for one authorization server. Paraply trusts several
    /// (citizen eID, each region's and municipality's staff login), so it publishes the first
    /// citizen issuer — the one patients' apps log in with — and lists every trusted issuer
    /// under its own key, `paraply_trusted_issuers`, for clients that know to look.
    async fn endpoints(&self, auth: &EdgeAuth) -> Option<&IssuerEndpoints> {
        let EdgeAuth::Oidc(authenticator) = auth else {
            return None;
        };
        let published = authenticator
            .issuers()
            .find(|i| i.kind == IssuerKind::Citizen)
            .or_else(|| authenticator.issuers().next())?
            .issuer
            .clone();
        match self
            .endpoints
            .get_or_try_init(|| authenticator.endpoints(&published))
            .await
        {
            Ok(endpoints) => Some(endpoints),
            Err(error) => {
                tracing::warn!(issuer = %published, %error, "cannot read the published issuer's endpoints");
                None
            }
        }
    }

    /// The SMART configuration; `None` if the server has no authentication or the published
    /// issuer's endpoints are unknown (its discovery document could not be read).
    pub(crate) async fn smart_configuration(&self, auth: &EdgeAuth) -> Option<Value> {
        let endpoints = self.endpoints(auth).await?;
        let EdgeAuth::Oidc(authenticator) = auth else {
            return None;
        };
        let issuers: Vec<Value> = authenticator
            .issuers()
            .map(|i| {
                json!({
                    "issuer": i.issuer,
                    "kind": match i.kind {
                        IssuerKind::Citizen => "citizen",
                        IssuerKind::Staff => "staff",
                    },
                })
            })
            .collect();
        Some(json!({
            "issuer": endpoints.issuer,
            "authorization_endpoint": endpoints.authorization_endpoint,
            "token_endpoint": endpoints.token_endpoint,
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": TOKEN_ENDPOINT_AUTH_METHODS,
            "token_endpoint_auth_signing_alg_values_supported": TOKEN_ENDPOINT_AUTH_SIGNING_ALGS,
            "scopes_supported": SCOPES_SUPPORTED,
            "capabilities": CAPABILITIES,
            "paraply_trusted_issuers": issuers,
        }))
    }

    /// What the CapabilityStatement says about security.
    pub(crate) async fn security(&self, auth: &EdgeAuth) -> Security {
        match auth {
            EdgeAuth::Disabled => Security::None,
            EdgeAuth::Oidc(_) => {
                let endpoints = self.endpoints(auth).await;
                Security::Smart {
                    authorize: endpoints.map(|e| e.authorization_endpoint.clone()),
                    token: endpoints.map(|e| e.token_endpoint.clone()),
                }
            }
        }
    }
}
