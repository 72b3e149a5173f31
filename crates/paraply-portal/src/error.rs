//! The portal's one error type and its response: a friendly page in Swedish with the right
//! status — never a token, a code, a stack trace or JSON. What went wrong goes to the log.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use paraply_core::CoreError;
use paraply_store::StoreError;

use crate::i18n::Language;
use crate::views::{self, Frame, Nav};

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
    /// A page needs a logged-in patient: log in, then come back to `return_to`.
    #[error("not logged in")]
    LoginNeeded { return_to: String },
    /// A state-changing request without a valid CSRF token, or from another site.
    #[error("{0}")]
    Forbidden(String),
    /// The OpenID provider could not be reached or answered nonsense.
    #[error("the identity provider is unavailable: {0}")]
    Provider(String),
    /// The logged-in person is no patient, and no patient has allowed them to see a plan.
    #[error("no patient record matches the logged-in person")]
    NoPatient,
    /// A relative who may see several plans has not chosen one yet.
    #[error("whose plan to show is not chosen")]
    ChoosePatient,
    /// A page for the patient themself, asked for by a relative.
    #[error("this page is the patient's own")]
    PatientOnly,
    /// Nothing of the patient's is at this path.
    #[error("not found")]
    NotFound,
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] CoreError),
    /// Something that cannot happen did.
    #[error("{0}")]
    Unexpected(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        if let PortalError::ChoosePatient = &self {
            return crate::redirect("/valj", None);
        }
        if let PortalError::LoginNeeded { return_to } = &self {
            let target = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", return_to)
                .finish();
            return crate::redirect(&format!("/auth/login?{target}"), None);
        }
        let (status, title, body, login) = match &self {
            PortalError::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "error-bad-request-title",
                "error-bad-request",
                false,
            ),
            PortalError::LoginFailed(_) | PortalError::LoginNeeded { .. } => (
                StatusCode::UNAUTHORIZED,
                "error-login-title",
                "error-login",
                true,
            ),
            PortalError::Forbidden(_) => (
                StatusCode::FORBIDDEN,
                "error-forbidden-title",
                "error-forbidden",
                false,
            ),
            PortalError::NoPatient => (
                StatusCode::FORBIDDEN,
                "error-forbidden-title",
                "error-no-patient",
                false,
            ),
            PortalError::ChoosePatient | PortalError::PatientOnly => (
                StatusCode::FORBIDDEN,
                "error-forbidden-title",
                "error-forbidden",
                false,
            ),
            PortalError::NotFound
            | PortalError::Engine(CoreError::NotFound { .. } | CoreError::Gone { .. }) => (
                StatusCode::NOT_FOUND,
                "error-not-found-title",
                "error-not-found",
                false,
            ),
            PortalError::Engine(CoreError::Forbidden { .. }) => (
                StatusCode::FORBIDDEN,
                "error-forbidden-title",
                "error-forbidden",
                false,
            ),
            PortalError::Provider(_)
            | PortalError::Store(_)
            | PortalError::Engine(CoreError::Store(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "error-unavailable-title",
                "error-unavailable",
                false,
            ),
            PortalError::Settings(_) | PortalError::Engine(_) | PortalError::Unexpected(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "error-generic-title",
                "error-generic",
                false,
            ),
        };
        // A 5xx is logged with its cause, as the API's are. A refusal is logged by kind only:
        // an engine refusal may name a resource (`Patient/… is not known`), and the portal
        // logs no patient data.
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self, "portal request failed");
        } else {
            tracing::warn!(
                status = status.as_u16(),
                kind = title,
                "portal request refused"
            );
        }
        let frame = Frame {
            lang: Language::Sv,
            csrf: None,
            nav: Nav::Other,
            path: "/",
            relative: false,
        };
        crate::pages::html(status, views::error(&frame, title, body, login))
    }
}

/// An OperationOutcome answer, for `/auth/session`, which programs read.
pub(crate) fn json_outcome(status: StatusCode, code: &str, diagnostics: &str) -> Response {
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
