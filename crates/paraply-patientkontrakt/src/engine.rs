//! How the patientkontrakt plugs into the generic engine ([`paraply_core::Extensions`]):
//! the profile checks and the conformance catalog (`paraply-profiles`), the rules I1–I10 and
//! agreed times as one [`WriteRule`] run inside every write transaction, and the
//! `$patientkontrakt` operation. This is the only module that reads the database; the
//! judgements stay in [`crate::rules`], [`crate::agreed_time`] and [`crate::unified_plan`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use paraply_core::{
    Change, ConformanceCatalog, CoreError, DerivedWrite, Extensions, ResourceCheck, WriteRule,
};
use paraply_fhir::{Issue, IssueType, ResourceId, ResourceType};
use paraply_search::{SearchQuery, Total};
use paraply_store::{Fact, StoreTx};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::agreed_time::{self, Responder};
use crate::followup;
use crate::json::{self, self_reference};
use crate::kind::{consent_in_force, is_sip_meeting};
use crate::rules::{self, Huvudman, HuvudmanKind, PatientState, Rule, RuleSettings, Violation};
use crate::scheduling;
use crate::sip;

mod measure_operations;
mod parameters;
mod plan;
mod scheduling_operations;
mod sip_operations;

/// Largest page the rules and the document read at once; a patient's plan is far smaller,
/// and pages continue after it anyway.
pub(crate) const PAGE: u32 = 1000;

/// How many `partOf` steps lead from a unit to its huvudman at most (region → förvaltning
/// → klinik → enhet is three).
const MAX_PART_OF_DEPTH: usize = 6;

/// The patientkontrakt's extensions of the engine.
pub fn extensions(settings: RuleSettings) -> Extensions {
    Extensions {
        checks: vec![Arc::new(Profiles)],
        rules: vec![Arc::new(Patientkontrakt {
            settings: settings.clone(),
        })],
        operations: vec![
            Arc::new(plan::PatientkontraktOperation),
            Arc::new(sip_operations::SipMeetingOperation),
            Arc::new(sip_operations::RespondOperation),
            Arc::new(scheduling_operations::FindOperation),
            Arc::new(scheduling_operations::HoldOperation {
                hold_minutes: settings.hold_minutes,
            }),
            Arc::new(scheduling_operations::BookOperation),
            Arc::new(measure_operations::EvaluateMeasureOperation {
                min_cell: settings.min_cell,
            }),
        ],
        conformance: Some(Arc::new(Catalog)),
    }
}

/// The rules of a resource's claimed Paraply profiles.
struct Profiles;

impl ResourceCheck for Profiles {
    fn check(&self, _: ResourceType, resource: &mut Map<String, Value>) -> Vec<Issue> {
        if !resource.contains_key("meta") {
            return Vec::new();
        }
        // The checker reads a `Value`; the map is moved in and back, not copied.
        let value = Value::Object(std::mem::take(resource));
        let issues = paraply_profiles::check_profiles(&value);
        if let Value::Object(map) = value {
            *resource = map;
        }
        issues
            .into_iter()
            .map(|issue| {
                Issue::error(
                    IssueType::Invalid,
                    format!("{} (profile {})", issue.message, issue.profile),
                )
                .at(issue.expression)
            })
            .collect()
    }
}

/// `fhir-profiles/`, served read-only.
struct Catalog;

impl ConformanceCatalog for Catalog {
    fn resource(&self, resource_type: &str, id: &str) -> Option<&'static str> {
        paraply_profiles::conformance_resource(resource_type, id)
    }

    fn resources_of(&self, resource_type: &str) -> Vec<&'static str> {
        paraply_profiles::conformance_resources()
            .filter(|(t, _, _)| *t == resource_type)
            .map(|(_, _, json)| json)
            .collect()
    }

    fn profiles_of(&self, resource_type: ResourceType) -> Vec<&'static str> {
        paraply_profiles::profiles_of(resource_type.as_str())
    }
}

/// I1–I10 and agreed times over a transaction's writes.
struct Patientkontrakt {
    settings: RuleSettings,
}

#[async_trait]
impl WriteRule for Patientkontrakt {
    async fn check(
        &self,
        tx: &mut dyn StoreTx,
        changes: &[Change],
    ) -> Result<Vec<DerivedWrite>, CoreError> {
        let today = OffsetDateTime::now_utc().date();
        let mut derived = Vec::new();
        // SIP consents withdrawn here (in force before, not after), by patient, with the
        // withdrawal that came first (the cause of the holds it brings).
        let mut withdrawn: HashMap<String, (ResourceId, Vec<Value>)> = HashMap::new();
        for change in changes {
            if change.resource_type == ResourceType::AppointmentResponse
                && let Some(after) = change.after.as_deref()
                && let Some(write) = answer(tx, change, &parse(after)?, today, &derived).await?
            {
                // Several answers to one meeting in a transaction: one update, the last
                // built on the earlier ones.
                match derived
                    .iter_mut()
                    .find(|w| w.resource_type == write.resource_type && w.id == write.id)
                {
                    Some(earlier) => *earlier = write,
                    None => derived.push(write),
                }
            }
            if change.resource_type == ResourceType::Appointment
                && let Some(after) = change.after.as_deref()
            {
                let after = parse(after)?;
                let before = change.before.as_deref().map(parse).transpose()?;
                if let Some(before) = &before
                    && let Some(message) = sip::moved_without_asking(before, &after)
                {
                    return Err(CoreError::RuleBroken {
                        rule: Rule::I10.code(),
                        message,
                        resource: Some((ResourceType::Appointment, change.id.clone())),
                    });
                }
                derived.extend(slots_follow(tx, change, before.as_ref(), &after).await?);
            }
            if change.resource_type == ResourceType::Consent
                && let Some(before) = change.before.as_deref()
            {
                let before = parse(before)?;
                let day = today.to_string();
                let still = match change.after.as_deref() {
                    Some(after) => consent_in_force(&parse(after)?, &day),
                    None => false,
                };
                if consent_in_force(&before, &day)
                    && !still
                    && let Some(patient) = rules::patient_of(&before)
                {
                    withdrawn
                        .entry(patient)
                        .or_insert_with(|| (change.id.clone(), Vec::new()))
                        .1
                        .push(before);
                }
            }
        }
        for (patient, (cause, consents)) in &withdrawn {
            derived.extend(holds(tx, patient, consents, cause, today).await?);
        }
        let types: Vec<ResourceType> = changes.iter().map(|c| c.resource_type).collect();
        let rules = rules::rules_for(&types);
        if rules.is_empty() && !types.contains(&ResourceType::Patient) {
            return Ok(derived);
        }
        let written: Vec<String> = changes
            .iter()
            .map(|c| format!("{}/{}", c.resource_type, c.id))
            .collect();
        // Whose plans the writes touch: before and after, so moving a resource from one
        // patient to another checks both.
        let mut patients = BTreeSet::new();
        for change in changes {
            // A Patient's own fields (sex, birth date, listing unit, home) are its follow-up
            // strata.
            if change.resource_type == ResourceType::Patient {
                patients.insert(change.id.to_string());
                continue;
            }
            // Only the kinds of resource the rules judge are read (a Bundle's Patients,
            // Organizations and Goals are not).
            if rules::rules_for(&[change.resource_type]).is_empty() {
                continue;
            }
            for body in [change.before.as_deref(), change.after.as_deref()]
                .into_iter()
                .flatten()
            {
                let resource = parse(body)?;
                match rules::patient_of(&resource) {
                    Some(patient) => {
                        patients.insert(patient);
                    }
                    None if change.after.as_deref() == Some(body) => {
                        refuse(rules::check_without_patient(&resource, &rules))?;
                    }
                    None => {}
                }
            }
        }
        // In a fixed order, so two transactions touching the same patients cannot each
        // hold one and wait for the other.
        for patient in &patients {
            tx.serialize_on(&format!("patientkontrakt/{patient}"))
                .await?;
        }
        let record = Record::load(tx, &patients, changes).await?;
        for patient in &patients {
            let violations = rules::check(
                &PatientState {
                    patient,
                    resources: record.of(patient),
                    responses: &record.responses,
                    huvudman: &record.huvudman,
                    today,
                },
                &rules,
                &written,
                &self.settings,
            );
            refuse(violations)?;
        }
        record_followup(tx, &patients, &record, changes, false).await?;
        Ok(derived)
    }
}

/// Records the follow-up facts (`crate::followup`) of the patients a transaction touches
/// and of the appointments it writes (or, with `every_appointment`, of all their
/// appointments), in the transaction, after the rules held: a report later reads them as
/// they stood at the end of its period.
async fn record_followup(
    tx: &mut dyn StoreTx,
    patients: &BTreeSet<String>,
    record: &Record,
    changes: &[Change],
    every_appointment: bool,
) -> Result<(), CoreError> {
    let at = OffsetDateTime::now_utc();
    // The patients' Patient resources, read together (those the transaction wrote are
    // already known to it).
    let keyed: Vec<(&String, ResourceId)> = patients
        .iter()
        .filter_map(|patient| Some((patient, patient.parse::<ResourceId>().ok()?)))
        .collect();
    let keys: Vec<(ResourceType, ResourceId)> = keyed
        .iter()
        .map(|(_, id)| (ResourceType::Patient, id.clone()))
        .collect();
    let mut people = Vec::with_capacity(keyed.len());
    for ((patient, _), current) in keyed.into_iter().zip(tx.read_many(&keys).await?) {
        let resource = match current {
            Some(current) if !current.is_deleted() => {
                Some(parse(current.body.as_deref().unwrap_or("{}"))?)
            }
            _ => None,
        };
        people.push((patient, resource));
    }
    // The listing units' huvudmän the rules did not already need, looked up together.
    let units: BTreeSet<String> = people
        .iter()
        .filter_map(|(_, resource)| resource.as_ref().and_then(followup::listing_unit))
        .filter(|unit| !record.huvudman.contains_key(unit))
        .collect();
    let mut huvudman = record.huvudman.clone();
    huvudman.extend(huvudman_of(tx, units.into_iter().collect()).await?);
    // The appointments written, parsed once, by the patient each is counted with: the one
    // it belongs to now, or (deleted) the last one.
    let mut written: HashMap<String, Vec<(&ResourceId, Option<Value>)>> = HashMap::new();
    for change in changes
        .iter()
        .filter(|c| c.resource_type == ResourceType::Appointment)
    {
        let after = change.after.as_deref().map(parse).transpose()?;
        let patient = match &after {
            Some(after) => rules::patient_of(after),
            None => change
                .before
                .as_deref()
                .map(parse)
                .transpose()?
                .as_ref()
                .and_then(rules::patient_of),
        };
        if let Some(patient) = patient {
            written
                .entry(patient)
                .or_default()
                .push((&change.id, after));
        }
    }
    for (patient, resource) in &people {
        let fact =
            followup::patient_fact(patient, resource.as_ref(), record.of(patient), &huvudman);
        tx.record_fact(Fact {
            kind: followup::PATIENT_FACT,
            subject: format!("Patient/{patient}"),
            at,
            body: match resource {
                Some(_) => to_text(&fact),
                None => "null".to_owned(),
            },
        })
        .await?;
        for (id, appointment) in written.get(patient.as_str()).into_iter().flatten() {
            tx.record_fact(Fact {
                kind: followup::APPOINTMENT_FACT,
                subject: format!("Appointment/{id}"),
                at,
                body: match appointment {
                    Some(appointment) => {
                        to_text(&followup::appointment_fact(appointment, &fact, &huvudman))
                    }
                    None => "null".to_owned(),
                },
            })
            .await?;
        }
        if every_appointment {
            for appointment in record
                .of(patient)
                .iter()
                .filter(|r| json::resource_type(r) == Some("Appointment"))
            {
                let Some(subject) = self_reference(appointment) else {
                    continue;
                };
                tx.record_fact(Fact {
                    kind: followup::APPOINTMENT_FACT,
                    subject,
                    at,
                    body: to_text(&followup::appointment_fact(appointment, &fact, &huvudman)),
                })
                .await?;
            }
        }
    }
    Ok(())
}

/// Patients whose facts one backfill transaction records.
const BACKFILL_PATIENTS: usize = 100;

/// Records the follow-up facts of every patient and appointment when the database has
/// none yet although it holds patients: a database written before facts were kept (or
/// restored from one). Their facts hold from now on: the past before this is not
/// reconstructed, and reports of earlier periods count nothing. Returns how many patients
/// it recorded; nodes starting together may both run it, and record the same facts.
pub async fn record_missing_followup(store: &dyn paraply_store::Store) -> Result<u64, CoreError> {
    use futures::StreamExt;
    let already = store
        .facts_at(followup::PATIENT_FACT, OffsetDateTime::now_utc())
        .next()
        .await
        .transpose()?;
    if already.is_some() {
        return Ok(0);
    }
    let mut query = query(ResourceType::Patient, &[])?;
    let mut recorded = 0;
    loop {
        let page = store.search(&query).await?;
        let ids: Vec<String> = page
            .matches
            .iter()
            .map(|m| m.resource.id.to_string())
            .collect();
        for chunk in ids.chunks(BACKFILL_PATIENTS) {
            let patients: BTreeSet<String> = chunk.iter().cloned().collect();
            let mut tx = store.begin().await?;
            for patient in &patients {
                tx.serialize_on(&format!("patientkontrakt/{patient}"))
                    .await?;
            }
            let record = Record::load(&mut *tx, &patients, &[]).await?;
            record_followup(&mut *tx, &patients, &record, &[], true).await?;
            tx.commit().await?;
            recorded += patients.len() as u64;
        }
        match (page.more, page.matches.last()) {
            (true, Some(last)) => query.page = Some(last.cursor(false)),
            _ => return Ok(recorded),
        }
    }
}

fn to_text(fact: &impl serde::Serialize) -> String {
    // Strings, booleans and lists of them: serializing cannot fail.
    serde_json::to_string(fact).unwrap_or_default()
}

/// The first breach, as the engine's error (422 naming the rule and the resource).
fn refuse(violations: Vec<Violation>) -> Result<(), CoreError> {
    let Some(violation) = violations.into_iter().next() else {
        return Ok(());
    };
    let resource = violation.resource.split_once('/').and_then(|(t, id)| {
        Some((
            t.parse::<ResourceType>().ok()?,
            id.parse::<ResourceId>().ok()?,
        ))
    });
    Err(CoreError::RuleBroken {
        rule: violation.rule.code(),
        message: violation.message,
        resource,
    })
}

/// What the rules read of the patients a transaction touches, inside it: a search per
/// type for all of them together (a Bundle of forty patients costs five searches, not two
/// hundred, inside the one writer), split by patient.
struct Record {
    by_patient: HashMap<String, Vec<Value>>,
    responses: Vec<Value>,
    huvudman: HashMap<String, Huvudman>,
}

/// How many patients one search names at most.
const PATIENTS_PER_SEARCH: usize = 100;

impl Record {
    async fn load(
        tx: &mut dyn StoreTx,
        patients: &BTreeSet<String>,
        changes: &[Change],
    ) -> Result<Record, CoreError> {
        let references: Vec<String> = patients.iter().map(|p| format!("Patient/{p}")).collect();
        let mut resources = Vec::new();
        for resource_type in [
            ResourceType::CareTeam,
            ResourceType::CarePlan,
            ResourceType::Consent,
            ResourceType::Task,
            ResourceType::Appointment,
        ] {
            for chunk in references.chunks(PATIENTS_PER_SEARCH) {
                let list = chunk.join(",");
                resources.extend(all(tx, query(resource_type, &[("patient", &list)])?).await?);
            }
        }
        let appointments: Vec<String> = changes
            .iter()
            .filter(|c| c.resource_type == ResourceType::Appointment && c.after.is_some())
            .map(|c| format!("Appointment/{}", c.id))
            .collect();
        let mut responses = Vec::new();
        for chunk in appointments.chunks(PATIENTS_PER_SEARCH) {
            let list = chunk.join(",");
            responses.extend(
                all(
                    tx,
                    query(ResourceType::AppointmentResponse, &[("appointment", &list)])?,
                )
                .await?,
            );
        }
        let huvudman = huvudman_of(tx, rules::huvudman_references(&resources)).await?;
        // A resource belongs to the patient the rules read it as belonging to.
        let mut by_patient: HashMap<String, Vec<Value>> = HashMap::new();
        for resource in resources {
            if let Some(patient) = rules::patient_of(&resource) {
                by_patient.entry(patient).or_default().push(resource);
            }
        }
        Ok(Record {
            by_patient,
            responses,
            huvudman,
        })
    }

    fn of(&self, patient: &str) -> &[Value] {
        self.by_patient.get(patient).map_or(&[], Vec::as_slice)
    }
}

/// The huvudman of each reference: an Organization with a huvudman type, reached from a
/// PractitionerRole through its `organization` and from a unit through `partOf`.
async fn huvudman_of(
    tx: &mut dyn StoreTx,
    references: Vec<String>,
) -> Result<HashMap<String, Huvudman>, CoreError> {
    let mut found = HashMap::new();
    for reference in references {
        let mut next = Some(reference.clone());
        for _ in 0..MAX_PART_OF_DEPTH {
            let Some(current) = next.take() else {
                break;
            };
            let Some(resource) = read_reference(tx, &current).await? else {
                break;
            };
            match resource.get("resourceType").and_then(Value::as_str) {
                Some("PractitionerRole") => next = reference_at(&resource, "organization"),
                Some("Organization") => {
                    if let Some(kind) = HuvudmanKind::of_organization(&resource) {
                        found.insert(
                            reference.clone(),
                            Huvudman {
                                organization: current,
                                kind,
                            },
                        );
                        break;
                    }
                    next = reference_at(&resource, "partOf");
                }
                _ => break,
            }
        }
    }
    Ok(found)
}

/// An appointment's Slots follow it, in the same transaction: booked (a patient's
/// acceptance, `$book`, any client's update) makes them busy, cancelled makes them free —
/// so the times `$find` offers never include a booked one, and a cancelled time is offered
/// again. Booking a time held for, or booked by, another appointment is refused (409), so
/// a first holder whose hold ran out cannot book over the next one.
async fn slots_follow(
    tx: &mut dyn StoreTx,
    change: &Change,
    before: Option<&Value>,
    after: &Value,
) -> Result<Vec<DerivedWrite>, CoreError> {
    let Some(wanted) = scheduling::slot_status_for(after) else {
        return Ok(Vec::new());
    };
    if before.and_then(scheduling::slot_status_for) == Some(wanted) {
        return Ok(Vec::new());
    }
    let mut derived = Vec::new();
    for slot in scheduling::slots_of(after) {
        let Some((ResourceType::Slot, id)) = split_reference(&slot) else {
            continue;
        };
        let Some(current) = tx
            .read(ResourceType::Slot, &id)
            .await?
            .filter(|c| !c.is_deleted())
        else {
            continue;
        };
        let body = parse(current.body.as_deref().unwrap_or("{}"))?;
        let this = format!("Appointment/{}", change.id);
        let now = OffsetDateTime::now_utc();
        // Who else booked it is asked only of a busy time.
        let booked_by_another = scheduling::slot_state(&body, now) == scheduling::SlotState::Busy
            && all(
                tx,
                query(
                    ResourceType::Appointment,
                    &[
                        ("slot", slot.as_str()),
                        ("status", "booked,arrived,checked-in,fulfilled"),
                    ],
                )?,
            )
            .await?
            .iter()
            .any(|other| self_reference(other).as_deref() != Some(this.as_str()));
        let followed = scheduling::follow(&body, &this, wanted, booked_by_another, now).map_err(
            |message| CoreError::Taken {
                message: format!("{slot}: {message}"),
            },
        )?;
        if let Some(body) = followed {
            derived.push(DerivedWrite {
                resource_type: ResourceType::Slot,
                id,
                body,
                if_match: current.version_id,
                cause: (ResourceType::Appointment, change.id.clone()),
            });
        }
    }
    Ok(derived)
}

/// A withdrawn SIP consent puts the active SIP it named on hold, in the same transaction:
/// the patient's withdrawal is never refused, and every party sees the hold. The derived
/// CarePlan writes are then judged by the rules like any other.
async fn holds(
    tx: &mut dyn StoreTx,
    patient: &str,
    withdrawn: &[Value],
    cause: &ResourceId,
    today: time::Date,
) -> Result<Vec<DerivedWrite>, CoreError> {
    tx.serialize_on(&format!("patientkontrakt/{patient}"))
        .await?;
    let subject = format!("Patient/{patient}");
    let mut resources = all(tx, query(ResourceType::CarePlan, &[("patient", &subject)])?).await?;
    resources.extend(all(tx, query(ResourceType::Consent, &[("patient", &subject)])?).await?);
    let mut derived = Vec::new();
    for held in sip::held_by_withdrawal(&resources, withdrawn, &today.to_string()) {
        let id = held
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| id.parse::<ResourceId>().ok());
        let version = held
            .pointer("/meta/versionId")
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<paraply_fhir::VersionId>().ok());
        if let (Some(id), Some(if_match)) = (id, version) {
            derived.push(DerivedWrite {
                resource_type: ResourceType::CarePlan,
                id,
                body: held,
                if_match,
                cause: (ResourceType::Consent, cause.clone()),
            });
        }
    }
    Ok(derived)
}

/// A patient's (or a relative's) answer to a proposed time moves the Appointment, in the
/// same transaction (RULES.md "Agreed times").
async fn answer(
    tx: &mut dyn StoreTx,
    change: &Change,
    response: &Value,
    today: time::Date,
    answered: &[DerivedWrite],
) -> Result<Option<DerivedWrite>, CoreError> {
    let refused = |message: String| CoreError::RuleBroken {
        rule: Rule::I9.code(),
        message,
        resource: Some((ResourceType::AppointmentResponse, change.id.clone())),
    };
    let Some(appointment_reference) = reference_at(response, "appointment") else {
        return Ok(None);
    };
    let Some((ResourceType::Appointment, appointment_id)) = split_reference(&appointment_reference)
    else {
        return Ok(None);
    };
    let Some(current) = tx
        .read(ResourceType::Appointment, &appointment_id)
        .await?
        .filter(|c| !c.is_deleted())
    else {
        // References are not checked for existence anywhere in Paraply (a client may write
        // the answer before the appointment it answers); there is nothing to move yet.
        return Ok(None);
    };
    // An earlier answer in this transaction has already moved it.
    let appointment = match answered
        .iter()
        .find(|w| w.resource_type == ResourceType::Appointment && w.id == appointment_id)
    {
        Some(earlier) => earlier.body.clone(),
        None => parse(current.body.as_deref().unwrap_or("{}"))?,
    };
    let derived = |body| DerivedWrite {
        resource_type: ResourceType::Appointment,
        id: appointment_id.clone(),
        body,
        if_match: current.version_id,
        cause: (ResourceType::AppointmentResponse, change.id.clone()),
    };
    if is_sip_meeting(&appointment) {
        return sip_meeting_answer(tx, &appointment, response, today)
            .await?
            .map_err(|error| refused(error.to_string()))
            .map(|body| body.map(derived));
    }
    // Staff answering for themselves (a practitioner participant) change nothing here.
    let Some((patient, responder)) = agreed_time::responder(response) else {
        return Ok(None);
    };
    let patient = match (patient, &responder) {
        (Some(patient), Responder::Patient) => patient,
        (_, Responder::Relative { related_person }) => {
            // A relative invited in their own right (to a SIP meeting) answers for
            // themselves, not for the patient: that moves no agreed time.
            if invited(&appointment, related_person) {
                return Ok(None);
            }
            let Some(patient) = rules::patient_of(&appointment) else {
                return Err(refused(format!(
                    "{appointment_reference} has no patient to answer for"
                )));
            };
            let consents = all(
                tx,
                query(
                    ResourceType::Consent,
                    &[("patient", &format!("Patient/{patient}"))],
                )?,
            )
            .await?;
            if !agreed_time::may_book(&consents, &patient, related_person, today) {
                return Err(refused(format!(
                    "{related_person} holds no active consent from Patient/{patient} to answer or book times"
                )));
            }
            patient
        }
        (None, Responder::Patient) => return Ok(None),
    };
    match agreed_time::apply_response(&appointment, response, &patient) {
        Ok(body) => Ok(body.map(derived)),
        Err(error) => Err(refused(error.to_string())),
    }
}

/// An answer to a SIP meeting: every invitee answers for themselves (staff, the patient,
/// an invited relative); a relative who is not invited answers for the patient, with a
/// booking consent. The meeting is booked once the patient, a region and a kommun
/// participant have accepted.
async fn sip_meeting_answer(
    tx: &mut dyn StoreTx,
    meeting: &Value,
    response: &Value,
    today: time::Date,
) -> Result<Result<Option<Value>, agreed_time::ResponseError>, CoreError> {
    let not_allowed = |reason: String| Ok(Err(agreed_time::ResponseError::NotAllowed { reason }));
    let Some(patient) = rules::patient_of(meeting) else {
        return not_allowed("the SIP meeting has no patient".to_owned());
    };
    let patient_reference = format!("Patient/{patient}");
    let Some(mut actor) = reference_at(response, "actor") else {
        return not_allowed("the answer names no actor".to_owned());
    };
    if actor.starts_with("RelatedPerson/") && !invited(meeting, &actor) {
        let consents = all(
            tx,
            query(ResourceType::Consent, &[("patient", &patient_reference)])?,
        )
        .await?;
        if !agreed_time::may_book(&consents, &patient, &actor, today) {
            return not_allowed(format!(
                "{actor} holds no active consent from {patient_reference} to answer for them"
            ));
        }
        actor = patient_reference.clone();
    }
    let actors: Vec<String> = meeting
        .get("participant")
        .and_then(Value::as_array)
        .map(|participants| {
            participants
                .iter()
                .filter_map(|p| reference_at(p, "actor"))
                .collect()
        })
        .unwrap_or_default();
    let huvudman = huvudman_of(tx, actors).await?;
    Ok(sip::apply_meeting_response(
        meeting,
        response,
        &actor,
        &patient_reference,
        &huvudman,
    ))
}

/// Whether `actor` is a participant of the appointment.
fn invited(appointment: &Value, actor: &str) -> bool {
    appointment
        .get("participant")
        .and_then(Value::as_array)
        .is_some_and(|participants| {
            participants
                .iter()
                .any(|p| reference_at(p, "actor").as_deref() == Some(actor))
        })
}

fn parse(body: &str) -> Result<Value, CoreError> {
    serde_json::from_str(body).map_err(|e| {
        CoreError::Store(paraply_store::StoreError::Corrupt(format!(
            "a stored body is not JSON: {e}"
        )))
    })
}

/// `resource.<element>.reference`.
fn reference_at(resource: &Value, element: &str) -> Option<String> {
    resource
        .get(element)
        .and_then(|r| r.get("reference"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// `Type/id` of a literal relative reference.
pub(crate) fn split_reference(reference: &str) -> Option<(ResourceType, ResourceId)> {
    let (type_name, id) = reference.split_once('/')?;
    Some((type_name.parse().ok()?, id.parse().ok()?))
}

async fn read_reference(tx: &mut dyn StoreTx, reference: &str) -> Result<Option<Value>, CoreError> {
    let Some((resource_type, id)) = split_reference(reference) else {
        return Ok(None);
    };
    match tx.read(resource_type, &id).await? {
        Some(stored) => stored.body.as_deref().map(parse).transpose(),
        None => Ok(None),
    }
}

/// A search of `pairs` with no total, a page as large as [`PAGE`].
pub(crate) fn query(
    resource_type: ResourceType,
    pairs: &[(&str, &str)],
) -> Result<SearchQuery, CoreError> {
    let mut query = SearchQuery::parse(resource_type, pairs.iter().copied())?;
    query.count = PAGE;
    query.total = Total::None;
    Ok(query)
}

/// Every match of `query`, page after page, inside the transaction.
async fn all(tx: &mut dyn StoreTx, mut query: SearchQuery) -> Result<Vec<Value>, CoreError> {
    let mut found = Vec::new();
    loop {
        let page = tx.search(&query).await?;
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
