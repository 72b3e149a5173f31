//! The HTTP edge: the axum router for the FHIR REST API, `/healthz`, `/readyz` and
//! `/metrics`; request ids, content negotiation, body limits, and the one mapping from
//! errors to OperationOutcome ([`outcome::outcome`]).
//!
//! Handlers are thin: they establish the caller ([`EdgeAuth`]: a bearer token, or nobody
//! with `--auth none`), turn an HTTP request into a [`FhirRequest`], hand both to the
//! engine and render the result. Every FHIR path goes through one handler and the
//! engine's own parser, so a Bundle entry and the same request sent alone behave alike.

mod auth;
mod export;
mod metrics;
mod outcome;
mod render;
mod smart;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use paraply_core::{Fhir, FhirRequest, Method, Outcome, add_security, parse_query};
use paraply_export::Exports;
use paraply_fhir::{Issue, IssueType};
use paraply_search::Handling;
use serde_json::Value;

pub use auth::EdgeAuth;
pub use metrics::Metrics;
pub use outcome::outcome;
pub use render::ReturnPreference;
use render::{RenderContext, Rendered, render, render_issue};

pub const FHIR_JSON: &str = "application/fhir+json";

/// Settings of the HTTP edge.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The public FHIR base URL (`https://paraply.example.se/fhir`, no trailing slash) that
    /// every link and `Location` is built from — never the request's `Host` header, which
    /// the caller chooses.
    pub public_base_url: String,
}

#[derive(Clone)]
struct AppState {
    fhir: Fhir,
    exports: Exports,
    settings: Arc<ApiSettings>,
    metrics: Metrics,
    auth: EdgeAuth,
    published_issuer: Arc<smart::PublishedIssuer>,
}

/// A request id, set by the middleware for handlers and logs.
#[derive(Clone)]
struct RequestId(Arc<str>);

/// Builds the router. `metrics` is this instance's registry; `auth` says how callers prove
/// who they are.
pub fn router(
    fhir: Fhir,
    exports: Exports,
    settings: ApiSettings,
    metrics: Metrics,
    auth: EdgeAuth,
) -> Router {
    let state = AppState {
        fhir,
        exports,
        settings: Arc::new(settings),
        metrics,
        auth,
        published_issuer: Arc::default(),
    };
    Router::new()
        .route(
            "/fhir/.well-known/smart-configuration",
            get(smart_configuration),
        )
        .route("/.well-known/smart-configuration", get(smart_configuration))
        .route(
            "/fhir/$export-status/{job}",
            get(export::status).delete(export::cancel),
        )
        .route("/fhir/$export-file/{job}/{file}", get(export::file))
        .route("/fhir", any(fhir_handler))
        .route("/fhir/", any(fhir_handler))
        .route("/fhir/{*path}", any(fhir_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .fallback(unknown_route)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Request id, structured log line and metrics for every request. Logs carry the route
/// shape, never the concrete ids or query values (docs/LOGGING.md).
async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id: Arc<str> = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(uuid::Uuid::new_v4().to_string()));
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let method = request.method().clone();
    let interaction = interaction_label(request.method().as_str(), request.uri().path());
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    state.metrics.observe(interaction, status, seconds);
    tracing::info!(
        request_id = %request_id,
        method = %method,
        interaction,
        status,
        latency_ms = seconds * 1000.0,
        "request"
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The interaction a request is for, from its shape only (a metrics and log label).
pub fn interaction_label(method: &str, path: &str) -> &'static str {
    let Some(rest) = path.strip_prefix("/fhir") else {
        return match path {
            "/healthz" => "healthz",
            "/readyz" => "readyz",
            "/metrics" => "metrics",
            "/.well-known/smart-configuration" => "smart-configuration",
            _ => "unknown",
        };
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        (_, s) if s.iter().any(|p| p.starts_with('$')) => "operation",
        ("POST", []) => "batch-transaction",
        ("GET", ["metadata"]) => "capabilities",
        ("GET", [".well-known", "smart-configuration"]) => "smart-configuration",
        ("GET", ["_history"]) => "history-system",
        ("GET", [_]) => "search-type",
        ("POST", [_, "_search"]) => "search-type",
        ("POST", [_]) => "create",
        ("PUT", [_]) => "conditional-update",
        ("DELETE", [_]) => "conditional-delete",
        ("GET", [_, "_history"]) => "history-type",
        ("GET", [_, _]) => "read",
        ("PUT", [_, _]) => "update",
        ("PATCH", [_, _]) => "patch",
        ("DELETE", [_, _]) => "delete",
        ("GET", [_, _, "_history"]) => "history-instance",
        ("GET", [_, _, "_history", _]) => "vread",
        _ => "unknown",
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.fhir.store().ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    for pool in state.fhir.store().pool_status() {
        state.metrics.set_pool(pool.name, pool.size, pool.idle);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// SMART App Launch discovery: public, like the CapabilityStatement.
async fn smart_configuration(State(state): State<AppState>) -> Response {
    if matches!(state.auth, EdgeAuth::Disabled) {
        let rendered = render_issue(
            StatusCode::NOT_FOUND,
            Issue::error(
                IssueType::NotFound,
                "this server runs without authentication (--auth none): there is no SMART configuration",
            ),
        );
        return respond(rendered, false);
    }
    match state
        .published_issuer
        .smart_configuration(&state.auth)
        .await
    {
        Some(document) => (
            [(header::CONTENT_TYPE, "application/json")],
            document.to_string(),
        )
            .into_response(),
        None => respond(
            render_issue(
                StatusCode::SERVICE_UNAVAILABLE,
                Issue::error(
                    IssueType::Transient,
                    "the login service's discovery document could not be read; try again later",
                ),
            ),
            false,
        ),
    }
}

async fn unknown_route(request: Request) -> Response {
    let rendered = render_issue(
        StatusCode::NOT_FOUND,
        Issue::error(
            IssueType::NotFound,
            format!("nothing is served at {}", request.uri().path()),
        ),
    );
    respond(rendered, false)
}

fn request_id(request: &Request) -> Arc<str> {
    request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| Arc::from("-"))
}

/// How the client wants the response formatted.
struct Format {
    pretty: bool,
    /// `Accept: application/pdf` (and no JSON): the `$patientkontrakt` document as the
    /// same A4 PDF the portal gives patients, for staff printing it for a SIP meeting.
    pdf: bool,
}

fn negotiate(headers: &HeaderMap, query: &[(String, String)]) -> Result<Format, Rendered> {
    let format_param = query
        .iter()
        .find(|(k, _)| k == "_format")
        .map(|(_, v)| v.as_str());
    let pretty = query.iter().any(|(k, v)| k == "_pretty" && v == "true");
    let accepted = |media: &str| {
        let media = media.split(';').next().unwrap_or("").trim();
        matches!(
            media,
            "" | "*/*" | "application/*" | "json" | FHIR_JSON | "application/json"
        )
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let pdf = format_param.is_none()
        && accept.is_some_and(|accept| {
            let media: Vec<&str> = accept
                .split(',')
                .map(|m| m.split(';').next().unwrap_or("").trim())
                .collect();
            media.contains(&PDF) && !media.iter().any(|m| accepted(m))
        });
    let ok = pdf
        || match format_param {
            Some(format) => accepted(format),
            None => accept.is_none_or(|accept| accept.split(',').any(accepted)),
        };
    if ok {
        Ok(Format { pretty, pdf })
    } else {
        Err(render_issue(
            StatusCode::NOT_ACCEPTABLE,
            Issue::error(
                IssueType::NotSupported,
                "this server speaks FHIR JSON only: use application/fhir+json or application/json",
            ),
        ))
    }
}

/// The caller of a request, or the response refusing it (`401` with `WWW-Authenticate`,
/// the refused login logged).
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    id: &Arc<str>,
    pretty: bool,
) -> Result<paraply_core::RequestContext, Response> {
    match auth::request_context(&state.auth, headers, id).await {
        Ok(context) => Ok(context),
        Err(refusal) => {
            if let Some(reason) = refusal.login_failure()
                && let Err(error) = state.fhir.log_refused_login(id, reason).await
            {
                tracing::error!(request_id = %id, %error, "cannot log a refused login");
            }
            let (rendered, challenge) = refusal.render();
            let mut response = respond(rendered, pretty);
            if let Some(challenge) = challenge {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, challenge);
            }
            Err(response)
        }
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn fhir_handler(State(state): State<AppState>, request: Request) -> Response {
    let id = request_id(&request);
    let (parts, body) = request.into_parts();
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let format = match negotiate(&parts.headers, &query) {
        Ok(format) => format,
        Err(rendered) => return respond(rendered, false),
    };
    let path = parts
        .uri
        .path()
        .trim_start_matches("/fhir")
        .trim_matches('/')
        .to_owned();
    let Some(method) = Method::parse(parts.method.as_str()) else {
        let rendered = render_issue(
            StatusCode::METHOD_NOT_ALLOWED,
            Issue::error(
                IssueType::NotSupported,
                format!("{} is not a FHIR interaction method", parts.method),
            ),
        );
        return respond(rendered, format.pretty);
    };
    // The CapabilityStatement is public: it tells a client how to log in.
    let public = method == Method::Get && path == "metadata";
    let context = if public {
        paraply_core::RequestContext::unrestricted(id.as_ref())
    } else {
        match authenticate(&state, &parts.headers, &id, format.pretty).await {
            Ok(context) => context,
            Err(response) => return response,
        }
    };
    let base = state.settings.public_base_url.trim_end_matches('/');
    let self_url = format!(
        "{base}{}{}",
        parts.uri.path().trim_start_matches("/fhir"),
        parts
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default()
    );

    let mut fhir_request = FhirRequest::new(method, path);
    fhir_request.query = query;
    fhir_request.if_match = header_text(&parts.headers, header::IF_MATCH);
    fhir_request.if_none_exist = parts
        .headers
        .get("if-none-exist")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split_once('?').map_or(v, |(_, q)| q).to_owned());

    // A request no interaction answers gets its 404/405 from the engine, before any
    // complaint about its body.
    let routable = interaction_label(parts.method.as_str(), parts.uri.path()) != "unknown";
    if routable && matches!(method, Method::Post | Method::Put | Method::Patch) {
        let bytes = match axum::body::to_bytes(body, state.settings.max_body_bytes).await {
            Ok(bytes) => bytes,
            Err(_) => {
                let rendered = render_issue(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Issue::error(
                        IssueType::TooLong,
                        format!(
                            "the request body is larger than the limit of {} bytes",
                            state.settings.max_body_bytes
                        ),
                    ),
                );
                return respond(rendered, format.pretty);
            }
        };
        let content_type = header_text(&parts.headers, header::CONTENT_TYPE).unwrap_or_default();
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let is_search = fhir_request.path.ends_with("/_search");
        match read_body(method, is_search, &media, &bytes) {
            Ok(RequestBody::Json(value)) => fhir_request.body = Some(value),
            Ok(RequestBody::Form(pairs)) => fhir_request.query.extend(pairs),
            Ok(RequestBody::Empty) => {}
            Err(rendered) => return respond(rendered, format.pretty),
        }
    }

    let prefer_header = parts.headers.get("prefer").and_then(|v| v.to_str().ok());
    let prefer = ReturnPreference::from_header(prefer_header);
    fhir_request.handling = handling(prefer_header);
    fhir_request.respond_async = respond_async(prefer_header);
    let mut result = state.fhir.handle_as(&context, fhir_request).await;
    if public && let Ok(Outcome::Capabilities(statement)) = &mut result {
        let security = state.published_issuer.security(&state.auth).await;
        add_security(statement, &security);
    }
    // Errors stay OperationOutcomes: a client asking for a PDF still learns why not.
    if format.pdf
        && let Ok(outcome) = result
    {
        return pdf_response(outcome, &parts.headers).await;
    }
    let ctx = RenderContext {
        base,
        self_url: &self_url,
        prefer,
        request_id: &id,
    };
    respond(render(result, &ctx), format.pretty)
}

const PDF: &str = "application/pdf";

/// A `document` Bundle (the `$patientkontrakt` answer) as a PDF, in English when the client
/// prefers it (`Accept-Language: en`), else Swedish. Anything else has no PDF form: 406.
async fn pdf_response(outcome: Outcome, headers: &HeaderMap) -> Response {
    let bundle = match outcome {
        Outcome::Built(bundle)
            if bundle.get("type").and_then(Value::as_str) == Some("document") =>
        {
            bundle
        }
        _ => {
            let rendered = render_issue(
                StatusCode::NOT_ACCEPTABLE,
                Issue::error(
                    IssueType::NotSupported,
                    "application/pdf is served for documents only (Patient/{id}/$patientkontrakt)",
                ),
            );
            return respond(rendered, false);
        }
    };
    let language = match headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split([',', ';', '-']).next())
        .map(str::trim)
    {
        Some("en") => paraply_pdf::Language::En,
        _ => paraply_pdf::Language::Sv,
    };
    // Laying out a PDF is CPU work: off the request threads.
    match tokio::task::spawn_blocking(move || paraply_pdf::plan_pdf(&bundle, language)).await {
        Ok(Ok(pdf)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, PDF),
                (header::CACHE_CONTROL, "no-store"),
            ],
            pdf,
        )
            .into_response(),
        _ => {
            tracing::error!("the plan PDF could not be made");
            let rendered = render_issue(
                StatusCode::INTERNAL_SERVER_ERROR,
                Issue::error(IssueType::Exception, "the PDF could not be made"),
            );
            respond(rendered, false)
        }
    }
}

/// `Prefer: handling=lenient` asks searches to ignore (and report) what they do not know.
fn handling(prefer: Option<&str>) -> Handling {
    let lenient = prefer.is_some_and(|p| {
        p.split([',', ';'])
            .any(|part| part.trim() == "handling=lenient")
    });
    if lenient {
        Handling::Lenient
    } else {
        Handling::Strict
    }
}

/// `Prefer: respond-async`: the client takes a `202` and polls (bulk export).
fn respond_async(prefer: Option<&str>) -> bool {
    prefer.is_some_and(|p| {
        p.split([',', ';'])
            .any(|part| part.trim() == "respond-async")
    })
}

enum RequestBody {
    Json(Value),
    Form(Vec<(String, String)>),
    Empty,
}

fn read_body(
    method: Method,
    is_search: bool,
    media: &str,
    bytes: &Bytes,
) -> Result<RequestBody, Rendered> {
    let unsupported = |expected: &str| {
        render_issue(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Issue::error(
                IssueType::NotSupported,
                format!("Content-Type '{media}' is not accepted here; send {expected}"),
            ),
        )
    };
    if is_search {
        return match media {
            // A body that cannot be read is refused: read as no criteria, it would match
            // everything.
            "application/x-www-form-urlencoded" | "" => std::str::from_utf8(bytes)
                .map(|text| RequestBody::Form(parse_query(text)))
                .map_err(|_| {
                    render_issue(
                        StatusCode::BAD_REQUEST,
                        Issue::error(
                            IssueType::Structure,
                            "the search form body is not UTF-8 text",
                        ),
                    )
                }),
            _ => Err(unsupported("application/x-www-form-urlencoded")),
        };
    }
    let json_ok = match method {
        Method::Patch => matches!(media, "application/json-patch+json"),
        _ => matches!(media, FHIR_JSON | "application/json"),
    };
    if !json_ok {
        return Err(unsupported(if method == Method::Patch {
            "application/json-patch+json"
        } else {
            "application/fhir+json"
        }));
    }
    if bytes.is_empty() {
        return Ok(RequestBody::Empty);
    }
    serde_json::from_slice::<Value>(bytes)
        .map(RequestBody::Json)
        .map_err(|e| {
            render_issue(
                StatusCode::BAD_REQUEST,
                Issue::error(
                    IssueType::Structure,
                    format!("the body is not valid JSON: {e}"),
                ),
            )
        })
}

fn respond(rendered: Rendered, pretty: bool) -> Response {
    let mut builder = Response::builder().status(rendered.status);
    if let Some(location) = &rendered.location {
        // An accepted asynchronous request names where to poll, not a created resource.
        if rendered.status != StatusCode::ACCEPTED {
            builder = builder.header(header::LOCATION, location);
        }
        if matches!(rendered.status, StatusCode::CREATED | StatusCode::ACCEPTED) {
            builder = builder.header(header::CONTENT_LOCATION, location);
        }
    }
    if let Some(etag) = &rendered.etag {
        builder = builder.header(header::ETAG, etag);
    }
    if let Some(modified) = rendered.last_modified {
        builder = builder.header(
            header::LAST_MODIFIED,
            httpdate::fmt_http_date(modified.into()),
        );
    }
    let body = match rendered.body {
        Some(text) => {
            builder = builder.header(header::CONTENT_TYPE, "application/fhir+json; charset=utf-8");
            if pretty {
                serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or(text)
            } else {
                text
            }
        }
        None => String::new(),
    };
    builder
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_interaction_not_the_ids() {
        assert_eq!(interaction_label("GET", "/fhir/Patient/123"), "read");
        assert_eq!(
            interaction_label("GET", "/fhir/Patient/1/_history/2"),
            "vread"
        );
        assert_eq!(interaction_label("POST", "/fhir"), "batch-transaction");
        assert_eq!(interaction_label("GET", "/fhir/Patient"), "search-type");
        assert_eq!(interaction_label("GET", "/nope"), "unknown");
    }
}
