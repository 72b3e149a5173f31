//! What an export asks for: the kick-off's parameters parsed once into an [`ExportSpec`]
//! (stored with the job as JSON), and refused with 400 when they make no sense.

use paraply_core::CoreError;
use paraply_core::parse_query;
use paraply_fhir::{ResourceId, ResourceType};
use paraply_search::{PatientLink, SearchQuery, patient_link};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The `_outputFormat` values accepted: NDJSON is the only format written.
const OUTPUT_FORMATS: &[&str] = &["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// The kick-off parameters `$export` knows.
pub(crate) const PARAMETERS: &[&str] = &["_outputFormat", "_type", "_since", "_typeFilter"];

/// Where the export was kicked off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "level", rename_all = "lowercase")]
pub(crate) enum Level {
    /// `[base]/$export`: every exportable type.
    System,
    /// `[base]/Patient/$export`: the compartments of every patient.
    Patient,
    /// `[base]/Group/{id}/$export`: the compartments of the group's member patients.
    Group { id: String },
}

/// One `_typeFilter`: a search of one type, in the search grammar's own query form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TypeFilter {
    pub resource_type: String,
    pub query: String,
}

/// An export as asked for, kept with its job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExportSpec {
    #[serde(flatten)]
    pub level: Level,
    /// The kick-off URL, for the manifest's `request`.
    pub request: String,
    /// The types exported, in the order of their files.
    pub types: Vec<String>,
    /// RFC 3339; only resources changed after it.
    pub since: Option<String>,
    pub type_filters: Vec<TypeFilter>,
    /// The kick-off's access-log entry, appended when the job is done with the counts
    /// (`paraply_core::DeferredAudit` as text); `None` without logins.
    #[serde(default)]
    pub audit: Option<String>,
}

impl ExportSpec {
    pub(crate) fn resource_types(&self) -> Vec<ResourceType> {
        self.types.iter().filter_map(|t| t.parse().ok()).collect()
    }

    pub(crate) fn since(&self) -> Option<OffsetDateTime> {
        self.since
            .as_deref()
            .and_then(|since| OffsetDateTime::parse(since, &Rfc3339).ok())
    }

    /// The filters of `resource_type` as query pairs (OR'ed: a resource matching any is
    /// exported), checked at the kick-off.
    pub(crate) fn filters_of(&self, resource_type: ResourceType) -> Vec<Vec<(String, String)>> {
        self.type_filters
            .iter()
            .filter(|f| f.resource_type == resource_type.as_str())
            .map(|f| parse_query(&f.query))
            .collect()
    }

    /// The group whose members' compartments are exported.
    pub(crate) fn group(&self) -> Option<ResourceId> {
        match &self.level {
            Level::Group { id } => id.parse().ok(),
            Level::System | Level::Patient => None,
        }
    }
}

/// Whether `resource_type` may be exported at all: the access log is searched, not
/// exported, and a Subscription carries its subscriber's credentials, never shown.
pub(crate) fn exportable(resource_type: ResourceType) -> bool {
    !matches!(
        resource_type,
        ResourceType::AuditEvent | ResourceType::Subscription
    )
}

/// Whether `resource_type` belongs to a patient's compartment (Patient and Group level).
pub(crate) fn in_compartment(resource_type: ResourceType) -> bool {
    patient_link(resource_type) != PatientLink::None
}

fn bad(parameter: &str, message: String) -> CoreError {
    CoreError::BadRequest {
        message,
        expression: Some(parameter.to_owned()),
    }
}

/// `pairs` as a search of `resource_type`.
pub(crate) fn search(
    resource_type: ResourceType,
    pairs: &[(String, String)],
) -> Result<SearchQuery, CoreError> {
    SearchQuery::parse(
        resource_type,
        pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())),
    )
    .map_err(CoreError::from)
}

/// Parses the kick-off parameters of an export at `level`. `may_read` says which types the
/// caller's scopes allow: asked for explicitly, another type is refused (403); by default
/// the export holds the allowed ones.
pub(crate) fn parse(
    level: Level,
    request: String,
    params: &[(String, String)],
    may_read: impl Fn(ResourceType) -> bool,
) -> Result<ExportSpec, CoreError> {
    let values = |name: &str| -> Vec<&str> {
        params
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for format in values("_outputFormat") {
        if !OUTPUT_FORMATS.contains(&format) {
            return Err(bad(
                "_outputFormat",
                format!(
                    "_outputFormat '{format}' is not offered: files are NDJSON ({})",
                    OUTPUT_FORMATS.join(", ")
                ),
            ));
        }
    }
    let level_allows = |t: ResourceType| match level {
        Level::System => true,
        Level::Patient | Level::Group { .. } => in_compartment(t),
    };
    let asked: Vec<&str> = values("_type")
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let types: Vec<ResourceType> = if asked.is_empty() {
        ResourceType::ALL
            .iter()
            .copied()
            .filter(|t| exportable(*t) && level_allows(*t) && may_read(*t))
            .collect()
    } else {
        let mut types = Vec::new();
        for name in asked {
            let resource_type: ResourceType = name
                .parse()
                .ok()
                .filter(|t| exportable(*t))
                .ok_or_else(|| bad("_type", format!("'{name}' is not a type Paraply exports")))?;
            if !level_allows(resource_type) {
                return Err(bad(
                    "_type",
                    format!("{name} is not in a patient's compartment"),
                ));
            }
            if !may_read(resource_type) {
                return Err(CoreError::Forbidden {
                    reason: format!("the token's scopes do not allow reading {name}"),
                });
            }
            if !types.contains(&resource_type) {
                types.push(resource_type);
            }
        }
        types
    };
    if types.is_empty() {
        return Err(CoreError::Forbidden {
            reason: "the token's scopes allow reading no type this export holds".into(),
        });
    }
    let since = match values("_since").last() {
        None => None,
        Some(text) => {
            let instant = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                bad(
                    "_since",
                    format!("_since '{text}' is not an instant like 2026-01-31T12:00:00Z"),
                )
            })?;
            Some(
                instant
                    .format(&Rfc3339)
                    .map_err(|_| bad("_since", format!("_since '{text}' is out of range")))?,
            )
        }
    };
    let mut type_filters = Vec::new();
    for filter in values("_typeFilter") {
        let (name, query) = filter.split_once('?').ok_or_else(|| {
            bad(
                "_typeFilter",
                format!("_typeFilter '{filter}' is not a search like Type?param=value"),
            )
        })?;
        let resource_type: ResourceType = name
            .parse()
            .ok()
            .filter(|t| types.contains(t))
            .ok_or_else(|| {
                bad(
                    "_typeFilter",
                    format!("_typeFilter names {name}, which this export does not hold"),
                )
            })?;
        search(resource_type, &parse_query(query)).map_err(|error| {
            bad(
                "_typeFilter",
                format!("_typeFilter '{filter}' is not a valid search: {error}"),
            )
        })?;
        type_filters.push(TypeFilter {
            resource_type: name.to_owned(),
            query: query.to_owned(),
        });
    }
    Ok(ExportSpec {
        level,
        request,
        types: types.iter().map(|t| t.as_str().to_owned()).collect(),
        since,
        type_filters,
        audit: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn system(pairs: &[(&str, &str)]) -> Result<ExportSpec, CoreError> {
        parse(Level::System, "r".into(), &params(pairs), |_| true)
    }

    #[test]
    fn without_type_every_exportable_type_the_scopes_allow_is_exported() {
        let spec = parse(Level::System, "r".into(), &[], |t| t != ResourceType::Goal)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(spec.types.contains(&"Patient".to_owned()));
        assert!(!spec.types.contains(&"Goal".to_owned()));
        assert!(!spec.types.contains(&"AuditEvent".to_owned()));
        assert!(!spec.types.contains(&"Subscription".to_owned()));
    }

    #[test]
    fn patient_level_holds_only_compartment_types() {
        let spec =
            parse(Level::Patient, "r".into(), &[], |_| true).unwrap_or_else(|e| panic!("{e}"));
        assert!(spec.types.contains(&"CarePlan".to_owned()));
        assert!(!spec.types.contains(&"Organization".to_owned()));
        let refused = parse(
            Level::Patient,
            "r".into(),
            &params(&[("_type", "Organization")]),
            |_| true,
        );
        assert!(matches!(refused, Err(CoreError::BadRequest { .. })));
    }

    #[test]
    fn type_since_and_filters_are_parsed_and_kept() {
        let spec = system(&[
            ("_type", "Patient,CarePlan"),
            ("_since", "2026-01-31T12:00:00+01:00"),
            ("_typeFilter", "CarePlan?status=active"),
            ("_outputFormat", "application/fhir+ndjson"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.types, ["Patient", "CarePlan"]);
        assert_eq!(spec.since.as_deref(), Some("2026-01-31T12:00:00+01:00"));
        assert_eq!(spec.filters_of(ResourceType::CarePlan).len(), 1);
        assert!(spec.filters_of(ResourceType::Patient).is_empty());
    }

    #[test]
    fn nonsense_is_refused_with_400() {
        for pairs in [
            &[("_type", "Nonsense")][..],
            &[("_type", "AuditEvent")],
            &[("_since", "yesterday")],
            &[("_outputFormat", "application/fhir+json")],
            &[("_typeFilter", "CarePlan?nonsense=1")],
            &[("_typeFilter", "status=active")],
            &[
                ("_type", "Patient"),
                ("_typeFilter", "CarePlan?status=active"),
            ],
        ] {
            assert!(
                matches!(
                    system(pairs),
                    Err(CoreError::BadRequest { .. }) | Err(CoreError::Search(_))
                ),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn a_type_the_scopes_do_not_allow_is_refused_with_403() {
        let refused = parse(
            Level::System,
            "r".into(),
            &params(&[("_type", "Goal")]),
            |t| t != ResourceType::Goal,
        );
        assert!(matches!(refused, Err(CoreError::Forbidden { .. })));
    }
}
