//! The SIP workflow's judgements (DOMAIN.md §3, RULES.md "SIP"), pure like the rules:
//! - how an invitee's `AppointmentResponse` moves a SIP meeting (booked once the patient,
//!   a region and a kommun participant have accepted);
//! - a meeting moved to another time asks everyone again;
//! - a withdrawn SIP consent puts its active SIP on hold, in the same transaction, so the
//!   patient's withdrawal is never refused and every party sees the hold.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::agreed_time::{ResponseError, answer_to_settled};
use crate::json::{list, reference_at, self_reference, status, text};
use crate::kind::{consent_in_force, is_sip, is_sip_consent_for, is_sip_meeting};
use crate::rules::{Huvudman, HuvudmanKind};

/// Whether `meeting` may be `booked`: the patient and at least one region and one kommun
/// participant have accepted. `huvudman` maps participants' actors to their huvudman.
pub fn may_be_booked(
    meeting: &Value,
    patient: &str,
    huvudman: &HashMap<String, Huvudman>,
) -> Result<(), String> {
    let accepted: Vec<String> = list(meeting, "participant")
        .iter()
        .filter(|p| text(p, "status") == Some("accepted"))
        .filter_map(|p| reference_at(p, "actor"))
        .collect();
    let mut missing = Vec::new();
    if !accepted.iter().any(|actor| actor == patient) {
        missing.push("the patient");
    }
    for (kind, name) in [
        (HuvudmanKind::Region, "a region participant"),
        (HuvudmanKind::Kommun, "a kommun participant"),
    ] {
        if !accepted
            .iter()
            .any(|actor| huvudman.get(actor).is_some_and(|h| h.kind == kind))
        {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("not accepted yet by {}", missing.join(", ")))
    }
}

/// The meeting as it must become after `actor` (an invited participant) answers with
/// `response`; `Ok(None)` when nothing changes.
pub fn apply_meeting_response(
    meeting: &Value,
    response: &Value,
    actor: &str,
    patient: &str,
    huvudman: &HashMap<String, Huvudman>,
) -> Result<Option<Value>, ResponseError> {
    let Some(index) = list(meeting, "participant")
        .iter()
        .position(|p| reference_at(p, "actor").as_deref() == Some(actor))
    else {
        return Err(ResponseError::NotAllowed {
            reason: format!("{actor} is not invited to this SIP meeting"),
        });
    };
    let answer = text(response, "participantStatus").unwrap_or_default();
    if !matches!(answer, "accepted" | "declined" | "tentative") {
        return Err(ResponseError::Unsupported {
            reason: format!(
                "participantStatus '{answer}' is not an answer to a SIP meeting (accepted, declined or tentative)"
            ),
        });
    }
    if let Some(settled) = answer_to_settled(meeting, index, answer) {
        return settled;
    }
    let mut updated = meeting.clone();
    if let Some(participant) = updated
        .get_mut("participant")
        .and_then(Value::as_array_mut)
        .and_then(|participants| participants.get_mut(index))
    {
        participant["status"] = json!(answer);
    }
    let timed = meeting.get("start").is_some() && meeting.get("end").is_some();
    let new_status = if timed && may_be_booked(&updated, patient, huvudman).is_ok() {
        "booked"
    } else {
        "pending"
    };
    updated["status"] = json!(new_status);
    Ok((updated != *meeting).then_some(updated))
}

/// Why a SIP meeting written as `after` over `before` breaks "a moved meeting asks everyone
/// again": its time changed but some participant's earlier answer stands.
pub fn moved_without_asking(before: &Value, after: &Value) -> Option<String> {
    if !is_sip_meeting(before) || !is_sip_meeting(after) {
        return None;
    }
    let moved = before.get("start") != after.get("start") || before.get("end") != after.get("end");
    if !moved {
        return None;
    }
    let answered: Vec<String> = list(after, "participant")
        .iter()
        .filter(|p| text(p, "status").is_some_and(|s| s != "needs-action"))
        .filter_map(|p| reference_at(p, "actor"))
        .collect();
    if answered.is_empty() && status(after) != Some("booked") {
        return None;
    }
    Some(format!(
        "{} moved to another time keeps earlier answers ({}); a moved meeting asks everyone again: \
         every participant's status needs-action and the meeting pending (or use $sip-meeting with 'meeting')",
        self_reference(after).unwrap_or_else(|| "the meeting".to_owned()),
        if answered.is_empty() {
            "status booked".to_owned()
        } else {
            answered.join(", ")
        }
    ))
}

/// The meeting moved to `start`–`end`: every participant asked again.
pub fn moved(meeting: &Value, start: &str, end: &str) -> Value {
    let mut moved = meeting.clone();
    moved["start"] = json!(start);
    moved["end"] = json!(end);
    moved["status"] = json!("pending");
    if let Some(participants) = moved.get_mut("participant").and_then(Value::as_array_mut) {
        for participant in participants {
            participant["status"] = json!("needs-action");
        }
    }
    moved
}

/// The active SIPs among `resources` (one patient's) that lose their consent by the
/// withdrawal of `withdrawn` (Consents in force before this transaction), put on hold:
/// the new bodies.
pub fn held_by_withdrawal(resources: &[Value], withdrawn: &[Value], today: &str) -> Vec<Value> {
    resources
        .iter()
        .filter(|plan| is_sip(plan) && status(plan) == Some("active"))
        .filter(|sip| {
            let Some(this) = self_reference(sip) else {
                return false;
            };
            withdrawn
                .iter()
                .any(|consent| is_sip_consent_for(consent, &this))
                && !resources.iter().any(|consent| {
                    consent_in_force(consent, today) && is_sip_consent_for(consent, &this)
                })
        })
        .map(|sip| {
            let mut held = sip.clone();
            held["status"] = json!("on-hold");
            held
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use paraply_fhir::codes;

    use super::*;

    fn huvudman() -> HashMap<String, Huvudman> {
        [
            (
                "PractitionerRole/lakare",
                "Organization/region",
                HuvudmanKind::Region,
            ),
            (
                "PractitionerRole/omsorg",
                "Organization/kommun",
                HuvudmanKind::Kommun,
            ),
        ]
        .into_iter()
        .map(|(actor, organization, kind)| {
            (
                actor.to_owned(),
                Huvudman {
                    organization: organization.to_owned(),
                    kind,
                },
            )
        })
        .collect()
    }

    fn meeting(statuses: [&str; 3]) -> Value {
        json!({"resourceType": "Appointment", "id": "m1", "status": "proposed",
            "serviceType": [{"coding": [{"system": codes::SERVICE_TYPE_SYSTEM, "code": codes::SIP_MOTE}]}],
            "start": "2031-03-01T09:00:00+01:00", "end": "2031-03-01T10:00:00+01:00",
            "participant": [
                {"actor": {"reference": "Patient/p"}, "status": statuses[0]},
                {"actor": {"reference": "PractitionerRole/lakare"}, "status": statuses[1]},
                {"actor": {"reference": "PractitionerRole/omsorg"}, "status": statuses[2]}]})
    }

    fn answer(status: &str) -> Value {
        json!({"resourceType": "AppointmentResponse", "participantStatus": status})
    }

    #[test]
    fn booked_when_the_patient_region_and_kommun_have_accepted() {
        let m = meeting(["accepted", "accepted", "needs-action"]);
        let pending = apply_meeting_response(
            &m,
            &answer("tentative"),
            "PractitionerRole/omsorg",
            "Patient/p",
            &huvudman(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(pending["status"], "pending");
        let booked = apply_meeting_response(
            &m,
            &answer("accepted"),
            "PractitionerRole/omsorg",
            "Patient/p",
            &huvudman(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(booked["status"], "booked");
        // A decline afterwards takes the booking back.
        let declined = apply_meeting_response(
            &booked,
            &answer("declined"),
            "Patient/p",
            "Patient/p",
            &huvudman(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(declined["status"], "pending");
    }

    #[test]
    fn a_recorded_answer_to_a_past_meeting_changes_nothing() {
        let mut m = meeting(["accepted", "accepted", "accepted"]);
        m["status"] = json!("fulfilled");
        assert_eq!(
            apply_meeting_response(
                &m,
                &answer("accepted"),
                "Patient/p",
                "Patient/p",
                &huvudman()
            ),
            Ok(None)
        );
        assert!(
            apply_meeting_response(
                &m,
                &answer("declined"),
                "Patient/p",
                "Patient/p",
                &huvudman()
            )
            .is_err()
        );
    }

    #[test]
    fn only_invitees_answer() {
        let m = meeting(["needs-action"; 3]);
        assert!(
            apply_meeting_response(
                &m,
                &answer("accepted"),
                "PractitionerRole/annan",
                "Patient/p",
                &huvudman()
            )
            .is_err()
        );
    }

    #[test]
    fn a_moved_meeting_asks_everyone_again() {
        let before = meeting(["accepted", "accepted", "accepted"]);
        let mut after = before.clone();
        after["start"] = json!("2031-03-02T09:00:00+01:00");
        assert!(moved_without_asking(&before, &after).is_some());
        let asked = moved(
            &before,
            "2031-03-02T09:00:00+01:00",
            "2031-03-02T10:00:00+01:00",
        );
        assert!(moved_without_asking(&before, &asked).is_none());
        assert_eq!(asked["participant"][0]["status"], "needs-action");
        assert_eq!(asked["status"], "pending");
    }

    #[test]
    fn a_booked_meeting_needs_a_kommun_acceptance() {
        let m = meeting(["accepted", "accepted", "declined"]);
        assert!(
            may_be_booked(&m, "Patient/p", &huvudman())
                .unwrap_err()
                .contains("kommun")
        );
    }
}
