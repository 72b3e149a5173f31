//! The domain's one error type, in FHIR words; the HTTP edge maps it to a status and an
//! OperationOutcome in one place.

use paraply_fhir::{Invalid, ResourceId, ResourceType, VersionId};
use paraply_search::SearchError;
use paraply_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The resource body is not valid R4 (structure or content).
    #[error("invalid resource")]
    Invalid(Invalid),
    /// The request itself is malformed (URL, header, body shape).
    #[error("{message}")]
    BadRequest {
        message: String,
        expression: Option<String>,
    },
    #[error("{resource_type}/{id} is not known")]
    NotFound {
        resource_type: ResourceType,
        id: ResourceId,
    },
    #[error("version {version_id} of {resource_type}/{id} is not known")]
    VersionNotFound {
        resource_type: ResourceType,
        id: ResourceId,
        version_id: VersionId,
    },
    #[error("{resource_type}/{id} was deleted")]
    Gone {
        resource_type: ResourceType,
        id: ResourceId,
        version_id: VersionId,
    },
    /// A path or type this server does not serve.
    #[error("{0}")]
    UnknownRoute(String),
    /// Something that is not a resource does not exist, or no longer does (a bulk export's
    /// job after it was cancelled or expired, a file it does not have).
    #[error("{0}")]
    Absent(String),
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: Method, path: String },
    /// The caller is known but may not do this (SMART scope, care relationship, spärr,
    /// consent, or a resource only the server writes). The reason is safe to show: it never
    /// says whether or where blocked data exists.
    #[error("{reason}")]
    Forbidden { reason: String },
    /// An operation (`$name`) that is not implemented.
    #[error("operation ${0} is not supported")]
    UnsupportedOperation(String),
    /// `If-Match` named a version that is not the current one (or the resource is missing).
    #[error("{resource_type}/{id}: If-Match expected version {expected}, current is {current}")]
    PreconditionFailed {
        resource_type: ResourceType,
        id: ResourceId,
        expected: VersionId,
        current: String,
    },
    /// A conditional interaction matched more than one resource.
    #[error(
        "the conditional criteria matched {count} {resource_type} resources; they must match at most one"
    )]
    MultipleMatches {
        resource_type: ResourceType,
        count: u64,
    },
    /// A conditional reference in a transaction did not resolve to exactly one resource.
    #[error(
        "conditional reference '{reference}' matched {count} resources; it must match exactly one"
    )]
    UnresolvedReference { reference: String, count: u64 },
    /// The id in the body does not match the id in the URL.
    #[error("the resource id '{body}' does not match the id '{url}' in the URL")]
    IdMismatch { url: String, body: String },
    /// The resource type in the body is not the one in the URL.
    #[error("the body is a {body} but the URL names {url}")]
    TypeMismatch { url: ResourceType, body: String },
    #[error("JSON Patch failed: {0}")]
    Patch(String),
    #[error(transparent)]
    Search(#[from] SearchError),
    /// Someone else wrote the same resource at the same moment and retries ran out.
    #[error("{resource_type}/{id} was changed concurrently; retry the request")]
    Conflict {
        resource_type: ResourceType,
        id: ResourceId,
    },
    /// What the request asks for is already taken by someone else (a time another patient
    /// holds or has booked): asking again will not help, choosing another will.
    #[error("{message}")]
    Taken { message: String },
    /// A write would break a rule across resources (DOMAIN.md §4): `rule` is its code
    /// (`paraply-I1`), `resource` the resource in conflict with it.
    #[error("{rule}: {message}")]
    RuleBroken {
        rule: &'static str,
        message: String,
        resource: Option<(ResourceType, ResourceId)>,
    },
    /// A transaction entry failed, so the whole transaction was rolled back.
    #[error("transaction failed at entry {index} ({request}): {source}")]
    Transaction {
        index: usize,
        request: String,
        #[source]
        source: Box<CoreError>,
    },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for CoreError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::VersionConflict { resource_type, id } => {
                CoreError::Conflict { resource_type, id }
            }
            other => CoreError::Store(other),
        }
    }
}

impl CoreError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        CoreError::BadRequest {
            message: message.into(),
            expression: None,
        }
    }
}

/// HTTP methods FHIR interactions use, as a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn parse(name: &str) -> Option<Method> {
        match name {
            "GET" | "HEAD" => Some(Method::Get),
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "PATCH" => Some(Method::Patch),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
