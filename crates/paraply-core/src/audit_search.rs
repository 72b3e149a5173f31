//! `GET AuditEvent/{id}` and `GET AuditEvent?…` served from the access log's own table:
//! a typed [`SearchQuery`] becomes an [`AccessLogQuery`] ([`log_query`]), each entry found
//! is rendered as the AuditEvent it stands for ([`crate::audit_row::rendered`]), and the
//! answer is an ordinary search page, so links, cursors, `_summary` and `_elements` work
//! as for any type.
//!
//! Only the parameters the log is searched by are served ([`SEARCH_PARAMS`]); any other is
//! refused with a 400 naming them, rather than answered from an index that no longer
//! exists. Each entry is version 1 forever (the log is never updated).

use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::{
    Condition, Filter, ReferenceTarget, SearchQuery, SortField, SortValue, TokenSystem, Total,
};
use paraply_store::{
    AccessLogCondition, AccessLogFilter, AccessLogOrder, AccessLogQuery, AccessLogTerm,
    SearchMatch, SearchPage, Store, StoredResource, TermKey, micros,
};

use crate::access::Access;
use crate::audit::{ACT_REASON, AUDIT_EVENT_TYPE, RESTFUL_INTERACTION};
use crate::audit_row::rendered;
use crate::error::CoreError;

/// The AuditEvent search parameters served, besides `_id` and the result parameters
/// (`_count`, `_sort=date|-date`, `_total`, `_summary`, `_elements`).
pub const SEARCH_PARAMS: &[&str] = &[
    "patient",
    "date",
    "agent",
    "entity",
    "type",
    "subtype",
    "outcome",
    "_security",
];

/// `AuditEvent.outcome`'s code system.
const AUDIT_EVENT_OUTCOME: &str = "http://hl7.org/fhir/audit-event-outcome";

/// Who may act as an `agent.who`: the types an untyped `agent=id` may mean.
const AGENT_TYPES: &[ResourceType] = &[
    ResourceType::PractitionerRole,
    ResourceType::Patient,
    ResourceType::RelatedPerson,
];

fn unsupported(what: &str) -> CoreError {
    CoreError::BadRequest {
        message: format!(
            "{what} is not supported on AuditEvent; its searches are by _id, {} (with _count, \
             _sort=date or -date, _total, _summary and _elements)",
            SEARCH_PARAMS.join(", ")
        ),
        expression: None,
    }
}

/// Refuses `_include`/`_revinclude` from AuditEvent on a search of another type: the log
/// is not in the index they follow.
pub(crate) fn check_includes(query: &SearchQuery) -> Result<(), CoreError> {
    let from_log = (query.include.iter())
        .chain(&query.revinclude)
        .any(|include| include.source_type == ResourceType::AuditEvent);
    if from_log && query.resource_type != ResourceType::AuditEvent {
        return Err(unsupported("_include and _revinclude of AuditEvent"));
    }
    Ok(())
}

/// `query` (an AuditEvent search) as a search of the access log.
pub(crate) fn log_query(query: &SearchQuery) -> Result<AccessLogQuery, CoreError> {
    if !query.include.is_empty() || !query.revinclude.is_empty() {
        return Err(unsupported("_include and _revinclude"));
    }
    let order = match query.sort.as_slice() {
        [] => AccessLogOrder::Appended,
        [key] if matches!(key.field, SortField::Param { name: "date", .. }) => {
            AccessLogOrder::Recorded {
                descending: key.descending,
            }
        }
        _ => return Err(unsupported("this _sort")),
    };
    let filters = query
        .filters
        .iter()
        .map(filter)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AccessLogQuery {
        filters,
        order,
        count: query.count,
        page: query.page.clone(),
        total: query.total == Total::Accurate,
        restriction: query.restriction.clone(),
    })
}

fn filter(filter: &Filter) -> Result<AccessLogFilter, CoreError> {
    if filter.negated {
        return Err(unsupported("the :not modifier"));
    }
    let mut any_of = Vec::with_capacity(filter.any_of.len());
    for condition in &filter.any_of {
        any_of.extend(conditions(condition)?);
    }
    Ok(AccessLogFilter { any_of })
}

/// Whether a token's system is `wanted` or left open.
fn system_is(system: &TokenSystem, wanted: &str) -> bool {
    match system {
        TokenSystem::Any => true,
        TokenSystem::Is(system) => system == wanted,
        TokenSystem::Absent => false,
    }
}

fn term(key: TermKey, value: String) -> AccessLogCondition {
    AccessLogCondition::Term(AccessLogTerm { key, value })
}

/// The alternatives one condition stands for.
fn conditions(condition: &Condition) -> Result<Vec<AccessLogCondition>, CoreError> {
    use AccessLogCondition as C;
    Ok(match condition {
        Condition::Id(id) => vec![C::Id(id.to_string())],
        Condition::Date {
            param: "date",
            prefix,
            range,
        } => vec![C::Recorded {
            prefix: *prefix,
            range: *range,
        }],
        Condition::Token {
            param,
            system,
            code,
        } => {
            let code = code.as_deref();
            vec![match *param {
                "type" if system_is(system, AUDIT_EVENT_TYPE) => match code {
                    None | Some("rest") => C::Always,
                    Some(_) => C::Never,
                },
                "subtype" if system_is(system, RESTFUL_INTERACTION) => match code {
                    None => C::Always,
                    Some(code) => C::Subtype(code.to_owned()),
                },
                "outcome" if system_is(system, AUDIT_EVENT_OUTCOME) => match code {
                    None => C::Always,
                    Some(code) => C::Outcome(code.to_owned()),
                },
                // The only security label an access-log entry carries is ETREAT.
                "_security" if system_is(system, ACT_REASON) => match code {
                    None | Some("ETREAT") => C::Emergency(true),
                    Some(_) => C::Never,
                },
                "type" | "subtype" | "outcome" | "_security" => C::Never,
                other => return Err(unsupported(&format!("the search parameter '{other}'"))),
            }]
        }
        Condition::Reference { param, target } => {
            let ReferenceTarget::Local { target_type, id } = target else {
                return Ok(vec![C::Never]);
            };
            match (*param, target_type) {
                ("patient", None | Some(ResourceType::Patient)) => {
                    vec![term(TermKey::Patient, id.clone())]
                }
                ("patient", Some(_)) => vec![C::Never],
                ("agent", Some(t)) => vec![term(TermKey::Agent, format!("{t}/{id}"))],
                ("agent", None) => AGENT_TYPES
                    .iter()
                    .map(|t| term(TermKey::Agent, format!("{t}/{id}")))
                    .collect(),
                ("entity", Some(t)) => vec![term(TermKey::Entity, format!("{t}/{id}"))],
                ("entity", None) => ResourceType::ALL
                    .iter()
                    .map(|t| term(TermKey::Entity, format!("{t}/{id}")))
                    .collect(),
                (other, _) => {
                    return Err(unsupported(&format!("the search parameter '{other}'")));
                }
            }
        }
        Condition::Date { param, .. }
        | Condition::TokenText { param, .. }
        | Condition::String { param, .. }
        | Condition::Uri { param, .. }
        | Condition::Quantity { param, .. }
        | Condition::Missing { param, .. } => {
            return Err(unsupported(&format!("the search parameter '{param}'")));
        }
        Condition::LastUpdated { .. } => return Err(unsupported("_lastUpdated")),
        Condition::Chain { .. } | Condition::Has { .. } => {
            return Err(unsupported("chained and _has parameters"));
        }
    })
}

/// One page of AuditEvents matching `query` (restricted as the query says).
pub(crate) async fn search(
    store: &dyn Store,
    query: &SearchQuery,
) -> Result<SearchPage, CoreError> {
    let log = log_query(query)?;
    let found = store.search_access_log(&log).await?;
    let sorted = matches!(log.order, AccessLogOrder::Recorded { .. });
    let matches = found
        .rows
        .iter()
        .map(|row| {
            Ok(SearchMatch {
                resource: stored(row.id.clone(), row.recorded, &rendered(row)?)?,
                sort_values: if sorted {
                    vec![SortValue::Int(micros(row.recorded))]
                } else {
                    Vec::new()
                },
                seq: row.seq,
            })
        })
        .collect::<Result<Vec<_>, CoreError>>()?;
    // Like any search: without `_total=accurate` a first page holding every match tells it.
    let total = found.total.or_else(|| {
        (query.total == Total::IfFree && query.page.is_none() && !found.more && query.count > 0)
            .then_some(matches.len() as u64)
    });
    Ok(SearchPage {
        matches,
        included: Vec::new(),
        total,
        more: found.more,
    })
}

fn stored(
    id: ResourceId,
    recorded: time::OffsetDateTime,
    event: &serde_json::Value,
) -> Result<StoredResource, CoreError> {
    Ok(StoredResource {
        resource_type: ResourceType::AuditEvent,
        id,
        version_id: VersionId::FIRST,
        last_updated: recorded,
        body: Some(event.to_string()),
    })
}

/// `AuditEvent/{id}`: 404 if there is no such entry, 403 if the caller may not see it.
pub(crate) async fn read(
    store: &dyn Store,
    id: &ResourceId,
    access: Option<&Access>,
) -> Result<StoredResource, CoreError> {
    let mut query = AccessLogQuery {
        filters: vec![AccessLogFilter {
            any_of: vec![AccessLogCondition::Id(id.to_string())],
        }],
        order: AccessLogOrder::Appended,
        count: 1,
        page: None,
        total: false,
        restriction: None,
    };
    let not_found = || CoreError::NotFound {
        resource_type: ResourceType::AuditEvent,
        id: id.clone(),
    };
    let row = store
        .search_access_log(&query)
        .await?
        .rows
        .pop()
        .ok_or_else(not_found)?;
    if let Some(access) = access
        && let Some(restriction) = access.restriction()
    {
        query.restriction = Some(restriction);
        if store.search_access_log(&query).await?.rows.is_empty() {
            return Err(access.no_access(ResourceType::AuditEvent));
        }
    }
    stored(row.id.clone(), row.recorded, &rendered(&row)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(pairs: &[(&str, &str)]) -> Result<AccessLogQuery, CoreError> {
        log_query(&SearchQuery::parse(ResourceType::AuditEvent, pairs.iter().copied()).unwrap())
    }

    #[test]
    fn the_served_parameters_become_log_conditions_and_others_are_refused() {
        let query = parsed(&[
            ("patient", "Patient/p1"),
            ("outcome", "4"),
            ("subtype", "read,vread"),
            ("type", "rest"),
            (
                "_security",
                "http://terminology.hl7.org/CodeSystem/v3-ActReason|ETREAT",
            ),
            ("date", "ge2026-01-01"),
            ("agent", "PractitionerRole/r1"),
            ("entity", "CarePlan/c1"),
            ("_sort", "-date"),
        ])
        .unwrap();
        assert_eq!(query.filters.len(), 8);
        assert_eq!(query.order, AccessLogOrder::Recorded { descending: true });
        assert_eq!(
            query.filters[0].any_of,
            [term(TermKey::Patient, "p1".into())]
        );
        assert_eq!(query.filters[2].any_of.len(), 2);
        assert_eq!(
            query.filters[4].any_of,
            [AccessLogCondition::Emergency(true)]
        );
        for refused in [
            &[("action", "R")][..],
            &[("_lastUpdated", "ge2026")],
            &[("patient:missing", "true")],
            &[("_sort", "_id")],
            &[("_include", "AuditEvent:agent")],
            &[("patient.identifier", "x|1")],
        ] {
            let Err(CoreError::BadRequest { message, .. }) = parsed(refused) else {
                panic!("{refused:?} is not refused");
            };
            assert!(message.contains("patient, date, agent"), "{message}");
        }
    }
}
