//! The bulk export's status URL and files (the kick-off is an operation of the engine):
//! thin handlers over [`paraply_export::Exports`], which any node answers for any job.

use axum::body::{Body, Bytes};
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use paraply_core::{CoreError, RequestContext};
use paraply_export::{ExportStatus, RETRY_AFTER_SECONDS};
use paraply_fhir::{Issue, IssueType};

use crate::render::{render_error, render_issue};
use crate::{AppState, RequestId, authenticate, respond};

const NDJSON: &str = "application/fhir+ndjson";
/// Lines sent together in one chunk of the response body.
const LINES_PER_CHUNK: usize = 256;

async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    id: &Arc<str>,
) -> Result<RequestContext, Response> {
    authenticate(state, headers, id, false).await
}

fn failed(error: &CoreError, id: &str) -> Response {
    respond(render_error(error, id), false)
}

/// `GET [base]/$export-status/{job}`: `202` with `Retry-After` and `X-Progress` while the
/// worker counts, then `200` with the manifest.
pub(crate) async fn status(
    State(state): State<AppState>,
    Path(job): Path<String>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
) -> Response {
    let context = match caller(&state, &headers, &id).await {
        Ok(context) => context,
        Err(response) => return response,
    };
    match state.exports.status(&context, &job).await {
        Ok(ExportStatus::InProgress { progress }) => (
            StatusCode::ACCEPTED,
            [
                (header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string()),
                (header::HeaderName::from_static("x-progress"), progress),
            ],
        )
            .into_response(),
        Ok(ExportStatus::Complete { manifest }) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            manifest.to_string(),
        )
            .into_response(),
        Err(error) => failed(&error, &id),
    }
}

/// `DELETE [base]/$export-status/{job}`: the job and its files are removed (`202`).
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(job): Path<String>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
) -> Response {
    let context = match caller(&state, &headers, &id).await {
        Ok(context) => context,
        Err(response) => return response,
    };
    match state.exports.cancel(&context, &job).await {
        Ok(()) => respond(
            render_issue(
                StatusCode::ACCEPTED,
                Issue::information(
                    IssueType::Informational,
                    format!("export job {job} is cancelled and its files are removed"),
                ),
            ),
            false,
        ),
        Err(error) => failed(&error, &id),
    }
}

/// `GET [base]/$export-file/{job}/{Type}.ndjson`: the file, streamed from the database as
/// it is read (a page of lines at a time), never held whole.
pub(crate) async fn file(
    State(state): State<AppState>,
    Path((job, file)): Path<(String, String)>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
) -> Response {
    let context = match caller(&state, &headers, &id).await {
        Ok(context) => context,
        Err(response) => return response,
    };
    let lines = match state.exports.file(&context, &job, &file).await {
        Ok(lines) => lines,
        Err(error) => return failed(&error, &id),
    };
    let chunks = lines.ready_chunks(LINES_PER_CHUNK).map(move |lines| {
        let mut chunk = String::new();
        for line in lines {
            match line {
                Ok(line) => {
                    chunk.push_str(&line);
                    chunk.push('\n');
                }
                Err(error) => {
                    // The status line is sent: all that is left is to break the body off.
                    tracing::error!(request_id = %id, %error, "export file read failed");
                    return Err(error);
                }
            }
        }
        Ok(Bytes::from(chunk))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, NDJSON)],
        Body::from_stream(chunks),
    )
        .into_response()
}
