//! Agreed times (Överenskommen tid, RULES.md "Agreed times"): the patient, or a relative
//! holding a booking consent, answers a proposed time with an `AppointmentResponse`, and
//! the Appointment follows: accepted → booked (when every required participant has
//! accepted), declined → cancelled, another time wished → back to pending.

use std::fmt;

use serde_json::{Value, json};

use crate::json::{list, reference_at, self_reference, status, text};
use crate::kind::{
    ConsentAction, consent_allows, consent_in_force, consent_of_patient, narstaende_of,
};

/// Who answers a proposed time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Responder {
    Patient,
    /// A relative answering for the patient; allowed only with a booking consent.
    Relative {
        related_person: String,
    },
}

/// Why a response cannot be applied to an Appointment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseError {
    /// The patient is not a participant of the appointment answered.
    NotAnAppointmentOfThePatient,
    /// The answer is understood but not allowed in the appointment's state.
    NotAllowed { reason: String },
    /// The answer is not one Paraply knows how to apply.
    Unsupported { reason: String },
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::NotAnAppointmentOfThePatient => {
                f.write_str("the patient is not a participant of this appointment")
            }
            ResponseError::NotAllowed { reason } | ResponseError::Unsupported { reason } => {
                f.write_str(reason)
            }
        }
    }
}

impl std::error::Error for ResponseError {}

/// The patient id the response answers for, and who answers: from
/// `AppointmentResponse.actor` (`Patient/p1` → `(Some("p1"), Patient)`;
/// `RelatedPerson/r` → `(None, Relative)`, whose patient and consent the caller must
/// establish). `None` if the actor is neither.
pub fn responder(response: &Value) -> Option<(Option<String>, Responder)> {
    let actor = reference_at(response, "actor")?;
    if let Some(patient) = actor.strip_prefix("Patient/") {
        return Some((Some(patient.to_owned()), Responder::Patient));
    }
    if actor.starts_with("RelatedPerson/") {
        return Some((
            None,
            Responder::Relative {
                related_person: actor,
            },
        ));
    }
    None
}

/// Whether a relative may answer for `patient`: an active (on `today`) närstående consent
/// of the patient, naming `related_person` (`RelatedPerson/x`), with the action `book`.
pub fn may_book(
    consents: &[Value],
    patient: &str,
    related_person: &str,
    today: time::Date,
) -> bool {
    let today = today.to_string();
    consents.iter().any(|consent| {
        consent_in_force(consent, &today)
            && consent_of_patient(consent, patient)
            && narstaende_of(consent)
                .iter()
                .any(|named| named == related_person)
            && consent_allows(consent, ConsentAction::Book)
    })
}

/// Appointment states in which the time is settled or past: an answer can no longer
/// change them (only repeat what they already say).
const SETTLED: &[&str] = &[
    "cancelled",
    "entered-in-error",
    "fulfilled",
    "noshow",
    "arrived",
    "checked-in",
];

/// An answer by participant `index` to an appointment that is settled or past: a record of
/// the answer given before it took place (or was cancelled) changes nothing, a new answer is
/// refused. `None` when the appointment can still be answered.
pub(crate) fn answer_to_settled(
    appointment: &Value,
    index: usize,
    answer: &str,
) -> Option<Result<Option<Value>, ResponseError>> {
    let current = status(appointment).unwrap_or_default();
    if !SETTLED.contains(&current) {
        return None;
    }
    let answered_before = list(appointment, "participant")
        .get(index)
        .and_then(|participant| text(participant, "status"));
    if answered_before == Some(answer) {
        return Some(Ok(None));
    }
    Some(Err(ResponseError::NotAllowed {
        reason: format!(
            "{} is {current}; it can no longer be answered",
            self_reference(appointment).unwrap_or_else(|| "the appointment".to_owned())
        ),
    }))
}

/// The Appointment as it must become after `response` from `patient` (or a relative
/// answering for them): a new body with `id` and `meta` as in `appointment`, or
/// `Ok(None)` when nothing changes (a repeated answer).
pub fn apply_response(
    appointment: &Value,
    response: &Value,
    patient: &str,
) -> Result<Option<Value>, ResponseError> {
    let answered = reference_at(response, "appointment");
    if answered.is_some() && answered != self_reference(appointment) {
        return Err(ResponseError::NotAllowed {
            reason: format!(
                "the response answers {}, not {}",
                answered.unwrap_or_default(),
                self_reference(appointment).unwrap_or_default()
            ),
        });
    }
    let patient_actor = format!("Patient/{patient}");
    let Some(index) = list(appointment, "participant")
        .iter()
        .position(|p| reference_at(p, "actor").as_deref() == Some(patient_actor.as_str()))
    else {
        return Err(ResponseError::NotAnAppointmentOfThePatient);
    };

    let answer = text(response, "participantStatus").unwrap_or_default();
    let current = status(appointment).unwrap_or_default();
    if let Some(settled) = answer_to_settled(appointment, index, answer) {
        return settled;
    }
    let wishes_other_time = response.get("start").is_some() || response.get("end").is_some();
    let mut updated = appointment.clone();
    set_participant_status(&mut updated, index, answer);
    let new_status = match answer {
        "accepted" => {
            if every_required_participant_accepted(&updated) {
                "booked"
            } else {
                "pending"
            }
        }
        "declined" if wishes_other_time => {
            return Err(ResponseError::Unsupported {
                reason: "a decline carries no start or end; to ask for another time, answer \
                         'tentative' with the wished start and end"
                    .to_owned(),
            });
        }
        "declined" => "cancelled",
        "tentative" if current == "booked" => "pending",
        "tentative" => current,
        other => {
            return Err(ResponseError::Unsupported {
                reason: format!(
                    "participantStatus '{other}' is not an answer to a proposed time \
                     (accepted, declined or tentative)"
                ),
            });
        }
    };
    updated["status"] = json!(new_status);

    if updated == *appointment {
        return Ok(None);
    }
    // R4 app-3: only proposed or cancelled appointments may lack start and end.
    let timed = appointment.get("start").is_some() && appointment.get("end").is_some();
    if !timed && !matches!(new_status, "proposed" | "cancelled") {
        return Err(ResponseError::NotAllowed {
            reason: "the appointment has no start and end yet, so it cannot be accepted".to_owned(),
        });
    }
    Ok(Some(updated))
}

fn set_participant_status(appointment: &mut Value, index: usize, answer: &str) {
    if let Some(participant) = appointment
        .get_mut("participant")
        .and_then(Value::as_array_mut)
        .and_then(|participants| participants.get_mut(index))
    {
        participant["status"] = json!(answer);
    }
}

/// Every participant whose `required` is `required` or absent has accepted.
fn every_required_participant_accepted(appointment: &Value) -> bool {
    list(appointment, "participant").iter().all(|participant| {
        let required = text(participant, "required").unwrap_or("required") == "required";
        !required || text(participant, "status") == Some("accepted")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use paraply_fhir::codes;
    use time::macros::date;

    fn proposed_time(status: &str, patient_status: &str, unit_status: &str) -> Value {
        json!({
            "resourceType": "Appointment",
            "id": "besok-1",
            "meta": {"versionId": "3", "lastUpdated": "2026-04-01T08:00:00Z",
                     "profile": [codes::profile::AGREED_APPOINTMENT]},
            "status": status,
            "start": "2026-04-14T09:30:00+02:00",
            "end": "2026-04-14T10:00:00+02:00",
            "participant": [
                {"actor": {"reference": "Patient/tolvan"}, "required": "required", "status": patient_status},
                {"actor": {"reference": "PractitionerRole/anna-lakare"}, "required": "required", "status": unit_status},
                {"actor": {"reference": "Location/mottagning-2"}, "required": "information-only", "status": "needs-action"}
            ]
        })
    }

    fn answer(actor: &str, participant_status: &str) -> Value {
        json!({
            "resourceType": "AppointmentResponse",
            "appointment": {"reference": "Appointment/besok-1"},
            "actor": {"reference": actor},
            "participantStatus": participant_status
        })
    }

    fn patient_status(appointment: &Value) -> &str {
        appointment["participant"][0]["status"].as_str().unwrap()
    }

    #[test]
    fn accepting_when_every_required_participant_accepted_books_the_time() {
        let appointment = proposed_time("proposed", "needs-action", "accepted");
        let updated = apply_response(
            &appointment,
            &answer("Patient/tolvan", "accepted"),
            "tolvan",
        )
        .unwrap()
        .unwrap();
        assert_eq!(updated["status"], "booked");
        assert_eq!(patient_status(&updated), "accepted");
        assert_eq!(updated["id"], "besok-1");
        assert_eq!(updated["meta"], appointment["meta"]);
    }

    #[test]
    fn accepting_while_the_unit_has_not_accepted_leaves_the_time_pending() {
        let appointment = proposed_time("proposed", "needs-action", "needs-action");
        let updated = apply_response(
            &appointment,
            &answer("Patient/tolvan", "accepted"),
            "tolvan",
        )
        .unwrap()
        .unwrap();
        assert_eq!(updated["status"], "pending");
        assert_eq!(patient_status(&updated), "accepted");
    }

    #[test]
    fn declining_cancels_the_time() {
        let appointment = proposed_time("pending", "needs-action", "accepted");
        let updated = apply_response(
            &appointment,
            &answer("Patient/tolvan", "declined"),
            "tolvan",
        )
        .unwrap()
        .unwrap();
        assert_eq!(updated["status"], "cancelled");
        assert_eq!(patient_status(&updated), "declined");
    }

    #[test]
    fn asking_for_another_time_sends_a_booked_time_back_to_pending() {
        let appointment = proposed_time("booked", "accepted", "accepted");
        let mut response = answer("Patient/tolvan", "tentative");
        response["start"] = json!("2026-04-16T13:00:00+02:00");
        response["end"] = json!("2026-04-16T13:30:00+02:00");
        response["comment"] = json!("Jag kan inte på tisdagar, går torsdag eftermiddag?");
        let updated = apply_response(&appointment, &response, "tolvan")
            .unwrap()
            .unwrap();
        assert_eq!(updated["status"], "pending");
        assert_eq!(patient_status(&updated), "tentative");
        // The wished time is the response's, not the appointment's: it stays as proposed.
        assert_eq!(updated["start"], appointment["start"]);
    }

    #[test]
    fn asking_for_another_time_keeps_a_proposed_time_proposed() {
        let appointment = proposed_time("proposed", "needs-action", "accepted");
        let updated = apply_response(
            &appointment,
            &answer("Patient/tolvan", "tentative"),
            "tolvan",
        )
        .unwrap()
        .unwrap();
        assert_eq!(updated["status"], "proposed");
        assert_eq!(patient_status(&updated), "tentative");
    }

    #[test]
    fn answering_an_appointment_without_the_patient_is_refused() {
        let appointment = proposed_time("proposed", "needs-action", "accepted");
        let result = apply_response(&appointment, &answer("Patient/annan", "accepted"), "annan");
        assert_eq!(result, Err(ResponseError::NotAnAppointmentOfThePatient));
    }

    #[test]
    fn a_relative_answers_on_the_patients_participant() {
        let appointment = proposed_time("proposed", "needs-action", "accepted");
        let response = answer("RelatedPerson/lisa", "accepted");
        let updated = apply_response(&appointment, &response, "tolvan")
            .unwrap()
            .unwrap();
        assert_eq!(patient_status(&updated), "accepted");
        assert_eq!(updated["status"], "booked");
    }

    #[test]
    fn repeating_an_answer_changes_nothing() {
        let appointment = proposed_time("booked", "accepted", "accepted");
        let result = apply_response(
            &appointment,
            &answer("Patient/tolvan", "accepted"),
            "tolvan",
        );
        assert_eq!(result, Ok(None));
    }

    #[test]
    fn a_cancelled_time_cannot_be_accepted_again() {
        let appointment = proposed_time("cancelled", "declined", "accepted");
        let result = apply_response(
            &appointment,
            &answer("Patient/tolvan", "accepted"),
            "tolvan",
        );
        assert!(
            matches!(result, Err(ResponseError::NotAllowed { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn needs_action_is_not_an_answer() {
        let appointment = proposed_time("proposed", "needs-action", "accepted");
        let result = apply_response(
            &appointment,
            &answer("Patient/tolvan", "needs-action"),
            "tolvan",
        );
        assert!(
            matches!(result, Err(ResponseError::Unsupported { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn the_responder_is_read_from_the_actor() {
        assert_eq!(
            responder(&answer("Patient/tolvan", "accepted")),
            Some((Some("tolvan".to_owned()), Responder::Patient))
        );
        assert_eq!(
            responder(&answer("RelatedPerson/lisa", "accepted")),
            Some((
                None,
                Responder::Relative {
                    related_person: "RelatedPerson/lisa".to_owned()
                }
            ))
        );
        assert_eq!(
            responder(&answer("PractitionerRole/anna-lakare", "accepted")),
            None
        );
    }

    fn narstaende_consent(actions: &[(&str, &str)], status: &str) -> Value {
        let action: Vec<Value> = actions
            .iter()
            .map(|(system, code)| json!({"coding": [{"system": system, "code": code}]}))
            .collect();
        json!({
            "resourceType": "Consent", "id": "samtycke-lisa", "status": status,
            "patient": {"reference": "Patient/tolvan"},
            "provision": {"type": "permit", "period": {"start": "2026-01-01"},
                          "actor": [{"role": {"text": "närstående"}, "reference": {"reference": "RelatedPerson/lisa"}}],
                          "action": action}
        })
    }

    #[test]
    fn only_a_relative_with_an_active_booking_consent_may_book() {
        let read = (
            "http://terminology.hl7.org/CodeSystem/consentaction",
            "access",
        );
        let book = (codes::CONSENT_ACTION_SYSTEM, codes::BOOK);
        let today = date!(2026 - 04 - 10);
        let booking = [narstaende_consent(&[read, book], "active")];
        assert!(may_book(&booking, "tolvan", "RelatedPerson/lisa", today));
        assert!(!may_book(&booking, "tolvan", "RelatedPerson/other", today));
        assert!(!may_book(&booking, "other", "RelatedPerson/lisa", today));
        assert!(!may_book(
            &booking,
            "tolvan",
            "RelatedPerson/lisa",
            date!(2025 - 12 - 31)
        ));
        let read_only = [narstaende_consent(&[read], "active")];
        assert!(!may_book(&read_only, "tolvan", "RelatedPerson/lisa", today));
        let withdrawn = [narstaende_consent(&[read, book], "inactive")];
        assert!(!may_book(&withdrawn, "tolvan", "RelatedPerson/lisa", today));
    }
}
