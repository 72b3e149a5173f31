//! The portal's one error type and its response: a status and an OperationOutcome, never a
//! token, a code or a stack trace.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use paraply_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// The `[portal]` settings are unusable.
    #[error("{0}")]
    Settings(String),
    /// A malformed request: unknown or expired login, missing parameters, unsafe `return_to`.
    #[error("{0}")]
    BadRequest(String),
    /// The login did not succeed: the provider refused it, or its answer did not verify.
    #[error("{0}")]
    LoginFailed(String),
    #[error("not logged in")]
    NotLoggedIn,
    /// A state-changing request without a valid CSRF token, or from another site.
    #[error("{0}")]
    Forbidden(String),
    /// The OpenID provider could not be reached or answered nonsense.
    #[error("the identity provider is unavailable: {0}")]
    Provider(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            PortalError::Settings(_) => (StatusCode::INTERNAL_SERVER_ERROR, "exception"),
            PortalError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid"),
            PortalError::LoginFailed(_) | PortalError::NotLoggedIn => {
                (StatusCode::UNAUTHORIZED, "login")
            }
            PortalError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            PortalError::Provider(_) => (StatusCode::BAD_GATEWAY, "transient"),
            PortalError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "transient"),
        };
        let diagnostics = match &self {
            // Database details stay in the log.
            PortalError::Store(error) => {
                tracing::error!(%error, "portal session storage failed");
                "the session storage is unavailable".to_string()
            }
            other => {
                tracing::warn!(status = status.as_u16(), error = %other, "portal request refused");
                other.to_string()
            }
        };
        let body = serde_json::json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "error", "code": code, "diagnostics": diagnostics }],
        });
        (
            status,
            [
                (header::CONTENT_TYPE, "application/fhir+json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body.to_string(),
        )
            .into_response()
    }
}
