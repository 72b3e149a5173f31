//! What the access log records of an access (I15): the [`AccessSummary`] of an interaction
//! before it runs, and the [`AuditRecord`] of the caller's access, a refused login or a
//! caller no record matches.

use paraply_auth::Principal;
use paraply_fhir::{ResourceId, ResourceType};
use paraply_search::{PatientLink, patient_link};
use paraply_store::HistoryScope;
use serde_json::Value;

use crate::access::{Access, Subject};
use crate::audit::{AuditAction, AuditAgent, AuditOutcome, AuditRecord};
use crate::context::{Purpose, RequestContext};
use crate::error::CoreError;
use crate::operations::OperationAudit;
use crate::request::{FhirRequest, Interaction};
use crate::stamp::now;
use crate::tags::{patients_of, patients_of_body, patients_of_value};

impl Access {
    /// The AuditEvent of one access by this caller.
    pub fn record(
        &self,
        summary: &AccessSummary,
        error: Option<&CoreError>,
        patients: Vec<ResourceId>,
    ) -> AuditRecord {
        AuditRecord {
            recorded: now(),
            action: summary.action,
            agent: agent_of(&self.principal, Some(&self.subject)),
            issuer: self.principal.issuer().to_owned(),
            purpose: self.purpose.clone(),
            outcome: audit_outcome(error),
            patients,
            entity: summary.entity.clone(),
            query: if summary.search {
                self.query.clone()
            } else {
                None
            },
            detail: Vec::new(),
            request_id: self.request_id.clone(),
        }
    }
}

fn audit_outcome(error: Option<&CoreError>) -> AuditOutcome {
    match error {
        None => AuditOutcome::Success,
        Some(CoreError::Forbidden { reason }) => AuditOutcome::Denied {
            reason: reason.clone(),
        },
        Some(other) => AuditOutcome::Failed {
            reason: other.to_string(),
        },
    }
}

/// The AuditEvent of a caller whose token is valid but whom no record matches.
pub(crate) fn unresolved_record(
    context: &RequestContext,
    principal: &Principal,
    interaction: &Interaction,
    error: &CoreError,
) -> AuditRecord {
    let summary = AccessSummary::of(interaction);
    AuditRecord {
        recorded: now(),
        action: summary
            .as_ref()
            .map_or(AuditAction::Operation, |s| s.action),
        agent: agent_of(principal, None),
        issuer: principal.issuer().to_owned(),
        purpose: context.purpose.clone(),
        outcome: audit_outcome(Some(error)),
        patients: summary.map(|s| s.patients).unwrap_or_default(),
        entity: None,
        query: None,
        detail: Vec::new(),
        request_id: context.request_id.clone(),
    }
}

/// The AuditEvent of a request refused before anyone was identified.
pub(crate) fn refused_login_record(request_id: &str, reason: &str) -> AuditRecord {
    AuditRecord {
        recorded: now(),
        action: AuditAction::Operation,
        agent: AuditAgent::Unauthenticated,
        issuer: String::new(),
        purpose: Purpose::Treatment,
        outcome: AuditOutcome::Denied {
            reason: reason.to_owned(),
        },
        patients: Vec::new(),
        entity: None,
        query: None,
        detail: Vec::new(),
        request_id: request_id.to_owned(),
    }
}

/// The agent of the access log.
fn agent_of(principal: &Principal, subject: Option<&Subject>) -> AuditAgent {
    {
        match (principal, subject) {
            (
                Principal::Staff {
                    hsa_id,
                    unit_hsa_id,
                    care_provider_hsa_id,
                    ..
                },
                subject,
            ) => AuditAgent::Staff {
                hsa_id: hsa_id.clone(),
                unit_hsa_id: unit_hsa_id.clone(),
                care_provider_hsa_id: care_provider_hsa_id.clone(),
                practitioner_role: match subject {
                    Some(Subject::Staff(staff)) => Some(staff.role.clone()),
                    _ => None,
                },
            },
            (Principal::Citizen { .. }, Some(Subject::Patient { patient })) => {
                AuditAgent::Citizen {
                    reference: Some(format!("Patient/{patient}")),
                }
            }
            (Principal::Citizen { .. }, Some(Subject::Relative { related_persons })) => {
                AuditAgent::Citizen {
                    reference: related_persons
                        .first()
                        .map(|id| format!("RelatedPerson/{id}")),
                }
            }
            (Principal::Citizen { .. }, _) => AuditAgent::Citizen { reference: None },
            (Principal::System { client_id, .. }, _) => AuditAgent::System {
                client_id: client_id.clone(),
            },
        }
    }
}

/// What the access log needs to know of an interaction before it runs.
#[derive(Debug, Clone)]
pub(crate) struct AccessSummary {
    pub action: AuditAction,
    pub entity: Option<(ResourceType, ResourceId)>,
    /// Patients known from the request itself: a written body's, `$access-log`'s.
    pub patients: Vec<ResourceId>,
    /// Whether the request's query string belongs in the log (a search).
    pub search: bool,
}

impl AccessSummary {
    /// `None` for interactions that touch no patient data (capabilities, directories).
    pub fn of(interaction: &Interaction) -> Option<AccessSummary> {
        let patient_data = |t: ResourceType| patient_link(t) != PatientLink::None;
        let summary = |action, entity: Option<(ResourceType, ResourceId)>| AccessSummary {
            action,
            entity,
            patients: Vec::new(),
            search: false,
        };
        // A Patient not yet written has no id to name; other bodies name their patient.
        let with_body =
            |action, resource_type: ResourceType, id: Option<&ResourceId>, body: &Value| {
                AccessSummary {
                    action,
                    entity: id.map(|id| (resource_type, id.clone())),
                    patients: id
                        .map(|id| patients_of_value(resource_type, id, body))
                        .unwrap_or_else(|| patients_of_body(resource_type, body)),
                    search: false,
                }
            };
        Some(match interaction {
            Interaction::Read { resource_type, id } if patient_data(*resource_type) => {
                summary(AuditAction::Read, Some((*resource_type, id.clone())))
            }
            Interaction::VRead {
                resource_type, id, ..
            } if patient_data(*resource_type) => {
                summary(AuditAction::VRead, Some((*resource_type, id.clone())))
            }
            Interaction::Search { query } if patient_data(query.resource_type) => AccessSummary {
                search: true,
                ..summary(AuditAction::Query, None)
            },
            Interaction::History(params) => match &params.scope {
                HistoryScope::Instance(resource_type, id) if patient_data(*resource_type) => {
                    summary(AuditAction::History, Some((*resource_type, id.clone())))
                }
                HistoryScope::Type(resource_type) if !patient_data(*resource_type) => return None,
                _ => summary(AuditAction::History, None),
            },
            Interaction::Operation { operation, call }
                if operation.definition().audit == OperationAudit::PatientData =>
            {
                match (call.resource_type, &call.id) {
                    (Some(ResourceType::Patient), Some(patient)) => AccessSummary {
                        patients: vec![patient.clone()],
                        ..summary(
                            AuditAction::Operation,
                            Some((ResourceType::Patient, patient.clone())),
                        )
                    },
                    (Some(resource_type), Some(id)) => {
                        summary(AuditAction::Operation, Some((resource_type, id.clone())))
                    }
                    _ => summary(AuditAction::Operation, None),
                }
            }
            Interaction::Operation { operation, call }
                if operation.definition().audit == OperationAudit::Export =>
            {
                AccessSummary {
                    search: true,
                    ..summary(
                        AuditAction::Operation,
                        call.resource_type.zip(call.id.clone()),
                    )
                }
            }
            Interaction::Create {
                resource_type,
                body,
                ..
            } if patient_data(*resource_type) => {
                with_body(AuditAction::Create, *resource_type, None, body)
            }
            Interaction::Update {
                resource_type,
                id,
                body,
                ..
            } if patient_data(*resource_type) => {
                with_body(AuditAction::Update, *resource_type, Some(id), body)
            }
            Interaction::ConditionalUpdate { query, body } if patient_data(query.resource_type) => {
                with_body(AuditAction::Update, query.resource_type, None, body)
            }
            Interaction::Patch {
                resource_type, id, ..
            } if patient_data(*resource_type) => {
                summary(AuditAction::Patch, Some((*resource_type, id.clone())))
            }
            Interaction::Delete {
                resource_type, id, ..
            } if patient_data(*resource_type) => {
                summary(AuditAction::Delete, Some((*resource_type, id.clone())))
            }
            Interaction::ConditionalDelete { query } if patient_data(query.resource_type) => {
                summary(AuditAction::Delete, None)
            }
            _ => return None,
        })
    }

    /// For a refused access: whose data the target resource is (nothing is shown).
    pub async fn patients_of_target(&self, store: &dyn paraply_store::Store) -> Vec<ResourceId> {
        if !self.patients.is_empty() {
            return self.patients.clone();
        }
        let Some((resource_type, id)) = &self.entity else {
            return Vec::new();
        };
        match store.read(*resource_type, id).await {
            Ok(Some(resource)) => resource
                .body
                .as_deref()
                .map(|body| patients_of(*resource_type, id, body))
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// `Type?query` of a request, as the access log keeps it.
pub(crate) fn query_text(request: &FhirRequest) -> Option<String> {
    if request.query.is_empty() {
        return None;
    }
    let encoded: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(request.query.iter())
        .finish();
    Some(format!("{}?{encoded}", request.path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_create_names_the_patient_of_its_body_and_a_new_patient_none() {
        let create = |body: Value| Interaction::Create {
            resource_type: body["resourceType"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| unreachable!()),
            body,
            if_none_exist: None,
        };
        let goal = create(json!({"resourceType": "Goal", "subject": {"reference": "Patient/p1"}}));
        let named = AccessSummary::of(&goal).map(|s| s.patients);
        assert_eq!(named.as_deref().map(<[_]>::len), Some(1));
        let patient = create(json!({"resourceType": "Patient"}));
        let named = AccessSummary::of(&patient).map(|s| s.patients);
        assert_eq!(named, Some(Vec::new()));
    }
}
