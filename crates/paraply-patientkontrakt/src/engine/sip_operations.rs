//! The SIP coordinator's operations, each a client's steps bundled into one call and
//! submitted as the caller down the one write path (so the rules, the access log and
//! provenance apply as if the steps were sent one by one):
//! - `POST CarePlan/{id}/$sip-meeting`: propose a SIP meeting of this SIP with its invitees,
//!   or move one (`meeting`), asking everyone again;
//! - `POST Appointment/{id}/$respond`: answer an invitation (an AppointmentResponse) and
//!   get the meeting back as it stands after the answer.

use async_trait::async_trait;
use paraply_auth::Permission;
use paraply_core::{
    CoreError, FhirRequest, Method, Operation, OperationAudit, OperationCall, OperationContext,
    OperationDef, OperationLevel, Outcome,
};
use paraply_fhir::{ResourceId, ResourceType, codes};
use serde_json::{Value, json};

use super::parameters::{Parameters, body_of};
use super::split_reference;
use crate::kind::{is_sip, is_sip_meeting};
use crate::sip;

pub(super) struct SipMeetingOperation;

static SIP_MEETING: OperationDef = OperationDef {
    name: "sip-meeting",
    level: OperationLevel::Instance,
    resource_types: &[ResourceType::CarePlan],
    methods: &[Method::Post],
    definition: "https://paraply.se/fhir/OperationDefinition/sip-meeting",
    documentation: "Proposes a SIP meeting (Appointment SipMeeting) of this SIP: start, end, the invitees (Reference, repeated; the patient is always invited) and a description; or, with 'meeting', moves that meeting to start–end and asks every participant again. Returns the Appointment.",
    permission: (Some(ResourceType::Appointment), Permission::Create),
    audit: OperationAudit::None,
};

#[async_trait]
impl Operation for SipMeetingOperation {
    fn definition(&self) -> &OperationDef {
        &SIP_MEETING
    }

    async fn run(
        &self,
        call: OperationCall,
        context: &mut OperationContext<'_>,
    ) -> Result<Outcome, CoreError> {
        const NAME: &str = "sip-meeting";
        let parameters = Parameters::of(
            call.body.as_ref(),
            NAME,
            &["start", "end", "invitee", "description", "meeting"],
        )?;
        let start = parameters.required_text("start", NAME)?;
        let end = parameters.required_text("end", NAME)?;
        let plan_id = call
            .id
            .clone()
            .ok_or_else(|| CoreError::bad_request("$sip-meeting is invoked on a SIP CarePlan"))?;
        let plan = body_of(
            &context
                .read_visible(ResourceType::CarePlan, &plan_id)
                .await?,
        )?;
        if !is_sip(&plan) {
            return Err(CoreError::BadRequest {
                message: format!("CarePlan/{plan_id} is not a SIP"),
                expression: None,
            });
        }
        let plan_reference = format!("CarePlan/{plan_id}");
        if let Some(meeting_reference) = parameters.references("meeting").first() {
            let Some((ResourceType::Appointment, meeting_id)) = split_reference(meeting_reference)
            else {
                return Err(CoreError::BadRequest {
                    message: "'meeting' names an Appointment".into(),
                    expression: Some("meeting".into()),
                });
            };
            let stored = context
                .read_visible(ResourceType::Appointment, &meeting_id)
                .await?;
            let meeting = body_of(&stored)?;
            let of_this_plan = meeting
                .get("supportingInformation")
                .and_then(Value::as_array)
                .is_some_and(|infos| {
                    infos.iter().any(|info| {
                        info.get("reference").and_then(Value::as_str)
                            == Some(plan_reference.as_str())
                    })
                });
            if !is_sip_meeting(&meeting) || !of_this_plan {
                return Err(CoreError::BadRequest {
                    message: format!(
                        "{meeting_reference} is not a SIP meeting of {plan_reference}"
                    ),
                    expression: Some("meeting".into()),
                });
            }
            let mut request = FhirRequest::new(Method::Put, format!("Appointment/{meeting_id}"));
            request.if_match = Some(stored.version_id.etag());
            request.body = Some(sip::moved(&meeting, start, end));
            return context.submit(request).await;
        }
        let patient = plan
            .pointer("/subject/reference")
            .and_then(Value::as_str)
            .ok_or_else(|| CoreError::bad_request(format!("{plan_reference} has no subject")))?;
        let invitees = parameters.references("invitee");
        if invitees.is_empty() {
            return Err(CoreError::BadRequest {
                message: "$sip-meeting needs at least one 'invitee'".into(),
                expression: Some("invitee".into()),
            });
        }
        let mut participants = vec![
            json!({"actor": {"reference": patient}, "required": "required", "status": "needs-action"}),
        ];
        participants.extend(
            invitees
                .iter()
                .filter(|invitee| invitee.as_str() != patient)
                .map(|invitee| json!({"actor": {"reference": invitee}, "status": "needs-action"})),
        );
        let mut meeting = json!({
            "resourceType": "Appointment",
            "meta": {"profile": [codes::profile::SIP_MEETING]},
            "status": "proposed",
            "serviceType": [{"coding": [{"system": codes::SERVICE_TYPE_SYSTEM, "code": codes::SIP_MOTE}]}],
            "start": start,
            "end": end,
            "supportingInformation": [{"reference": plan_reference}],
            "participant": participants,
        });
        if let Some(description) = parameters.text("description") {
            meeting["description"] = json!(description);
        }
        let mut request = FhirRequest::new(Method::Post, "Appointment");
        request.body = Some(meeting);
        context.submit(request).await
    }
}

pub(super) struct RespondOperation;

static RESPOND: OperationDef = OperationDef {
    name: "respond",
    level: OperationLevel::Instance,
    resource_types: &[ResourceType::Appointment],
    methods: &[Method::Post],
    definition: "https://paraply.se/fhir/OperationDefinition/respond",
    documentation: "Answers an invitation: 'actor' (the invitee answering, a Reference), 'answer' (accepted, declined or tentative), optionally a wished 'start' and 'end' (with tentative: another time) and a 'comment'. Stored as an AppointmentResponse; returns the Appointment as it stands after the answer (a SIP meeting is booked once the patient, a region and a kommun participant have accepted).",
    permission: (Some(ResourceType::AppointmentResponse), Permission::Create),
    audit: OperationAudit::None,
};

#[async_trait]
impl Operation for RespondOperation {
    fn definition(&self) -> &OperationDef {
        &RESPOND
    }

    async fn run(
        &self,
        call: OperationCall,
        context: &mut OperationContext<'_>,
    ) -> Result<Outcome, CoreError> {
        const NAME: &str = "respond";
        let parameters = Parameters::of(
            call.body.as_ref(),
            NAME,
            &["actor", "answer", "start", "end", "comment"],
        )?;
        let appointment_id: ResourceId = call
            .id
            .clone()
            .ok_or_else(|| CoreError::bad_request("$respond is invoked on an Appointment"))?;
        let actor = parameters
            .references("actor")
            .into_iter()
            .next()
            .ok_or_else(|| CoreError::BadRequest {
                message: "$respond needs 'actor': who answers".into(),
                expression: Some("actor".into()),
            })?;
        let answer = parameters.required_text("answer", NAME)?;
        // The caller must see the appointment to answer it.
        context
            .read_visible(ResourceType::Appointment, &appointment_id)
            .await?;
        let mut response = json!({
            "resourceType": "AppointmentResponse",
            "appointment": {"reference": format!("Appointment/{appointment_id}")},
            "actor": {"reference": actor},
            "participantStatus": answer,
        });
        for name in ["start", "end", "comment"] {
            if let Some(value) = parameters.text(name) {
                response[name] = json!(value);
            }
        }
        let mut request = FhirRequest::new(Method::Post, "AppointmentResponse");
        request.body = Some(response);
        context.submit(request).await?;
        let appointment = context
            .read_visible(ResourceType::Appointment, &appointment_id)
            .await?;
        Ok(Outcome::Resource {
            created: false,
            resource: appointment,
        })
    }
}
