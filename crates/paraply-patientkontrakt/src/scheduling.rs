//! Booking times (issue 15), pure: whether a Slot is free now, how a hold marks it, what a
//! found time looks like as a proposed Appointment, and how an agreed time's Slot follows
//! the Appointment (booked → busy, cancelled → free). The operations that use these live in
//! `engine/scheduling_operations.rs`; the Slot updates are derived by the write rule, so a
//! patient's acceptance or a cancellation by any client keeps the Slot right.

use paraply_fhir::codes;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::json::{list, reference_at, references_at, status, text};

/// A Slot's state for booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    Free,
    /// Held (`busy-tentative`) until the instant, which has not passed.
    Held,
    Busy,
}

/// The state of `slot` at `now`: a hold that has run out is free again.
pub fn slot_state(slot: &Value, now: OffsetDateTime) -> SlotState {
    match status(slot) {
        Some("free") => SlotState::Free,
        Some("busy-tentative") => match held_until(slot) {
            Some(until) if until > now => SlotState::Held,
            _ => SlotState::Free,
        },
        _ => SlotState::Busy,
    }
}

fn held_until(slot: &Value) -> Option<OffsetDateTime> {
    list(slot, "extension")
        .iter()
        .find(|e| text(e, "url") == Some(codes::SLOT_HELD_UNTIL_EXTENSION))
        .and_then(|e| text(e, "valueInstant"))
        .and_then(|instant| OffsetDateTime::parse(instant, &Rfc3339).ok())
}

/// The Appointment a held slot is held for.
fn holder(slot: &Value) -> Option<String> {
    list(slot, "extension")
        .iter()
        .find(|e| text(e, "url") == Some(codes::SLOT_HELD_FOR_EXTENSION))
        .and_then(|e| reference_at(e, "valueReference"))
}

fn without_hold(slot: &Value) -> Value {
    let mut slot = slot.clone();
    let mut emptied = false;
    if let Some(extensions) = slot.get_mut("extension").and_then(Value::as_array_mut) {
        extensions.retain(|e| {
            !matches!(
                text(e, "url"),
                Some(codes::SLOT_HELD_UNTIL_EXTENSION | codes::SLOT_HELD_FOR_EXTENSION)
            )
        });
        emptied = extensions.is_empty();
    }
    if emptied && let Some(map) = slot.as_object_mut() {
        map.remove("extension");
    }
    slot
}

/// The slot held for `appointment` (`Appointment/id`) until `until`: `busy-tentative` with
/// the held-until and held-for extensions.
pub fn held(slot: &Value, until: OffsetDateTime, appointment: &str) -> Value {
    let mut slot = without_hold(slot);
    slot["status"] = json!("busy-tentative");
    let instant = until.format(&Rfc3339).unwrap_or_default();
    let hold = [
        json!({"url": codes::SLOT_HELD_UNTIL_EXTENSION, "valueInstant": instant}),
        json!({"url": codes::SLOT_HELD_FOR_EXTENSION, "valueReference": {"reference": appointment}}),
    ];
    match slot.get_mut("extension").and_then(Value::as_array_mut) {
        Some(extensions) => extensions.extend(hold),
        None => slot["extension"] = Value::Array(hold.to_vec()),
    }
    slot
}

/// The slot as it must become when `appointment` (`Appointment/id`) that names it becomes
/// booked (`wanted` busy) or cancelled (`wanted` free), at `now`; `Ok(None)` leaves it.
/// `booked_by_another`: another booked appointment names it (asked only of a busy slot).
/// Booking a time held for another appointment, or booked by one, is refused — a hold that
/// ran out and was taken since cannot be booked by its first holder; cancelling leaves a
/// time that another appointment holds or has booked as it is.
pub fn follow(
    slot: &Value,
    appointment: &str,
    wanted: &str,
    booked_by_another: bool,
    now: OffsetDateTime,
) -> Result<Option<Value>, String> {
    let state = slot_state(slot, now);
    let held_for_another = state == SlotState::Held && holder(slot).as_deref() != Some(appointment);
    let taken = held_for_another || (state == SlotState::Busy && booked_by_another);
    match (wanted, taken) {
        ("busy", true) => Err(format!(
            "the time is {} for another appointment; ask for another time",
            if held_for_another { "held" } else { "booked" }
        )),
        (_, true) => Ok(None),
        (wanted, false) => Ok(with_status(slot, wanted)),
    }
}

/// The slot with `status` and no hold; `None` when it already is so.
pub fn with_status(slot: &Value, new_status: &str) -> Option<Value> {
    let mut updated = without_hold(slot);
    updated["status"] = json!(new_status);
    (updated != *slot).then_some(updated)
}

/// A time found for `patient` in `slot` of a schedule whose actors are `actors`: the
/// proposed AgreedAppointment `$find` answers and `$hold` stores (the patient must accept
/// it, I9).
pub fn proposed_appointment(
    slot: &Value,
    slot_reference: &str,
    actors: &[String],
    patient: Option<&str>,
) -> Value {
    let mut participants: Vec<Value> = Vec::new();
    if let Some(patient) = patient {
        participants.push(json!({"actor": {"reference": patient}, "required": "required", "status": "needs-action"}));
    }
    participants.extend(actors.iter().map(|actor| {
        json!({"actor": {"reference": actor}, "required": "required", "status": "accepted"})
    }));
    let mut appointment = json!({
        "resourceType": "Appointment",
        "meta": {"profile": [codes::profile::AGREED_APPOINTMENT]},
        "status": "proposed",
        "start": slot.get("start").cloned().unwrap_or(Value::Null),
        "end": slot.get("end").cloned().unwrap_or(Value::Null),
        "slot": [{"reference": slot_reference}],
        "participant": participants,
    });
    for key in [
        "serviceType",
        "serviceCategory",
        "specialty",
        "appointmentType",
    ] {
        if let Some(value) = slot.get(key) {
            appointment[key] = value.clone();
        }
    }
    appointment
}

/// The Slot status an Appointment's state calls for: booked → busy, cancelled (or entered
/// in error, no-show) → free; `None` where the Appointment leaves its Slot as it is.
pub fn slot_status_for(appointment: &Value) -> Option<&'static str> {
    match status(appointment) {
        Some("booked" | "arrived" | "checked-in" | "fulfilled") => Some("busy"),
        Some("cancelled" | "entered-in-error" | "noshow") => Some("free"),
        _ => None,
    }
}

/// The Slots an Appointment names.
pub fn slots_of(appointment: &Value) -> Vec<String> {
    references_at(appointment, "slot")
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;

    fn slot(status: &str) -> Value {
        json!({"resourceType": "Slot", "id": "s1", "status": status,
               "schedule": {"reference": "Schedule/vc"},
               "start": "2031-03-01T09:00:00+01:00", "end": "2031-03-01T09:20:00+01:00"})
    }

    #[test]
    fn a_held_time_is_booked_only_by_its_holder() {
        let now = OffsetDateTime::now_utc();
        let held = held(&slot("free"), now + Duration::minutes(5), "Appointment/a");
        let booked = follow(&held, "Appointment/a", "busy", false, now)
            .unwrap()
            .unwrap();
        assert_eq!(booked["status"], "busy");
        assert!(follow(&held, "Appointment/b", "busy", false, now).is_err());
        // Cancelling another appointment leaves the hold; after it runs out, anyone may.
        assert_eq!(follow(&held, "Appointment/b", "free", false, now), Ok(None));
        let later = now + Duration::minutes(6);
        assert!(
            follow(&held, "Appointment/b", "busy", false, later)
                .unwrap()
                .is_some()
        );
        // A time booked by another appointment is not booked again, nor freed by a third.
        assert!(follow(&slot("busy"), "Appointment/c", "busy", true, now).is_err());
        assert_eq!(
            follow(&slot("busy"), "Appointment/c", "free", true, now),
            Ok(None)
        );
        assert!(
            follow(&slot("busy"), "Appointment/c", "free", false, now)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_hold_runs_out_by_itself() {
        let now = OffsetDateTime::now_utc();
        let held = held(&slot("free"), now + Duration::minutes(5), "Appointment/a");
        assert_eq!(slot_state(&held, now), SlotState::Held);
        assert_eq!(
            slot_state(&held, now + Duration::minutes(6)),
            SlotState::Free
        );
        assert_eq!(slot_state(&slot("busy"), now), SlotState::Busy);
        let booked = with_status(&held, "busy").unwrap();
        assert!(booked.get("extension").is_none(), "{booked}");
    }

    #[test]
    fn a_found_time_is_a_proposed_agreed_appointment_for_the_patient() {
        let appointment = proposed_appointment(
            &slot("free"),
            "Slot/s1",
            &["PractitionerRole/anna".into()],
            Some("Patient/p"),
        );
        assert_eq!(appointment["status"], "proposed");
        assert_eq!(appointment["participant"][0]["status"], "needs-action");
        assert_eq!(appointment["slot"][0]["reference"], "Slot/s1");
        assert_eq!(slots_of(&appointment), vec!["Slot/s1".to_owned()]);
    }
}
