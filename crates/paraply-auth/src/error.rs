//! The one error type of this crate.

/// Why a bearer token was not accepted. Messages are safe to show a client: they never repeat
/// the token, its claims or internal addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not a compact JWS with a JSON header and payload.
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    /// The unverified `iss` names no configured issuer (compared exactly).
    #[error("the token's issuer is not trusted by this server")]
    UntrustedIssuer,
    /// `alg` is not RS256, ES256 or PS256, or does not fit the issuer's key (`none`, HS256, …).
    #[error("the token's signing algorithm is not accepted")]
    DisallowedAlgorithm,
    /// The issuer publishes no key with the token's `kid`, even after refetching its JWKS.
    #[error("the token was signed with a key its issuer does not publish")]
    UnknownKey,
    /// The signature does not verify with the issuer's key.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `aud` does not contain the audience configured for the issuer.
    #[error("the token was not issued for this server")]
    WrongAudience,
    /// `iss` does not match the issuer whose key verified the token.
    #[error("the token's issuer does not match its signing key")]
    WrongIssuer,
    /// The header `typ` says this is not an access token (e.g. a logout or DPoP token).
    #[error("the token is not an access token")]
    WrongTokenType,
    /// A claim the principal needs is absent.
    #[error("the token lacks the claim '{name}'")]
    MissingClaim {
        /// The claim's name as configured.
        name: String,
    },
    /// A claim is present but has the wrong shape or value (e.g. a personnummer failing Luhn).
    #[error("the token's claim '{name}' is invalid")]
    InvalidClaim {
        /// The claim's name as configured.
        name: String,
    },
    /// The issuer's discovery document or JWKS could not be fetched or made no sense.
    /// The server's fault or the issuer's, not the client's.
    #[error("the token's issuer could not be reached or answered wrongly: {0}")]
    Discovery(String),
    /// The trusted-issuer configuration is unusable; only [`crate::Authenticator::new`]
    /// returns this.
    #[error("the authentication configuration is invalid: {0}")]
    Config(String),
}

impl AuthError {
    /// True if the token itself was refused (an HTTP edge answers 401); false if the server
    /// could not check it ([`AuthError::Discovery`], [`AuthError::Config`]; answer 503/500).
    pub fn is_token_rejected(&self) -> bool {
        !matches!(self, AuthError::Discovery(_) | AuthError::Config(_))
    }
}
