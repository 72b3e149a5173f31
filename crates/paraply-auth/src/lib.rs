//! Paraply's authentication: who is calling, proven by a bearer access token.
//!
//! **Owns**
//! - the trusted-issuer configuration ([`TrustedIssuer`]: issuer URL, audience, citizen or
//!   staff, the huvudman a staff issuer speaks for, claim names);
//! - a cache of each issuer's OIDC discovery document and JWKS, fetched lazily and refetched
//!   once (rate-limited) when a token names an unknown `kid`, so key rotation just works;
//! - access-token validation ([`Authenticator::authenticate`]): exact issuer match, only
//!   RS256/ES256/PS256 and only with a key of the matching type, signature, `iss`, `aud`,
//!   `exp`, `nbf` (30 s leeway), header `typ`;
//! - the resulting [`Principal`] (citizen by personnummer, staff by HSA-id and assignment, or a
//!   system client) and its SMART on FHIR [`Scopes`].
//!
//! **Does not own**
//! - the HTTP edge: reading `Authorization`, 401/`WWW-Authenticate`, SMART configuration
//!   (paraply-api); no axum here;
//! - access rules — what a principal may read or write (paraply-core);
//! - login flows and sessions of the portal (paraply-portal), ID tokens, refresh tokens.
//!
//! **Transport.** Issuer documents are fetched with the `reqwest::Client` the caller passes in.
//! Production issuers are `https://`; this crate enables no TLS backend itself, so the binary
//! that wires it in must build its client with a TLS feature. Tests talk plain HTTP on loopback.
//!
//! **Architecture Invariant:** nothing in a token is trusted before its signature is verified,
//! except `iss`, `kid` and `alg`, which only choose the issuer and key; `alg` must be
//! asymmetric and fit the key the issuer published.

mod authenticator;
mod config;
mod error;
mod principal;
mod scopes;

pub use authenticator::{Authenticator, IssuerEndpoints};
pub use config::{AuthenticatorOptions, ClaimNames, IssuerKind, TrustedIssuer};
pub use error::AuthError;
pub use principal::{Personnummer, Principal};
pub use scopes::{
    Context, NotAResourceScope, Permission, Permissions, ScopeResource, Scopes, SmartScope,
};
