//! Codes of the required value-set bindings on the served types (R4 4.0.1).
//!
//! fhirbolt models codes as plain strings, so a required binding is checked here. The table
//! is cross-checked against the official binding list in `../shared/fhir-r4` by a test.

/// `(element path, allowed codes)` for every required binding with a fixed code list.
pub const REQUIRED_BINDINGS: &[(&str, &[&str])] = &[
    (
        "Appointment.status",
        &[
            "proposed",
            "pending",
            "booked",
            "arrived",
            "fulfilled",
            "cancelled",
            "noshow",
            "entered-in-error",
            "checked-in",
            "waitlist",
        ],
    ),
    (
        "Appointment.participant.required",
        &["required", "optional", "information-only"],
    ),
    ("Appointment.participant.status", PARTICIPATION_STATUS),
    (
        "AppointmentResponse.participantStatus",
        PARTICIPATION_STATUS,
    ),
    ("AuditEvent.action", &["C", "R", "U", "D", "E"]),
    ("AuditEvent.outcome", &["0", "4", "8", "12"]),
    ("AuditEvent.agent.network.type", &["1", "2", "3", "4", "5"]),
    ("CarePlan.status", REQUEST_STATUS),
    ("CarePlan.intent", &["proposal", "plan", "order", "option"]),
    (
        "CarePlan.activity.detail.kind",
        &[
            "Appointment",
            "CommunicationRequest",
            "DeviceRequest",
            "MedicationRequest",
            "NutritionOrder",
            "Task",
            "ServiceRequest",
            "VisionPrescription",
        ],
    ),
    (
        "CarePlan.activity.detail.status",
        &[
            "not-started",
            "scheduled",
            "in-progress",
            "on-hold",
            "completed",
            "cancelled",
            "stopped",
            "unknown",
            "entered-in-error",
        ],
    ),
    (
        "CareTeam.status",
        &[
            "proposed",
            "active",
            "suspended",
            "inactive",
            "entered-in-error",
        ],
    ),
    (
        "Communication.status",
        &[
            "preparation",
            "in-progress",
            "not-done",
            "on-hold",
            "stopped",
            "completed",
            "entered-in-error",
            "unknown",
        ],
    ),
    ("Communication.priority", REQUEST_PRIORITY),
    ("CommunicationRequest.status", REQUEST_STATUS),
    ("CommunicationRequest.priority", REQUEST_PRIORITY),
    (
        "Consent.status",
        &[
            "draft",
            "proposed",
            "active",
            "rejected",
            "inactive",
            "entered-in-error",
        ],
    ),
    ("Consent.provision.type", &["deny", "permit"]),
    (
        "Consent.provision.data.meaning",
        &["instance", "related", "dependents", "authoredby"],
    ),
    (
        "DocumentReference.status",
        &["current", "superseded", "entered-in-error"],
    ),
    ("Encounter.status", ENCOUNTER_STATUS),
    ("Encounter.statusHistory.status", ENCOUNTER_STATUS),
    (
        "Encounter.location.status",
        &["planned", "active", "reserved", "completed"],
    ),
    (
        "Goal.lifecycleStatus",
        &[
            "proposed",
            "planned",
            "accepted",
            "active",
            "on-hold",
            "completed",
            "cancelled",
            "entered-in-error",
            "rejected",
        ],
    ),
    (
        "Group.type",
        &[
            "person",
            "animal",
            "practitioner",
            "device",
            "medication",
            "substance",
        ],
    ),
    ("HealthcareService.availableTime.daysOfWeek", DAYS_OF_WEEK),
    ("Location.status", &["active", "suspended", "inactive"]),
    ("Location.mode", &["instance", "kind"]),
    ("Location.hoursOfOperation.daysOfWeek", DAYS_OF_WEEK),
    ("Patient.gender", GENDER),
    ("Patient.contact.gender", GENDER),
    (
        "Patient.link.type",
        &["replaced-by", "replaces", "refer", "seealso"],
    ),
    ("Practitioner.gender", GENDER),
    ("PractitionerRole.availableTime.daysOfWeek", DAYS_OF_WEEK),
    (
        "Provenance.entity.role",
        &["derivation", "revision", "quotation", "source", "removal"],
    ),
    ("RelatedPerson.gender", GENDER),
    (
        "Slot.status",
        &[
            "busy",
            "free",
            "busy-unavailable",
            "busy-tentative",
            "entered-in-error",
        ],
    ),
    (
        "Subscription.status",
        &["requested", "active", "error", "off"],
    ),
    (
        "Subscription.channel.type",
        &["rest-hook", "websocket", "email", "sms", "message"],
    ),
    (
        "Task.status",
        &[
            "draft",
            "requested",
            "received",
            "accepted",
            "rejected",
            "ready",
            "cancelled",
            "in-progress",
            "on-hold",
            "failed",
            "completed",
            "entered-in-error",
        ],
    ),
    (
        "Task.intent",
        &[
            "unknown",
            "proposal",
            "plan",
            "order",
            "original-order",
            "reflex-order",
            "filler-order",
            "instance-order",
            "option",
        ],
    ),
    ("Task.priority", REQUEST_PRIORITY),
];

/// Elements with minimum cardinality 1 on the served types (R4 4.0.1), checked with exact
/// paths before parsing so a missing element is named precisely.
pub const REQUIRED_ELEMENTS: &[&str] = &[
    "Appointment.participant",
    "Appointment.participant.status",
    "Appointment.status",
    "AppointmentResponse.appointment",
    "AppointmentResponse.participantStatus",
    "AuditEvent.agent",
    "AuditEvent.agent.requestor",
    "AuditEvent.entity.detail.type",
    "AuditEvent.entity.detail.value[x]",
    "AuditEvent.recorded",
    "AuditEvent.source",
    "AuditEvent.source.observer",
    "AuditEvent.type",
    "CarePlan.activity.detail.status",
    "CarePlan.intent",
    "CarePlan.status",
    "CarePlan.subject",
    "Communication.payload.content[x]",
    "Communication.status",
    "CommunicationRequest.payload.content[x]",
    "CommunicationRequest.status",
    "Consent.category",
    "Consent.provision.actor.reference",
    "Consent.provision.actor.role",
    "Consent.provision.data.meaning",
    "Consent.provision.data.reference",
    "Consent.scope",
    "Consent.status",
    "Consent.verification.verified",
    "DocumentReference.content",
    "DocumentReference.content.attachment",
    "DocumentReference.status",
    "Encounter.class",
    "Encounter.classHistory.class",
    "Encounter.classHistory.period",
    "Encounter.diagnosis.condition",
    "Encounter.location.location",
    "Encounter.status",
    "Encounter.statusHistory.period",
    "Encounter.statusHistory.status",
    "Goal.description",
    "Goal.lifecycleStatus",
    "Goal.subject",
    "Group.actual",
    "Group.characteristic.code",
    "Group.characteristic.exclude",
    "Group.characteristic.value[x]",
    "Group.member.entity",
    "Group.type",
    "Patient.communication.language",
    "Patient.link.other",
    "Patient.link.type",
    "Practitioner.qualification.code",
    "PractitionerRole.notAvailable.description",
    "Provenance.agent",
    "Provenance.agent.who",
    "Provenance.entity.role",
    "Provenance.entity.what",
    "Provenance.recorded",
    "Provenance.target",
    "RelatedPerson.communication.language",
    "RelatedPerson.patient",
    "Schedule.actor",
    "Slot.end",
    "Slot.schedule",
    "Slot.start",
    "Slot.status",
    "Subscription.channel",
    "Subscription.channel.type",
    "Subscription.criteria",
    "Subscription.reason",
    "Subscription.status",
    "Task.input.type",
    "Task.input.value[x]",
    "Task.intent",
    "Task.output.type",
    "Task.output.value[x]",
    "Task.status",
];

/// The top-level elements of a type that must be present (min 1).
pub fn required_top_level_elements(type_name: &str) -> impl Iterator<Item = &'static str> + '_ {
    REQUIRED_ELEMENTS.iter().filter_map(move |path| {
        let rest = path.strip_prefix(type_name)?.strip_prefix('.')?;
        (!rest.contains('.')).then_some(rest.trim_end_matches("[x]"))
    })
}

const PARTICIPATION_STATUS: &[&str] = &["accepted", "declined", "tentative", "needs-action"];
const REQUEST_STATUS: &[&str] = &[
    "draft",
    "active",
    "on-hold",
    "revoked",
    "completed",
    "entered-in-error",
    "unknown",
];
const REQUEST_PRIORITY: &[&str] = &["routine", "urgent", "asap", "stat"];
const ENCOUNTER_STATUS: &[&str] = &[
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
];
const GENDER: &[&str] = &["male", "female", "other", "unknown"];
const DAYS_OF_WEEK: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResourceType;

    /// Every required binding with a code list that the official R4 list gives for a served
    /// type must be in the table, with the same codes.
    #[test]
    fn table_matches_the_official_r4_bindings() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fhir-r4/definitions/bindings.tsv"
        );
        let Ok(tsv) = std::fs::read_to_string(path) else {
            eprintln!("SKIPPED: {path} is absent; binding table not cross-checked");
            return;
        };
        let mut checked = 0;
        for line in tsv.lines().skip(1) {
            let cols: Vec<&str> = line.split('\t').collect();
            let [resource, element, strength, _, codes] = cols[..] else {
                continue;
            };
            if strength != "required"
                || codes.is_empty()
                || resource.parse::<ResourceType>().is_err()
            {
                continue;
            }
            let official: Vec<&str> = codes.split(' ').collect();
            let ours = REQUIRED_BINDINGS
                .iter()
                .find(|(path, _)| *path == element)
                .unwrap_or_else(|| panic!("{element} is missing from REQUIRED_BINDINGS"));
            assert_eq!(ours.1, official.as_slice(), "codes of {element}");
            checked += 1;
        }
        assert!(checked > 30, "only {checked} bindings checked");
    }

    /// Every element with min ≥ 1 in the official StructureDefinitions of a served type
    /// must be in REQUIRED_ELEMENTS.
    #[test]
    fn required_elements_match_the_official_r4_profiles() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fhir-r4/definitions/profiles-resources.subset.json"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("SKIPPED: {path} is absent; required elements not cross-checked");
            return;
        };
        let bundle: serde_json::Value = serde_json::from_str(&text).expect("profiles parse");
        let mut checked = 0;
        for entry in bundle["entry"].as_array().into_iter().flatten() {
            let definition = &entry["resource"];
            let served = definition["id"]
                .as_str()
                .is_some_and(|id| id.parse::<ResourceType>().is_ok());
            if definition["resourceType"] != "StructureDefinition" || !served {
                continue;
            }
            for element in definition["snapshot"]["element"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let path = element["path"].as_str().unwrap_or_default();
                if element["min"].as_u64().unwrap_or(0) >= 1 && path.contains('.') {
                    assert!(
                        REQUIRED_ELEMENTS.contains(&path),
                        "{path} is missing from REQUIRED_ELEMENTS"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 50, "only {checked} required elements checked");
    }
}
