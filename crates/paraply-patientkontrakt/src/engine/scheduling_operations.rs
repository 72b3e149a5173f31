//! Standard scheduling, so a booking system can offer the patient times and book the agreed
//! one (IHE ITI Scheduling for R4, adapted to agreed times):
//! - `GET|POST Appointment/$find`: free times (Slots) of a unit or practitioner, a service
//!   type and a period, as proposed Appointments, paged;
//! - `POST Appointment/$hold`: holds a time for a patient for `[patientkontrakt]
//!   hold_minutes` (a proposed AgreedAppointment), or moves their appointment to it; a hold
//!   that runs out frees the time by itself;
//! - `POST Appointment/{id}/$book`: books a held time once the patient has accepted it (I9).
//!
//! Each writes as the caller through the one write path, in one transaction whose Slot
//! update carries `If-Match`: of several callers holding one time at once, exactly one wins
//! and the others get 409.

use async_trait::async_trait;
use paraply_auth::Permission;
use paraply_core::{
    CoreError, FhirRequest, Method, Operation, OperationAudit, OperationCall, OperationContext,
    OperationDef, OperationLevel, Outcome,
};
use paraply_fhir::{ResourceId, ResourceType};
use paraply_search::{PageCursor, SearchQuery};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::parameters::{Parameters, body_of};
use super::split_reference;
use crate::json::references_at;
use crate::kind::is_agreed_appointment;
use crate::scheduling::{self, SlotState};

/// How far `$find` looks when no end is given.
const DEFAULT_FIND_DAYS: i64 = 30;
const DEFAULT_FIND_COUNT: u32 = 20;
const MAX_FIND_COUNT: u32 = 100;

fn invalid(name: &str, value: &str, reason: &str) -> CoreError {
    CoreError::BadRequest {
        message: format!("invalid value '{value}' for '{name}': {reason}"),
        expression: Some(name.to_owned()),
    }
}

fn instant(value: &str, name: &str) -> Result<OffsetDateTime, CoreError> {
    use time::format_description::well_known::Iso8601;
    OffsetDateTime::parse(value, &Iso8601::DEFAULT)
        .or_else(|_| time::Date::parse(value, &Iso8601::DEFAULT).map(|d| d.midnight().assume_utc()))
        .map_err(|_| invalid(name, value, "expected a date or dateTime"))
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(super) struct FindOperation;

static FIND: OperationDef = OperationDef {
    name: "find",
    level: OperationLevel::Type,
    resource_types: &[ResourceType::Appointment],
    methods: &[Method::Get, Method::Post],
    definition: "https://paraply.se/fhir/OperationDefinition/find",
    documentation: "Free times as proposed Appointments: actor (the Schedule's PractitionerRole, Organization, Location or HealthcareService), service-type, start and end (default now to +30 days), patient (the participant to propose for), _count (default 20, at most 100) and _page (from a next link). A held time whose hold has run out is free.",
    permission: (Some(ResourceType::Slot), Permission::Search),
    audit: OperationAudit::None,
};

#[async_trait]
impl Operation for FindOperation {
    fn definition(&self) -> &OperationDef {
        &FIND
    }

    async fn run(
        &self,
        call: OperationCall,
        context: &mut OperationContext<'_>,
    ) -> Result<Outcome, CoreError> {
        call.only_params(
            "find",
            &[
                "actor",
                "service-type",
                "start",
                "end",
                "patient",
                "_count",
                "_page",
            ],
        )?;
        let now = OffsetDateTime::now_utc();
        let start = call
            .param("start")
            .map(|v| instant(v, "start"))
            .transpose()?
            .unwrap_or(now);
        let end = call
            .param("end")
            .map(|v| instant(v, "end"))
            .transpose()?
            .unwrap_or(start + Duration::days(DEFAULT_FIND_DAYS));
        if end <= start {
            return Err(invalid(
                "end",
                call.param("end").unwrap_or(""),
                "must be after start",
            ));
        }
        let count = match call.param("_count") {
            None => DEFAULT_FIND_COUNT,
            Some(value) => value
                .parse::<u32>()
                .map_err(|_| invalid("_count", value, "expected a whole number"))?
                .clamp(1, MAX_FIND_COUNT),
        };
        let (from, to) = (
            format!("ge{}", rfc3339(start)),
            format!("lt{}", rfc3339(end)),
        );
        let mut pairs: Vec<(&str, &str)> = vec![
            ("status", "free,busy-tentative"),
            ("start", from.as_str()),
            ("start", to.as_str()),
            ("_sort", "start"),
            ("_include", "Slot:schedule"),
        ];
        if let Some(actor) = call.param("actor") {
            pairs.push(("schedule.actor", actor));
        }
        if let Some(service_type) = call.param("service-type") {
            pairs.push(("service-type", service_type));
        }
        let mut query = SearchQuery::parse(ResourceType::Slot, pairs)?;
        query.count = count;
        if let Some(page) = call.param("_page") {
            query.page = Some(PageCursor::decode(page).ok_or_else(|| {
                invalid("_page", page, "expected a page cursor from a next link")
            })?);
        }
        let page = context.search(query).await?;
        let actors_of = |schedule: &str| -> Vec<String> {
            page.included
                .iter()
                .filter(|r| format!("Schedule/{}", r.id) == schedule)
                .filter_map(|r| r.body.as_deref())
                .filter_map(|body| serde_json::from_str::<Value>(body).ok())
                .flat_map(|schedule| references_at(&schedule, "actor"))
                .collect()
        };
        let patient = call.param("patient");
        let mut entries = Vec::new();
        for found in &page.matches {
            let Some(slot) = found
                .resource
                .body
                .as_deref()
                .and_then(|body| serde_json::from_str::<Value>(body).ok())
            else {
                continue;
            };
            if scheduling::slot_state(&slot, now) != SlotState::Free {
                continue;
            }
            let schedule = slot
                .pointer("/schedule/reference")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut appointment = scheduling::proposed_appointment(
                &slot,
                &format!("Slot/{}", found.resource.id),
                &actors_of(&schedule),
                patient,
            );
            // A proposal, not stored: a fresh id each time it is found.
            let id = uuid::Uuid::new_v4().to_string();
            appointment["id"] = json!(id);
            entries.push(json!({
                "fullUrl": format!("urn:uuid:{id}"),
                "resource": appointment,
                "search": {"mode": "match"},
            }));
        }
        let mut links = Vec::new();
        if page.more
            && let Some(last) = page.matches.last()
        {
            let mut next: Vec<String> = call
                .params
                .iter()
                .filter(|(name, _)| name != "_page")
                .map(|(name, value)| format!("{name}={}", encode(value)))
                .collect();
            next.push(format!("_page={}", last.cursor(false).encode()));
            links.push(
                json!({"relation": "next", "url": format!("Appointment/$find?{}", next.join("&"))}),
            );
        }
        let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "entry": entries});
        if !links.is_empty() {
            bundle["link"] = Value::Array(links);
        }
        Ok(Outcome::Built(bundle))
    }
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

pub(super) struct HoldOperation {
    pub(super) hold_minutes: u32,
}

static HOLD: OperationDef = OperationDef {
    name: "hold",
    level: OperationLevel::Type,
    resource_types: &[ResourceType::Appointment],
    methods: &[Method::Post],
    definition: "https://paraply.se/fhir/OperationDefinition/hold",
    documentation: "Holds a free time for a patient: slot (Reference), patient (Reference), and optionally appointment (an AgreedAppointment of the patient to move to this time; its earlier time is freed). The Slot becomes busy-tentative until the hold runs out ([patientkontrakt] hold_minutes, default 5); the answer is the proposed AgreedAppointment, which the patient accepts with an AppointmentResponse. A time held or booked by someone else answers 409.",
    permission: (Some(ResourceType::Slot), Permission::Update),
    audit: OperationAudit::None,
};

#[async_trait]
impl Operation for HoldOperation {
    fn definition(&self) -> &OperationDef {
        &HOLD
    }

    async fn run(
        &self,
        call: OperationCall,
        context: &mut OperationContext<'_>,
    ) -> Result<Outcome, CoreError> {
        let parameters = Parameters::of(
            call.body.as_ref(),
            "hold",
            &["slot", "patient", "appointment"],
        )?;
        let reference = |name: &str| -> Result<String, CoreError> {
            parameters
                .references(name)
                .into_iter()
                .next()
                .ok_or_else(|| CoreError::BadRequest {
                    message: format!("$hold needs '{name}'"),
                    expression: Some(name.to_owned()),
                })
        };
        let slot_reference = reference("slot")?;
        let patient = reference("patient")?;
        let Some((ResourceType::Slot, slot_id)) = split_reference(&slot_reference) else {
            return Err(invalid(
                "slot",
                &slot_reference,
                "expected a Slot reference",
            ));
        };
        let now = OffsetDateTime::now_utc();
        let stored = context.read_visible(ResourceType::Slot, &slot_id).await?;
        let slot = body_of(&stored)?;
        if scheduling::slot_state(&slot, now) != SlotState::Free {
            return Err(CoreError::Taken {
                message: format!("{slot_reference} is held or booked; find another time"),
            });
        }
        let actors = match slot
            .pointer("/schedule/reference")
            .and_then(Value::as_str)
            .and_then(split_reference)
        {
            Some((ResourceType::Schedule, schedule_id)) => references_at(
                &body_of(
                    &context
                        .read_visible(ResourceType::Schedule, &schedule_id)
                        .await?,
                )?,
                "actor",
            ),
            _ => Vec::new(),
        };
        let until = now + Duration::minutes(i64::from(self.hold_minutes));
        let mut entries = Vec::new();
        let proposed =
            scheduling::proposed_appointment(&slot, &slot_reference, &actors, Some(&patient));
        let (appointment_id, appointment, created) = match parameters
            .references("appointment")
            .first()
        {
            Some(moved) => {
                let Some((ResourceType::Appointment, id)) = split_reference(moved) else {
                    return Err(invalid(
                        "appointment",
                        moved,
                        "expected an Appointment reference",
                    ));
                };
                let current_stored = context.read_visible(ResourceType::Appointment, &id).await?;
                let current = body_of(&current_stored)?;
                if !is_agreed_appointment(&current) {
                    return Err(invalid("appointment", moved, "not an agreed appointment"));
                }
                // Its earlier times are free again, in the same transaction.
                for earlier in scheduling::slots_of(&current) {
                    if earlier == slot_reference {
                        continue;
                    }
                    if let Some((ResourceType::Slot, earlier_id)) = split_reference(&earlier) {
                        let earlier_stored = context
                            .read_visible(ResourceType::Slot, &earlier_id)
                            .await?;
                        // Unless it is held for another appointment by now.
                        if let Ok(Some(freed)) = scheduling::follow(
                            &body_of(&earlier_stored)?,
                            &format!("Appointment/{id}"),
                            "free",
                            false,
                            now,
                        ) {
                            entries.push(json!({"resource": freed, "request": {"method": "PUT",
                                "url": format!("Slot/{earlier_id}"), "ifMatch": earlier_stored.version_id.etag()}}));
                        }
                    }
                }
                let mut moved_to = proposed;
                moved_to["id"] = json!(id.as_str());
                for key in [
                    "description",
                    "comment",
                    "basedOn",
                    "supportingInformation",
                    "reasonCode",
                ] {
                    if let Some(value) = current.get(key) {
                        moved_to[key] = value.clone();
                    }
                }
                (id, moved_to, false)
            }
            None => {
                let id: ResourceId = uuid::Uuid::new_v4()
                    .to_string()
                    .parse()
                    .map_err(|_| CoreError::bad_request("could not make an id"))?;
                let mut created = proposed;
                created["id"] = json!(id.as_str());
                (id, created, true)
            }
        };
        let holder = format!("Appointment/{appointment_id}");
        entries.insert(
            0,
            json!({
                "resource": scheduling::held(&slot, until, &holder),
                "request": {"method": "PUT", "url": format!("Slot/{slot_id}"),
                            "ifMatch": stored.version_id.etag()},
            }),
        );
        entries.push(json!({"resource": appointment, "request": {"method": "PUT", "url": holder}}));
        let mut request = FhirRequest::new(Method::Post, "");
        request.body =
            Some(json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}));
        match context.submit(request).await {
            Ok(_) => {}
            Err(error) if lost_the_race(&error) => {
                return Err(CoreError::Taken {
                    message: format!("{slot_reference} was just taken; find another time"),
                });
            }
            Err(error) => return Err(error),
        }
        Ok(Outcome::Resource {
            created,
            resource: context
                .read_visible(ResourceType::Appointment, &appointment_id)
                .await?,
        })
    }
}

/// Another caller wrote the Slot first (its `If-Match` failed), alone or in a transaction.
fn lost_the_race(error: &CoreError) -> bool {
    match error {
        CoreError::PreconditionFailed { .. } | CoreError::Conflict { .. } => true,
        CoreError::Transaction { source, .. } => lost_the_race(source),
        _ => false,
    }
}

pub(super) struct BookOperation;

static BOOK: OperationDef = OperationDef {
    name: "book",
    level: OperationLevel::Instance,
    resource_types: &[ResourceType::Appointment],
    methods: &[Method::Post],
    definition: "https://paraply.se/fhir/OperationDefinition/book",
    documentation: "Books a held agreed time once the patient (or a relative with booking consent) has accepted it (I9): the Appointment becomes booked and its Slot busy. A time whose hold ran out and was taken by someone else answers 409.",
    permission: (Some(ResourceType::Appointment), Permission::Update),
    audit: OperationAudit::None,
};

#[async_trait]
impl Operation for BookOperation {
    fn definition(&self) -> &OperationDef {
        &BOOK
    }

    async fn run(
        &self,
        call: OperationCall,
        context: &mut OperationContext<'_>,
    ) -> Result<Outcome, CoreError> {
        call.only_params("book", &[])?;
        let id = call
            .id
            .clone()
            .ok_or_else(|| CoreError::bad_request("$book is invoked on an Appointment"))?;
        let stored = context.read_visible(ResourceType::Appointment, &id).await?;
        let mut appointment = body_of(&stored)?;
        if appointment.get("status").and_then(Value::as_str) != Some("booked") {
            // I9 refuses this unless the patient has accepted; the write rule then makes
            // the Slot busy, or refuses (409) a time held for or booked by another.
            appointment["status"] = json!("booked");
            let mut request = FhirRequest::new(Method::Put, format!("Appointment/{id}"));
            request.if_match = Some(stored.version_id.etag());
            request.body = Some(appointment);
            context.submit(request).await?;
        }
        Ok(Outcome::Resource {
            created: false,
            resource: context.read_visible(ResourceType::Appointment, &id).await?,
        })
    }
}
