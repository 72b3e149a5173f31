//! A FHIR request in transport-neutral form and its parse into a typed [`Interaction`].
//!
//! The HTTP edge and batch/transaction entries both build a [`FhirRequest`] and call
//! [`Interaction::parse`], so a Bundle entry and the same request sent alone take one path.

use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::{DEFAULT_COUNT, Handling, MAX_COUNT, SearchQuery};
use paraply_store::{HistoryCursor, HistoryScope};
use serde_json::Value;
use time::OffsetDateTime;

use crate::conformance::CONFORMANCE_TYPES;
use crate::error::{CoreError, Method};
use crate::operations::{OperationCall, OperationLevel, OperationRef, Operations};

/// One request: method, the path below the FHIR base, decoded query pairs, the
/// FHIR-relevant headers and the parsed JSON body.
#[derive(Debug, Clone)]
pub struct FhirRequest {
    pub method: Method,
    /// Below the base, without a leading slash: `""`, `Patient`, `Patient/1/_history/2`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub if_match: Option<String>,
    /// `If-None-Exist`: the search criteria of a conditional create, as a query string.
    pub if_none_exist: Option<String>,
    /// `Prefer: handling=lenient`: unknown search parameters are ignored and reported.
    pub handling: Handling,
    /// `Prefer: respond-async`: the client takes a `202` and polls (bulk export).
    pub respond_async: bool,
    pub body: Option<Value>,
}

impl FhirRequest {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        FhirRequest {
            method,
            path: path.into(),
            query: Vec::new(),
            if_match: None,
            if_none_exist: None,
            handling: Handling::Strict,
            respond_async: false,
            body: None,
        }
    }

    /// Builds the request from a Bundle `entry.request.url` (relative, with its query).
    pub fn from_url(method: Method, url: &str) -> Self {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let mut request = FhirRequest::new(method, path.trim_matches('/'));
        request.query = parse_query(query);
        request
    }
}

/// Decodes an `application/x-www-form-urlencoded` query string into pairs.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A history request's parameters.
#[derive(Debug, Clone)]
pub struct HistoryParams {
    pub scope: HistoryScope,
    pub since: Option<OffsetDateTime>,
    pub count: u32,
    pub after: Option<HistoryCursor>,
}

/// The FHIR interaction a request asks for, with its inputs parsed and typed.
#[derive(Debug, Clone)]
pub enum Interaction {
    Capabilities,
    /// A conformance resource the domain publishes (`StructureDefinition/fast-kontakt`).
    ReadConformance {
        resource_type: &'static str,
        id: String,
    },
    /// Every conformance resource of a type (`GET StructureDefinition`).
    ListConformance {
        resource_type: &'static str,
    },
    Read {
        resource_type: ResourceType,
        id: ResourceId,
    },
    VRead {
        resource_type: ResourceType,
        id: ResourceId,
        version_id: VersionId,
    },
    Create {
        resource_type: ResourceType,
        body: Value,
        if_none_exist: Option<SearchQuery>,
    },
    Update {
        resource_type: ResourceType,
        id: ResourceId,
        body: Value,
        if_match: Option<VersionId>,
    },
    ConditionalUpdate {
        query: SearchQuery,
        body: Value,
    },
    Patch {
        resource_type: ResourceType,
        id: ResourceId,
        patch: Value,
        if_match: Option<VersionId>,
    },
    Delete {
        resource_type: ResourceType,
        id: ResourceId,
        if_match: Option<VersionId>,
    },
    ConditionalDelete {
        query: SearchQuery,
    },
    Search {
        query: SearchQuery,
    },
    History(HistoryParams),
    /// An `$operation` from the table.
    Operation {
        operation: OperationRef,
        call: OperationCall,
    },
    /// A batch or transaction Bundle posted to the base.
    Bundle {
        bundle: Value,
    },
}

impl Interaction {
    pub fn parse(request: FhirRequest, operations: &Operations) -> Result<Interaction, CoreError> {
        let FhirRequest {
            method,
            path,
            query,
            if_match,
            if_none_exist,
            handling,
            respond_async,
            body,
        } = request;
        let segments: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        let not_allowed = || CoreError::MethodNotAllowed {
            method,
            path: format!("/{path}"),
        };
        let if_match = if_match
            .map(|etag| {
                VersionId::from_etag(&etag).ok_or_else(|| CoreError::BadRequest {
                    message: format!("If-Match '{etag}' is not a version ETag like W/\"3\""),
                    expression: None,
                })
            })
            .transpose()?;
        let need_body = || {
            body.clone()
                .ok_or_else(|| CoreError::bad_request("this interaction needs a JSON body"))
        };

        if let Some(position) = segments.iter().position(|s| s.starts_with('$')) {
            let mut interaction = operation(
                &segments,
                position,
                method,
                query,
                body,
                operations,
                not_allowed,
            )?;
            if let Interaction::Operation { call, .. } = &mut interaction {
                call.respond_async = respond_async;
            }
            return Ok(interaction);
        }

        if let Some(resource_type) = segments
            .first()
            .and_then(|name| CONFORMANCE_TYPES.iter().copied().find(|t| t == name))
        {
            return match (method, &segments[1..]) {
                (Method::Get, []) => Ok(Interaction::ListConformance { resource_type }),
                (Method::Get, [id]) => Ok(Interaction::ReadConformance {
                    resource_type,
                    id: (*id).to_owned(),
                }),
                (_, [] | [_]) => Err(not_allowed()),
                _ => Err(CoreError::UnknownRoute(format!(
                    "no FHIR interaction at /{path}"
                ))),
            };
        }

        match segments.as_slice() {
            [] => match method {
                Method::Post => Ok(Interaction::Bundle {
                    bundle: need_body()?,
                }),
                _ => Err(not_allowed()),
            },
            ["metadata"] => match method {
                Method::Get => Ok(Interaction::Capabilities),
                _ => Err(not_allowed()),
            },
            ["_history"] => match method {
                Method::Get => history(HistoryScope::System, &query),
                _ => Err(not_allowed()),
            },
            [type_name] => {
                let resource_type = resource_type(type_name)?;
                match method {
                    Method::Get => Ok(Interaction::Search {
                        query: search(resource_type, &query, handling)?,
                    }),
                    Method::Post => Ok(Interaction::Create {
                        resource_type,
                        body: need_body()?,
                        if_none_exist: if_none_exist
                            .map(|criteria| {
                                let pairs = parse_query(&criteria);
                                conditional(resource_type, &pairs)
                            })
                            .transpose()?,
                    }),
                    Method::Put => Ok(Interaction::ConditionalUpdate {
                        query: conditional(resource_type, &query)?,
                        body: need_body()?,
                    }),
                    Method::Delete => Ok(Interaction::ConditionalDelete {
                        query: conditional(resource_type, &query)?,
                    }),
                    Method::Patch => Err(not_allowed()),
                }
            }
            [type_name, "_search"] => {
                let resource_type = resource_type(type_name)?;
                match method {
                    Method::Post => Ok(Interaction::Search {
                        query: search(resource_type, &query, handling)?,
                    }),
                    _ => Err(not_allowed()),
                }
            }
            [type_name, "_history"] => {
                let resource_type = resource_type(type_name)?;
                match method {
                    Method::Get => history(HistoryScope::Type(resource_type), &query),
                    _ => Err(not_allowed()),
                }
            }
            [type_name, id] => {
                let resource_type = resource_type(type_name)?;
                let id = resource_id(id)?;
                match method {
                    Method::Get => Ok(Interaction::Read { resource_type, id }),
                    Method::Put => Ok(Interaction::Update {
                        resource_type,
                        id,
                        body: need_body()?,
                        if_match,
                    }),
                    Method::Patch => Ok(Interaction::Patch {
                        resource_type,
                        id,
                        patch: need_body()?,
                        if_match,
                    }),
                    Method::Delete => Ok(Interaction::Delete {
                        resource_type,
                        id,
                        if_match,
                    }),
                    Method::Post => Err(not_allowed()),
                }
            }
            [type_name, id, "_history"] => {
                let resource_type = resource_type(type_name)?;
                let id = resource_id(id)?;
                match method {
                    Method::Get => history(HistoryScope::Instance(resource_type, id), &query),
                    _ => Err(not_allowed()),
                }
            }
            [type_name, id, "_history", version] => {
                let resource_type = resource_type(type_name)?;
                let id = resource_id(id)?;
                let version_id = version.parse::<VersionId>().map_err(|_| {
                    CoreError::UnknownRoute(format!("'{version}' is not a version id"))
                })?;
                match method {
                    Method::Get => Ok(Interaction::VRead {
                        resource_type,
                        id,
                        version_id,
                    }),
                    _ => Err(not_allowed()),
                }
            }
            _ => Err(CoreError::UnknownRoute(format!(
                "no FHIR interaction at /{path}"
            ))),
        }
    }
}

fn resource_type(name: &str) -> Result<ResourceType, CoreError> {
    name.parse::<ResourceType>()
        .map_err(|e| CoreError::UnknownRoute(e.to_string()))
}

fn resource_id(id: &str) -> Result<ResourceId, CoreError> {
    id.parse::<ResourceId>()
        .map_err(|e| CoreError::UnknownRoute(e.to_string()))
}

fn search(
    resource_type: ResourceType,
    pairs: &[(String, String)],
    handling: Handling,
) -> Result<SearchQuery, CoreError> {
    Ok(SearchQuery::parse_with(
        resource_type,
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        handling,
    )?)
}

/// Criteria of a conditional interaction or reference: a strict search that must name at
/// least one criterion, asking just enough to tell none, one and several apart.
pub fn conditional(
    resource_type: ResourceType,
    pairs: &[(String, String)],
) -> Result<SearchQuery, CoreError> {
    let mut query = search(resource_type, pairs, Handling::Strict)?;
    if query.filters.is_empty() {
        return Err(CoreError::bad_request(
            "a conditional interaction needs search criteria",
        ));
    }
    query.count = 2;
    query.total = paraply_search::Total::Accurate;
    Ok(query)
}

fn history(scope: HistoryScope, pairs: &[(String, String)]) -> Result<Interaction, CoreError> {
    let mut params = HistoryParams {
        scope,
        since: None,
        count: DEFAULT_COUNT,
        after: None,
    };
    for (name, value) in pairs {
        let invalid = |reason: &str| CoreError::BadRequest {
            message: format!("invalid value '{value}' for '{name}': {reason}"),
            expression: Some(name.clone()),
        };
        match name.as_str() {
            "_since" => {
                let since =
                    OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| invalid("expected an instant like 2026-01-31T12:00:00Z"))?;
                params.since = Some(since);
            }
            "_count" => {
                let count = value
                    .parse::<u32>()
                    .map_err(|_| invalid("expected a whole number"))?;
                params.count = count.clamp(1, MAX_COUNT);
            }
            "_page" => {
                let cursor = value
                    .parse::<i64>()
                    .map_err(|_| invalid("expected a page cursor from a next link"))?;
                params.after = Some(HistoryCursor(cursor));
            }
            "_format" | "_pretty" => {}
            other => {
                return Err(CoreError::BadRequest {
                    message: format!("unknown history parameter '{other}'"),
                    expression: Some(other.to_owned()),
                });
            }
        }
    }
    Ok(Interaction::History(params))
}

/// `[base]/$op`, `[base]/Type/$op` or `[base]/Type/id/$op`, looked up in the table.
fn operation(
    segments: &[&str],
    position: usize,
    method: Method,
    params: Vec<(String, String)>,
    body: Option<Value>,
    operations: &Operations,
    not_allowed: impl Fn() -> CoreError,
) -> Result<Interaction, CoreError> {
    let name = &segments[position][1..];
    let conformance_type = CONFORMANCE_TYPES
        .iter()
        .copied()
        .find(|t| *t == segments[0]);
    let (level, resource_type, id) = match (position, segments.len()) {
        (0, 1) => (OperationLevel::System, None, None),
        (2, 3) if let Some(type_name) = conformance_type => (
            OperationLevel::Conformance(type_name),
            None,
            Some(resource_id(segments[1])?),
        ),
        (1, 2) => (
            OperationLevel::Type,
            Some(resource_type(segments[0])?),
            None,
        ),
        (2, 3) => (
            OperationLevel::Instance,
            Some(resource_type(segments[0])?),
            Some(resource_id(segments[1])?),
        ),
        _ => {
            return Err(CoreError::UnknownRoute(format!(
                "no FHIR interaction at /{}",
                segments.join("/")
            )));
        }
    };
    let operation = operations
        .find(name, level, resource_type)
        .ok_or_else(|| CoreError::UnsupportedOperation(name.to_owned()))?;
    if !operation.definition().methods.contains(&method) {
        return Err(not_allowed());
    }
    Ok(Interaction::Operation {
        operation,
        call: OperationCall {
            resource_type,
            id,
            params,
            body,
            respond_async: false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: Method, url: &str) -> Result<Interaction, CoreError> {
        let mut request = FhirRequest::from_url(method, url);
        request.body = Some(serde_json::json!({"resourceType": "Patient"}));
        Interaction::parse(request, &Operations::with(Vec::new()))
    }

    #[test]
    fn paths_parse_into_interactions() {
        assert!(matches!(
            parse(Method::Get, "Patient/1"),
            Ok(Interaction::Read { .. })
        ));
        assert!(matches!(
            parse(Method::Get, "Patient/1/_history/2"),
            Ok(Interaction::VRead { .. })
        ));
        assert!(matches!(
            parse(Method::Get, "Patient/1/_history"),
            Ok(Interaction::History(_))
        ));
        assert!(matches!(
            parse(Method::Get, "_history?_count=5"),
            Ok(Interaction::History(_))
        ));
        assert!(matches!(
            parse(Method::Put, "Patient?identifier=a|b"),
            Ok(Interaction::ConditionalUpdate { .. })
        ));
        assert!(matches!(
            parse(Method::Delete, "Patient?identifier=a|b"),
            Ok(Interaction::ConditionalDelete { .. })
        ));
        assert!(matches!(
            parse(Method::Post, ""),
            Ok(Interaction::Bundle { .. })
        ));
        assert!(matches!(
            parse(Method::Get, "metadata"),
            Ok(Interaction::Capabilities)
        ));
    }

    #[test]
    fn operations_are_looked_up_in_the_table_by_name_level_and_type() {
        match parse(Method::Get, "Patient/p1/$access-log?_count=5") {
            Ok(Interaction::Operation { operation, call }) => {
                assert_eq!(operation.definition().name, "access-log");
                assert_eq!(call.id.as_ref().map(ResourceId::as_str), Some("p1"));
                assert_eq!(call.param("_count"), Some("5"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(Method::Post, "CarePlan/$validate"),
            Ok(Interaction::Operation { .. })
        ));
        assert!(matches!(
            parse(Method::Post, "Patient/p1/$access-log"),
            Err(CoreError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            parse(Method::Get, "CarePlan/p1/$access-log"),
            Err(CoreError::UnsupportedOperation(_))
        ));
        assert!(matches!(
            parse(Method::Get, "Patient/p1/$access-log/more"),
            Err(CoreError::UnknownRoute(_))
        ));
    }

    #[test]
    fn wrong_method_unknown_type_and_operations_are_refused() {
        assert!(matches!(
            parse(Method::Post, "Patient/1"),
            Err(CoreError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            parse(Method::Get, "Observation/1"),
            Err(CoreError::UnknownRoute(_))
        ));
        assert!(matches!(
            parse(Method::Post, "ValueSet/$lookup"),
            Err(CoreError::UnknownRoute(_))
        ));
        assert!(matches!(
            parse(Method::Get, "Patient/1/$everything"),
            Err(CoreError::UnsupportedOperation(_))
        ));
        assert!(matches!(
            parse(Method::Delete, "Patient"),
            Err(CoreError::BadRequest { .. })
        ));
    }
}
