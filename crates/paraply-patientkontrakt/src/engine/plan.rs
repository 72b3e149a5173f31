//! `GET [base]/Patient/{id}/$patientkontrakt`: the unified plan as a `document` Bundle
//! (DOMAIN.md §5), read under the caller's access rules and logged as one access.

use std::collections::HashSet;

use async_trait::async_trait;
use paraply_auth::Permission;
use paraply_core::{
    Audience, CoreError, Method, Operation, OperationAudit, OperationCall, OperationContext,
    OperationDef, OperationLevel, Outcome,
};
use paraply_fhir::{ResourceId, ResourceType};
use paraply_search::SearchQuery;
use serde_json::Value;
use time::format_description::well_known::Iso8601;
use time::{Date, Duration, OffsetDateTime, Time};

use super::{parse, query, split_reference};
use crate::unified_plan::{self, PlanInput};

/// The appointment window when none is asked for: from now, half a year ahead.
const DEFAULT_WINDOW_DAYS: i64 = 180;

/// Rounds of following references into the directory (a CareTeam names a PractitionerRole,
/// which names its Practitioner and unit, whose `partOf` names the huvudman).
const DIRECTORY_ROUNDS: usize = 4;

/// What the document is made of, by the search that finds a patient's resources of it.
const PATIENT_TYPES: &[ResourceType] = &[
    ResourceType::CarePlan,
    ResourceType::CareTeam,
    ResourceType::Goal,
    ResourceType::Appointment,
    ResourceType::AppointmentResponse,
    ResourceType::Task,
    ResourceType::Consent,
    ResourceType::RelatedPerson,
    ResourceType::Communication,
];

pub(super) struct PatientkontraktOperation;

static DEFINITION: OperationDef = OperationDef {
    name: "patientkontrakt",
    level: OperationLevel::Instance,
    resource_types: &[ResourceType::Patient],
    methods: &[Method::Get],
    definition: "https://paraply.se/fhir/OperationDefinition/patientkontrakt",
    documentation: "The unified plan: a document Bundle whose Composition has the sections överenskommelse, fasta kontakter, överenskomna tider, planer, SIP, närstående and kontaktvägar. Parameters start and end (dates) bound the appointments shown (default today to +180 days); the audience comes from the token.",
    permission: (Some(ResourceType::Patient), Permission::Read),
    audit: OperationAudit::PatientData,
};

#[async_trait]
impl Operation for PatientkontraktOperation {
    fn definition(&self) -> &OperationDef {
        &DEFINITION
    }

    async fn run(
        &self,
        call: OperationCall,
        context: &mut OperationContext<'_>,
    ) -> Result<Outcome, CoreError> {
        call.only_params("patientkontrakt", &["start", "end"])?;
        let now = OffsetDateTime::now_utc();
        let start = date_param(&call, "start")?.unwrap_or(now);
        let end = date_param(&call, "end")?
            .map(|end| end + Duration::days(1))
            .unwrap_or(now + Duration::days(DEFAULT_WINDOW_DAYS));
        if end <= start {
            return Err(CoreError::BadRequest {
                message: "'end' must not be before 'start'".into(),
                expression: Some("end".into()),
            });
        }
        let patient_id = call
            .id
            .ok_or_else(|| CoreError::UnknownRoute("$patientkontrakt needs a Patient".into()))?;
        let patient = context
            .read_visible(ResourceType::Patient, &patient_id)
            .await?;
        let patient = parse(patient.body.as_deref().unwrap_or("{}"))?;

        let reference = format!("Patient/{patient_id}");
        let mut resources = Vec::new();
        for resource_type in PATIENT_TYPES {
            resources
                .extend(all(context, query(*resource_type, &[("patient", &reference)])?).await?);
        }
        let directory = directory(context, &resources).await?;
        let audience = match context.audience() {
            Audience::Patient => unified_plan::Audience::Patient,
            Audience::Relative => unified_plan::Audience::Relative,
            Audience::Staff | Audience::System => unified_plan::Audience::Staff,
        };
        let document_id = ResourceId::generate();
        let bundle = unified_plan::document(&PlanInput {
            base: context.base_url(),
            patient: &patient,
            resources: &resources,
            directory: &directory,
            period: (start, end),
            audience,
            now,
            document_id: document_id.as_str(),
        });
        Ok(Outcome::Built(bundle))
    }
}

/// A `start`/`end` date parameter (`2027-01-31`), as the start of that day in UTC.
fn date_param(call: &OperationCall, name: &str) -> Result<Option<OffsetDateTime>, CoreError> {
    call.param(name)
        .map(|value| {
            Date::parse(value, &Iso8601::DATE)
                .map(|date| date.with_time(Time::MIDNIGHT).assume_utc())
                .map_err(|_| CoreError::BadRequest {
                    message: format!("'{value}' is not a date like 2027-01-31"),
                    expression: Some(name.to_owned()),
                })
        })
        .transpose()
}

/// The PractitionerRoles, Practitioners, Organizations, Locations and HealthcareServices the
/// document names, found a type at a time by `_id` (a few searches per round, not one read
/// per reference), as far as the caller may see them.
async fn directory(
    context: &mut OperationContext<'_>,
    resources: &[Value],
) -> Result<Vec<Value>, CoreError> {
    let mut directory: Vec<Value> = Vec::new();
    let mut asked: HashSet<String> = HashSet::new();
    let mut wanted = unified_plan::directory_references(resources);
    for _ in 0..DIRECTORY_ROUNDS {
        wanted.retain(|reference| asked.insert(reference.clone()));
        if wanted.is_empty() {
            break;
        }
        let mut by_type: Vec<(ResourceType, Vec<String>)> = Vec::new();
        for reference in &wanted {
            if let Some((resource_type, id)) = split_reference(reference) {
                match by_type.iter_mut().find(|(t, _)| *t == resource_type) {
                    Some((_, ids)) => ids.push(id.to_string()),
                    None => by_type.push((resource_type, vec![id.to_string()])),
                }
            }
        }
        let mut found = Vec::new();
        for (resource_type, ids) in by_type {
            for chunk in ids.chunks(100) {
                let list = chunk.join(",");
                found.extend(all(context, query(resource_type, &[("_id", &list)])?).await?);
            }
        }
        wanted = unified_plan::directory_references(&found);
        directory.extend(found);
    }
    Ok(directory)
}

/// Every match the caller may see, page after page.
async fn all(
    context: &mut OperationContext<'_>,
    mut query: SearchQuery,
) -> Result<Vec<Value>, CoreError> {
    let mut found = Vec::new();
    loop {
        let page = context.search(query.clone()).await?;
        for m in &page.matches {
            if let Some(body) = m.resource.body.as_deref() {
                found.push(parse(body)?);
            }
        }
        match (page.more, page.matches.last()) {
            (true, Some(last)) => query.page = Some(last.cursor(false)),
            _ => return Ok(found),
        }
    }
}
