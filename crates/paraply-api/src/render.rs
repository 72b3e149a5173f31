//! Turns interaction results into response parts, for HTTP responses and for the entries
//! of batch/transaction responses alike.

use axum::http::StatusCode;
use paraply_core::{CoreError, Outcome, format_instant};
use paraply_fhir::{Issue, IssueType, Severity, operation_outcome};
use paraply_search::{SearchQuery, Summary, subset};
use paraply_store::{SearchMatch, SearchPage, StoredResource};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::outcome::outcome;

/// What the client asked to get back from a write (`Prefer: return=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnPreference {
    Minimal,
    #[default]
    Representation,
    OperationOutcome,
}

impl ReturnPreference {
    pub fn from_header(prefer: Option<&str>) -> Self {
        let Some(prefer) = prefer else {
            return Self::default();
        };
        prefer
            .split([',', ';'])
            .filter_map(|part| part.trim().strip_prefix("return="))
            .find_map(|value| match value.trim_matches('"') {
                "minimal" => Some(Self::Minimal),
                "representation" => Some(Self::Representation),
                "OperationOutcome" => Some(Self::OperationOutcome),
                _ => None,
            })
            .unwrap_or_default()
    }
}

/// Per-request facts rendering needs.
pub struct RenderContext<'a> {
    /// The public FHIR base URL from the settings, e.g. `https://paraply.example.se/fhir`.
    pub base: &'a str,
    /// The full URL of this request, for `self` links.
    pub self_url: &'a str,
    pub prefer: ReturnPreference,
    pub request_id: &'a str,
}

/// A rendered result: status, FHIR headers and a JSON body.
#[derive(Debug)]
pub struct Rendered {
    pub status: StatusCode,
    pub location: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<OffsetDateTime>,
    pub body: Option<String>,
}

impl Rendered {
    fn new(status: StatusCode, body: Option<String>) -> Self {
        Rendered {
            status,
            location: None,
            etag: None,
            last_modified: None,
            body,
        }
    }
}

pub fn render(result: Result<Outcome, CoreError>, ctx: &RenderContext<'_>) -> Rendered {
    match result {
        Ok(outcome) => render_outcome(outcome, ctx),
        Err(error) => render_error(&error, ctx.request_id),
    }
}

pub fn render_error(error: &CoreError, request_id: &str) -> Rendered {
    let (status, mut issues) = outcome(error);
    if status.is_server_error() {
        tracing::error!(request_id, error = %error, "request failed");
        for issue in &mut issues {
            issue.diagnostics = format!("{} (request id {request_id})", issue.diagnostics);
        }
    }
    Rendered::new(status, Some(operation_outcome(&issues).to_string()))
}

/// An OperationOutcome response for failures outside the FHIR engine (bad headers,
/// bodies, routes).
pub fn render_issue(status: StatusCode, issue: Issue) -> Rendered {
    Rendered::new(status, Some(operation_outcome(&[issue]).to_string()))
}

fn resource_url(base: &str, resource: &StoredResource) -> String {
    format!("{base}/{}/{}", resource.resource_type, resource.id)
}

fn render_outcome(outcome: Outcome, ctx: &RenderContext<'_>) -> Rendered {
    match outcome {
        Outcome::Capabilities(statement) => {
            Rendered::new(StatusCode::OK, Some(statement.to_string()))
        }
        Outcome::BuiltFrom { body, .. } => Rendered::new(StatusCode::OK, Some(body.to_string())),
        Outcome::Built(mut bundle) => {
            // The engine knows no base URL: its links are relative to the base.
            if let Some(links) = bundle.get_mut("link").and_then(Value::as_array_mut) {
                for link in links {
                    if let Some(url) = link.get("url").and_then(Value::as_str)
                        && !url.contains("://")
                    {
                        let absolute = format!("{}/{url}", ctx.base);
                        link["url"] = Value::String(absolute);
                    }
                }
            }
            Rendered::new(StatusCode::OK, Some(bundle.to_string()))
        }
        Outcome::Resource { created, resource } => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let body = match ctx.prefer {
                ReturnPreference::Representation => resource.body.clone(),
                ReturnPreference::Minimal => None,
                ReturnPreference::OperationOutcome => Some(
                    operation_outcome(&[Issue {
                        severity: Severity::Information,
                        code: IssueType::Informational,
                        diagnostics: format!(
                            "{}/{} version {} {}",
                            resource.resource_type,
                            resource.id,
                            resource.version_id,
                            if created { "created" } else { "stored" }
                        ),
                        expression: None,
                    }])
                    .to_string(),
                ),
            };
            Rendered {
                status,
                location: Some(format!(
                    "{}/_history/{}",
                    resource_url(ctx.base, &resource),
                    resource.version_id
                )),
                etag: Some(resource.version_id.etag()),
                last_modified: Some(resource.last_updated),
                body,
            }
        }
        Outcome::Deleted => Rendered::new(StatusCode::NO_CONTENT, None),
        Outcome::Accepted { content_location } => {
            let mut rendered = Rendered::new(
                StatusCode::ACCEPTED,
                Some(
                    operation_outcome(&[Issue::information(
                        IssueType::Informational,
                        format!("accepted: poll {content_location} for the result"),
                    )])
                    .to_string(),
                ),
            );
            rendered.location = Some(content_location);
            rendered
        }
        Outcome::Searchset {
            query,
            page,
            blocked,
        } => searchset(&query, page, blocked, ctx),
        Outcome::History { params, page } => {
            let mut links = vec![link("self", ctx.self_url)];
            if let Some(next) = page.next {
                let mut query = url::form_urlencoded::Serializer::new(String::new());
                query.append_pair("_count", &params.count.to_string());
                if let Some(since) = params.since {
                    query.append_pair("_since", &format_instant(since));
                }
                query.append_pair("_page", &next.0.to_string());
                let path = ctx.self_url.split('?').next().unwrap_or(ctx.self_url);
                links.push(link("next", &format!("{path}?{}", query.finish())));
            }
            let entries = page
                .entries
                .iter()
                .map(|v| history_entry(v, ctx.base))
                .collect();
            bundle("history", Some(page.total), links, entries)
        }
        Outcome::BundleResponse {
            transaction,
            entries,
        } => {
            let entries = entries
                .into_iter()
                .map(|result| {
                    let is_error = result.is_err();
                    let rendered = render(result, ctx);
                    let mut response = json!({ "status": status_line(rendered.status) });
                    if let Some(map) = response.as_object_mut() {
                        if let Some(location) = &rendered.location {
                            map.insert("location".into(), json!(location));
                        }
                        if let Some(etag) = &rendered.etag {
                            map.insert("etag".into(), json!(etag));
                        }
                        if let Some(modified) = rendered.last_modified {
                            map.insert("lastModified".into(), json!(format_instant(modified)));
                        }
                    }
                    let body = rendered.body.as_deref().and_then(raw);
                    if is_error {
                        EntryOut {
                            response: Some(ResponseOut {
                                response,
                                outcome: body,
                            }),
                            ..EntryOut::default()
                        }
                    } else {
                        EntryOut {
                            resource: body,
                            response: Some(ResponseOut {
                                response,
                                outcome: None,
                            }),
                            ..EntryOut::default()
                        }
                    }
                })
                .collect();
            let kind = if transaction {
                "transaction-response"
            } else {
                "batch-response"
            };
            bundle(kind, None, Vec::new(), entries)
        }
    }
}

/// A searchset Bundle: matches, then included resources, then an OperationOutcome naming
/// what was ignored (lenient handling) or saying that a spärr hides data; keyset
/// `next`/`previous` links.
fn searchset(
    query: &SearchQuery,
    page: SearchPage,
    blocked: bool,
    ctx: &RenderContext<'_>,
) -> Rendered {
    let mut links = vec![link("self", ctx.self_url)];
    let cursor_link = |relation: &str, matched: &SearchMatch, backwards: bool| {
        link(
            relation,
            &with_page(ctx.self_url, &matched.cursor(backwards).encode()),
        )
    };
    let backwards = query.page.as_ref().is_some_and(|p| p.backwards);
    let (has_next, has_previous) = match (&query.page, backwards) {
        (None, _) => (page.more, false),
        (Some(_), false) => (page.more, true),
        (Some(_), true) => (true, page.more),
    };
    if let (true, Some(last)) = (has_next, page.matches.last()) {
        links.push(cursor_link("next", last, false));
    }
    if let (true, Some(first)) = (has_previous, page.matches.first()) {
        links.push(cursor_link("previous", first, true));
    }
    let shape = |resource: &StoredResource| -> Option<Box<RawValue>> {
        let body = resource.body.as_deref()?;
        if query.summary == Summary::False && query.elements.is_empty()
            || query.summary == Summary::Count
        {
            return raw(body);
        }
        let mut value: Value = serde_json::from_str(body).ok()?;
        if let Some(map) = value.as_object_mut() {
            subset(resource.resource_type, map, query.summary, &query.elements);
        }
        raw(&value.to_string())
    };
    let mut entries: Vec<EntryOut> = page
        .matches
        .iter()
        .map(|m| EntryOut {
            full_url: Some(resource_url(ctx.base, &m.resource)),
            resource: shape(&m.resource),
            search: Some(json!({"mode": "match"})),
            ..EntryOut::default()
        })
        .collect();
    entries.extend(page.included.iter().map(|resource| EntryOut {
        full_url: Some(resource_url(ctx.base, resource)),
        resource: shape(resource),
        search: Some(json!({"mode": "include"})),
        ..EntryOut::default()
    }));
    let mut issues: Vec<Issue> = query
        .ignored
        .iter()
        .map(|error| Issue {
            severity: Severity::Warning,
            code: IssueType::NotSupported,
            diagnostics: format!("ignored: {error}"),
            expression: Some(error.parameter().to_owned()),
        })
        .collect();
    if blocked {
        issues.push(Issue {
            severity: Severity::Information,
            code: IssueType::Informational,
            diagnostics: "the patient has blocked (spärr) some data from your unit or care provider; it is not shown. Emergency access (X-Purpose-Of-Use: ETREAT with a reason) lifts it and is logged.".into(),
            expression: None,
        });
    }
    if !issues.is_empty() {
        entries.push(EntryOut {
            resource: raw(&operation_outcome(&issues).to_string()),
            search: Some(json!({"mode": "outcome"})),
            ..EntryOut::default()
        });
    }
    bundle("searchset", page.total, links, entries)
}

/// `url` with its `_page` parameter set to `cursor` (others kept as the client sent them).
fn with_page(url: &str, cursor: &str) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("_page="))
        .collect();
    let page = format!("_page={cursor}");
    kept.push(&page);
    format!("{path}?{}", kept.join("&"))
}

fn history_entry(version: &StoredResource, base: &str) -> EntryOut {
    let (method, status) = match (version.is_deleted(), version.version_id.get()) {
        (true, _) => ("DELETE", "204 No Content"),
        (false, 1) => ("POST", "201 Created"),
        (false, _) => ("PUT", "200 OK"),
    };
    let url = match method {
        "POST" => version.resource_type.to_string(),
        _ => format!("{}/{}", version.resource_type, version.id),
    };
    EntryOut {
        full_url: Some(resource_url(base, version)),
        resource: version.body.as_deref().and_then(raw),
        request: Some(json!({"method": method, "url": url})),
        response: Some(ResponseOut {
            response: json!({
                "status": status,
                "etag": version.version_id.etag(),
                "lastModified": format_instant(version.last_updated),
            }),
            outcome: None,
        }),
        ..EntryOut::default()
    }
}

fn status_line(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .trim_end()
    .to_owned()
}

fn raw(text: &str) -> Option<Box<RawValue>> {
    RawValue::from_string(text.to_owned()).ok()
}

fn link(relation: &str, url: &str) -> Value {
    json!({"relation": relation, "url": url})
}

#[derive(Serialize, Default)]
struct EntryOut {
    #[serde(rename = "fullUrl", skip_serializing_if = "Option::is_none")]
    full_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    search: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<ResponseOut>,
}

/// `entry.response`: the status fields plus, for a failed entry, its OperationOutcome.
#[derive(Serialize)]
struct ResponseOut {
    #[serde(flatten)]
    response: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<Box<RawValue>>,
}

#[derive(Serialize)]
struct BundleOut {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    link: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entry: Vec<EntryOut>,
}

fn bundle(
    kind: &'static str,
    total: Option<u64>,
    link: Vec<Value>,
    entry: Vec<EntryOut>,
) -> Rendered {
    let out = BundleOut {
        resource_type: "Bundle",
        kind,
        total,
        link,
        entry,
    };
    Rendered::new(StatusCode::OK, serde_json::to_string(&out).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_header_is_read_among_other_preferences() {
        assert_eq!(
            ReturnPreference::from_header(Some("return=minimal")),
            ReturnPreference::Minimal
        );
        assert_eq!(
            ReturnPreference::from_header(Some("handling=strict, return=OperationOutcome")),
            ReturnPreference::OperationOutcome
        );
        assert_eq!(
            ReturnPreference::from_header(None),
            ReturnPreference::Representation
        );
    }

    #[test]
    fn page_links_replace_the_cursor_and_keep_the_criteria() {
        assert_eq!(
            with_page(
                "http://h/fhir/CareTeam?patient=p1&_page=old&_count=2",
                "new"
            ),
            "http://h/fhir/CareTeam?patient=p1&_count=2&_page=new"
        );
        assert_eq!(
            with_page("http://h/fhir/CareTeam", "c"),
            "http://h/fhir/CareTeam?_page=c"
        );
    }

    #[test]
    fn status_lines_have_reason_phrases() {
        assert_eq!(status_line(StatusCode::CREATED), "201 Created");
        assert_eq!(
            status_line(StatusCode::PRECONDITION_FAILED),
            "412 Precondition Failed"
        );
    }
}
