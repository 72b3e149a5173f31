//! The one mapping from errors to an HTTP status and an OperationOutcome, used by plain
//! responses and by batch/transaction entries alike.

use axum::http::StatusCode;
use paraply_core::CoreError;
use paraply_fhir::{Issue, IssueType};
use paraply_store::StoreError;

/// Status and issues for an error. 5xx issues never carry internals: the caller adds the
/// request id and logs the cause.
pub fn outcome(error: &CoreError) -> (StatusCode, Vec<Issue>) {
    use CoreError::*;
    let plain =
        |status: StatusCode, code: IssueType| (status, vec![Issue::error(code, error.to_string())]);
    match error {
        Invalid(invalid) => {
            let status = match invalid {
                paraply_fhir::Invalid::Structure(_) => StatusCode::BAD_REQUEST,
                paraply_fhir::Invalid::Content(_) => StatusCode::UNPROCESSABLE_ENTITY,
            };
            (status, invalid.issues().to_vec())
        }
        BadRequest {
            message,
            expression,
        } => {
            let mut issue = Issue::error(IssueType::Invalid, message.clone());
            issue.expression = expression.clone();
            (StatusCode::BAD_REQUEST, vec![issue])
        }
        NotFound { .. } | VersionNotFound { .. } | Absent(_) => {
            plain(StatusCode::NOT_FOUND, IssueType::NotFound)
        }
        Gone { .. } => plain(StatusCode::GONE, IssueType::Deleted),
        UnknownRoute(_) => plain(StatusCode::NOT_FOUND, IssueType::NotSupported),
        MethodNotAllowed { .. } => plain(StatusCode::METHOD_NOT_ALLOWED, IssueType::NotSupported),
        UnsupportedOperation(_) => plain(StatusCode::NOT_IMPLEMENTED, IssueType::NotSupported),
        Forbidden { .. } => plain(StatusCode::FORBIDDEN, IssueType::Forbidden),
        PreconditionFailed { .. } => plain(StatusCode::PRECONDITION_FAILED, IssueType::Conflict),
        MultipleMatches { .. } => {
            plain(StatusCode::PRECONDITION_FAILED, IssueType::MultipleMatches)
        }
        UnresolvedReference { count, .. } => plain(
            if *count == 0 {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::PRECONDITION_FAILED
            },
            if *count == 0 {
                IssueType::NotFound
            } else {
                IssueType::MultipleMatches
            },
        ),
        IdMismatch { .. } | TypeMismatch { .. } => {
            plain(StatusCode::BAD_REQUEST, IssueType::Invalid)
        }
        Patch(_) => plain(StatusCode::UNPROCESSABLE_ENTITY, IssueType::Processing),
        Search(search) => (
            StatusCode::BAD_REQUEST,
            vec![Issue::error(IssueType::NotSupported, search.to_string()).at(search.parameter())],
        ),
        Conflict { .. } | Taken { .. } => plain(StatusCode::CONFLICT, IssueType::Conflict),
        RuleBroken { .. } => plain(StatusCode::UNPROCESSABLE_ENTITY, IssueType::BusinessRule),
        Transaction {
            index,
            request,
            source,
        } => {
            let (status, mut issues) = outcome(source);
            if !status.is_server_error()
                && let Some(first) = issues.first_mut()
            {
                first.diagnostics = format!(
                    "transaction failed at entry {index} ({request}); nothing was stored: {}",
                    first.diagnostics
                );
            }
            (status, issues)
        }
        Store(StoreError::Full(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            vec![Issue::error(
                IssueType::Transient,
                "the database has no room for more data: nothing of this write was stored; reads go on; try again when space has been freed",
            )],
        ),
        Store(StoreError::Database(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            vec![Issue::error(
                IssueType::Transient,
                "the database is unavailable; try again",
            )],
        ),
        Store(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            vec![Issue::error(IssueType::Exception, "internal error")],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paraply_fhir::{Invalid, ResourceId, ResourceType, VersionId};

    fn id() -> ResourceId {
        "x".parse().unwrap()
    }

    /// One row per error kind: the status a client sees.
    #[test]
    fn every_error_kind_has_its_status() {
        let t = ResourceType::Patient;
        let v = VersionId::FIRST;
        let cases: Vec<(CoreError, u16)> = vec![
            (CoreError::Invalid(Invalid::Structure(vec![])), 400),
            (CoreError::Invalid(Invalid::Content(vec![])), 422),
            (
                CoreError::BadRequest {
                    message: "m".into(),
                    expression: None,
                },
                400,
            ),
            (
                CoreError::NotFound {
                    resource_type: t,
                    id: id(),
                },
                404,
            ),
            (
                CoreError::VersionNotFound {
                    resource_type: t,
                    id: id(),
                    version_id: v,
                },
                404,
            ),
            (
                CoreError::Gone {
                    resource_type: t,
                    id: id(),
                    version_id: v,
                },
                410,
            ),
            (CoreError::UnknownRoute("x".into()), 404),
            (CoreError::Absent("export job x".into()), 404),
            (
                CoreError::MethodNotAllowed {
                    method: paraply_core::Method::Post,
                    path: "/x".into(),
                },
                405,
            ),
            (CoreError::UnsupportedOperation("everything".into()), 501),
            (
                CoreError::Forbidden {
                    reason: "no care relationship".into(),
                },
                403,
            ),
            (
                CoreError::PreconditionFailed {
                    resource_type: t,
                    id: id(),
                    expected: v,
                    current: "2".into(),
                },
                412,
            ),
            (
                CoreError::MultipleMatches {
                    resource_type: t,
                    count: 2,
                },
                412,
            ),
            (
                CoreError::UnresolvedReference {
                    reference: "r".into(),
                    count: 0,
                },
                404,
            ),
            (
                CoreError::UnresolvedReference {
                    reference: "r".into(),
                    count: 2,
                },
                412,
            ),
            (
                CoreError::IdMismatch {
                    url: "a".into(),
                    body: "b".into(),
                },
                400,
            ),
            (CoreError::Patch("p".into()), 422),
            (
                CoreError::Conflict {
                    resource_type: t,
                    id: id(),
                },
                409,
            ),
            (
                CoreError::Taken {
                    message: "taken".into(),
                },
                409,
            ),
            (CoreError::Store(StoreError::Database("d".into())), 503),
            (CoreError::Store(StoreError::Full("f".into())), 503),
            (CoreError::Store(StoreError::Corrupt("c".into())), 500),
        ];
        for (error, status) in cases {
            assert_eq!(outcome(&error).0.as_u16(), status, "{error:?}");
        }
    }

    #[test]
    fn server_errors_reveal_no_internals() {
        let (_, issues) = outcome(&CoreError::Store(StoreError::Database(
            "relation resource_version: SELECT body".into(),
        )));
        assert!(!issues[0].diagnostics.contains("SELECT"));
    }
}
