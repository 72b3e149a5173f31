//! `GET [base]/Measure/{id}/$evaluate-measure`: the follow-up measures M1–M4
//! (`crate::followup`) over the facts as they stood at the end of the period.
//!
//! A summary report carries counts only, masked below `[patientkontrakt]
//! followup_min_cell`, for staff and system clients. A subject list names patients: it
//! keeps only those the caller may see (a care relationship, as for any search), and the
//! access log records the call as an access to each of them.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use futures::TryStreamExt;
use paraply_auth::Permission;
use paraply_core::{
    Audience, CoreError, Method, Operation, OperationAudit, OperationCall, OperationContext,
    OperationDef, OperationLevel, Outcome,
};
use paraply_fhir::{HSA_ID, ResourceId, ResourceType};
use paraply_store::StoredResource;
use serde_json::Value;
use time::OffsetDateTime;

use super::{query, split_reference};
use crate::followup::{
    APPOINTMENT_FACT, AppointmentFact, Evaluation, MeasureId, PATIENT_FACT, PatientFact, Period,
    period_bound,
};
use crate::json::{list, text};

/// How many ids one `_id` search names.
const IDS_PER_SEARCH: usize = 100;

pub(super) struct EvaluateMeasureOperation {
    pub(super) min_cell: u64,
}

static DEFINITION: OperationDef = OperationDef {
    name: "evaluate-measure",
    level: OperationLevel::Conformance("Measure"),
    resource_types: &[],
    methods: &[Method::Get],
    definition: "https://paraply.se/fhir/OperationDefinition/evaluate-measure",
    documentation: "Evaluates follow-up measure m1–m4 for periodStart–periodEnd (dates, or dateTimes to pin an instant) as the data stood at the period's end: reportType population (default: counts, masked below the small-cell threshold) or subject-list (the patients of each population the caller has a care relationship with); unit=Organization/{id} keeps the patients listed at that unit.",
    permission: (Some(ResourceType::CarePlan), Permission::Search),
    audit: OperationAudit::PatientData,
};

#[async_trait]
impl Operation for EvaluateMeasureOperation {
    fn definition(&self) -> &OperationDef {
        &DEFINITION
    }

    async fn run(
        &self,
        call: OperationCall,
        context: &mut OperationContext<'_>,
    ) -> Result<Outcome, CoreError> {
        call.only_params(
            "evaluate-measure",
            &["periodStart", "periodEnd", "reportType", "unit"],
        )?;
        if matches!(context.audience(), Audience::Patient | Audience::Relative) {
            return Err(CoreError::Forbidden {
                reason: "follow-up reports are for staff and system clients".into(),
            });
        }
        let id = call
            .id
            .as_ref()
            .ok_or_else(|| CoreError::bad_request("$evaluate-measure is invoked on a Measure"))?;
        let measure = MeasureId::from_id(id.as_str()).ok_or_else(|| CoreError::BadRequest {
            message: format!("no follow-up measure '{id}' (m1, m2, m3, m4)"),
            expression: None,
        })?;
        let period = Period {
            start: bound(&call, "periodStart", false)?,
            end: bound(&call, "periodEnd", true)?,
        };
        if period.start > period.end {
            return Err(CoreError::BadRequest {
                message: "periodStart is after periodEnd".into(),
                expression: Some("periodStart".into()),
            });
        }
        let subject_list = match call.param("reportType") {
            None | Some("population") => false,
            Some("subject-list") if measure.needs_appointments() => {
                return Err(CoreError::BadRequest {
                    message: "m4 counts plans, meetings and appointments: it has no subject list"
                        .into(),
                    expression: Some("reportType".into()),
                });
            }
            Some("subject-list") => true,
            Some(other) => {
                return Err(CoreError::BadRequest {
                    message: format!(
                        "reportType '{other}' is not supported (population, subject-list)"
                    ),
                    expression: Some("reportType".into()),
                });
            }
        };
        let unit = call
            .param("unit")
            .map(|u| {
                let reference = if u.contains('/') {
                    u.to_owned()
                } else {
                    format!("Organization/{u}")
                };
                match split_reference(&reference) {
                    Some((ResourceType::Organization, _)) => Ok(reference),
                    _ => Err(CoreError::BadRequest {
                        message: format!("unit '{u}' is not an Organization reference"),
                        expression: Some("unit".into()),
                    }),
                }
            })
            .transpose()?;

        let mut evaluation = Evaluation::new(measure, period, unit, subject_list);
        let mut patients = context.facts_at(PATIENT_FACT, period.end);
        while let Some(page) = patients.try_next().await? {
            for body in page.bodies() {
                if let Some(fact) = decode::<PatientFact>(body)? {
                    evaluation.add_patient(&fact);
                }
            }
        }
        drop(patients);
        if measure.needs_appointments() {
            let mut appointments = context.facts_at(APPOINTMENT_FACT, period.end);
            while let Some(page) = appointments.try_next().await? {
                for body in page.bodies() {
                    if let Some(fact) = decode::<AppointmentFact>(body)? {
                        evaluation.add_appointment(&fact);
                    }
                }
            }
        }
        let names = names(context, evaluation.organizations()).await?;
        let now = OffsetDateTime::now_utc();
        if !subject_list {
            return Ok(Outcome::Built(evaluation.report(
                &names,
                self.min_cell,
                now,
            )));
        }
        let visible = visible(context, evaluation.subjects()).await?;
        evaluation.keep_subjects(&visible);
        let patients = visible
            .iter()
            .filter_map(|id| id.parse::<ResourceId>().ok())
            .collect();
        Ok(Outcome::BuiltFrom {
            body: evaluation.report(&names, self.min_cell, now),
            patients,
        })
    }
}

fn bound(call: &OperationCall, name: &str, end: bool) -> Result<OffsetDateTime, CoreError> {
    let value = call.param(name).ok_or_else(|| CoreError::BadRequest {
        message: format!("$evaluate-measure needs {name}"),
        expression: Some(name.to_owned()),
    })?;
    period_bound(value, end).ok_or_else(|| CoreError::BadRequest {
        message: format!("{name} '{value}' is not a date (YYYY, YYYY-MM, YYYY-MM-DD) or dateTime"),
        expression: Some(name.to_owned()),
    })
}

/// A fact's body; `null` is a subject that no longer exists.
fn decode<T: serde::de::DeserializeOwned>(body: &str) -> Result<Option<T>, CoreError> {
    serde_json::from_str(body).map_err(|e| {
        CoreError::Store(paraply_store::StoreError::Corrupt(format!(
            "a follow-up fact is not readable: {e}"
        )))
    })
}

/// Each Organization's name and HSA-id, for the strata.
async fn names(
    context: &mut OperationContext<'_>,
    organizations: BTreeSet<String>,
) -> Result<HashMap<String, (String, Option<String>)>, CoreError> {
    let ids = organizations
        .iter()
        .filter_map(|reference| match split_reference(reference) {
            Some((ResourceType::Organization, id)) => Some(id.to_string()),
            _ => None,
        });
    let mut names = HashMap::new();
    for stored in search_ids(context, ResourceType::Organization, ids).await? {
        let Some(body) = stored.body.as_deref() else {
            continue;
        };
        let organization: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let reference = format!("Organization/{}", stored.id);
        let name = text(&organization, "name")
            .unwrap_or(reference.as_str())
            .to_owned();
        let hsa = list(&organization, "identifier")
            .iter()
            .find(|i| text(i, "system") == Some(HSA_ID))
            .and_then(|i| text(i, "value"))
            .map(str::to_owned);
        names.insert(reference, (name, hsa));
    }
    Ok(names)
}

/// The patients of `subjects` the caller may see, by searches under their restriction.
async fn visible(
    context: &mut OperationContext<'_>,
    subjects: BTreeSet<String>,
) -> Result<BTreeSet<String>, CoreError> {
    Ok(
        search_ids(context, ResourceType::Patient, subjects.into_iter())
            .await?
            .into_iter()
            .map(|stored| stored.id.to_string())
            .collect(),
    )
}

/// The resources of `resource_type` with these ids that the caller may see: `_id` searches
/// under their restriction, [`IDS_PER_SEARCH`] ids at a time.
async fn search_ids(
    context: &mut OperationContext<'_>,
    resource_type: ResourceType,
    ids: impl Iterator<Item = String>,
) -> Result<Vec<StoredResource>, CoreError> {
    let ids: Vec<String> = ids.collect();
    let mut found = Vec::new();
    for chunk in ids.chunks(IDS_PER_SEARCH) {
        let ids = chunk.join(",");
        let page = context
            .search(query(resource_type, &[("_id", ids.as_str())])?)
            .await?;
        found.extend(page.matches.into_iter().map(|m| m.resource));
    }
    Ok(found)
}
