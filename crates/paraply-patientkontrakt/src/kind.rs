//! Recognising the kinds of resource the patientkontrakt is made of (RULES.md
//! "Recognising a kind of resource"): by content, never by the profile claim, except the
//! AgreedAppointment, whose claim is what makes an appointment "agreed".

use paraply_fhir::codes;
use serde_json::Value;

use crate::json::{
    any_concept_has, concept_code, concept_has, list, reference_at, reference_of, resource_type,
    status, text,
};

const CONSENT_ACTION_HL7: &str = "http://terminology.hl7.org/CodeSystem/consentaction";
const CONSENT_SCOPE_HL7: &str = "http://terminology.hl7.org/CodeSystem/consentscope";

fn is_care_plan(resource: &Value) -> bool {
    resource_type(resource) == Some("CarePlan")
}

/// Whether `resource.meta.profile` claims `profile`.
pub(crate) fn claims_profile(resource: &Value, profile: &str) -> bool {
    resource.get("meta").is_some_and(|meta| {
        list(meta, "profile")
            .iter()
            .any(|p| p.as_str() == Some(profile))
    })
}

/// The umbrella plan: a CarePlan in the `patientkontrakt` plan category.
pub(crate) fn is_umbrella(resource: &Value) -> bool {
    is_care_plan(resource)
        && any_concept_has(
            resource,
            "category",
            codes::PLAN_CATEGORY_SYSTEM,
            codes::PATIENTKONTRAKT,
        )
}

/// The national plan type of a CarePlan (`SIP`, `SPU`, ...), if it has one.
pub(crate) fn plan_type(resource: &Value) -> Option<&str> {
    if !is_care_plan(resource) {
        return None;
    }
    list(resource, "category")
        .iter()
        .filter_map(|concept| concept_code(concept, codes::PLAN_TYPE_SYSTEM))
        .find(|code| codes::PLAN_TYPES.contains(code))
}

pub(crate) fn is_sip(resource: &Value) -> bool {
    plan_type(resource) == Some("SIP")
}

/// Umbrella, SIP or LinkedPlan: the CarePlans the rules apply to.
pub(crate) fn is_paraply_plan(resource: &Value) -> bool {
    is_umbrella(resource) || plan_type(resource).is_some()
}

/// A FixedContact by content (category `fast-kontakt`).
pub(crate) fn is_fast_kontakt(resource: &Value) -> bool {
    resource_type(resource) == Some("CareTeam")
        && any_concept_has(
            resource,
            "category",
            codes::CARE_TEAM_CATEGORY_SYSTEM,
            codes::FAST_KONTAKT,
        )
}

pub(crate) fn is_sip_team(resource: &Value) -> bool {
    resource_type(resource) == Some("CareTeam")
        && any_concept_has(
            resource,
            "category",
            codes::CARE_TEAM_CATEGORY_SYSTEM,
            codes::SIP_TEAM,
        )
}

/// The role code (`1`–`4`) of a FastKontakt's one participant.
pub(crate) fn fast_kontakt_role(care_team: &Value) -> Option<&str> {
    let participant = list(care_team, "participant").first()?;
    list(participant, "role")
        .iter()
        .filter_map(|role| concept_code(role, codes::FAST_KONTAKT_ROLE_SYSTEM))
        .find(|code| matches!(*code, "1" | "2" | "3" | "4"))
}

/// The member of a FastKontakt's one participant (a PractitionerRole).
pub(crate) fn fast_kontakt_member(care_team: &Value) -> Option<String> {
    list(care_team, "participant")
        .first()
        .and_then(|participant| reference_at(participant, "member"))
}

pub(crate) fn is_sip_meeting(resource: &Value) -> bool {
    resource_type(resource) == Some("Appointment")
        && any_concept_has(
            resource,
            "serviceType",
            codes::SERVICE_TYPE_SYSTEM,
            codes::SIP_MOTE,
        )
}

pub(crate) fn is_agreed_appointment(resource: &Value) -> bool {
    resource_type(resource) == Some("Appointment")
        && claims_profile(resource, codes::profile::AGREED_APPOINTMENT)
}

/// An Insats: a Task based on a CarePlan, or claiming the Insats profile.
pub(crate) fn is_insats(resource: &Value) -> bool {
    resource_type(resource) == Some("Task")
        && (list(resource, "basedOn")
            .iter()
            .filter_map(reference_of)
            .any(|target| target.starts_with("CarePlan/"))
            || claims_profile(resource, codes::profile::INSATS))
}

/// The participant of an Appointment whose actor is `actor` (`Type/id`).
pub(crate) fn participant_of<'a>(appointment: &'a Value, actor: &str) -> Option<&'a Value> {
    list(appointment, "participant")
        .iter()
        .find(|participant| reference_at(participant, "actor").as_deref() == Some(actor))
}

/// Whether a Consent is active on `today` (status and, when given, `provision.period`).
pub(crate) fn consent_in_force(consent: &Value, today: &str) -> bool {
    resource_type(consent) == Some("Consent")
        && status(consent) == Some("active")
        && crate::json::period_includes(
            consent
                .get("provision")
                .and_then(|provision| provision.get("period")),
            today,
        )
}

fn provision(consent: &Value) -> Option<&Value> {
    consent.get("provision")
}

fn is_permit(consent: &Value) -> bool {
    provision(consent).and_then(|p| text(p, "type")) == Some("permit")
}

/// Whether a Consent is a SIP consent naming `sip` (`CarePlan/<id>`).
pub(crate) fn is_sip_consent_for(consent: &Value, sip: &str) -> bool {
    let Some(provision) = provision(consent) else {
        return false;
    };
    let privacy = consent
        .get("scope")
        .is_some_and(|scope| concept_has(scope, CONSENT_SCOPE_HL7, "patient-privacy"));
    privacy
        && is_permit(consent)
        && list(provision, "data").iter().any(|data| {
            data.get("reference")
                .and_then(reference_of)
                .is_some_and(|target| target == sip)
        })
}

/// The RelatedPersons a närstående consent (permit naming RelatedPersons) names.
pub(crate) fn narstaende_of(consent: &Value) -> Vec<String> {
    let Some(provision) = provision(consent) else {
        return Vec::new();
    };
    if !is_permit(consent) {
        return Vec::new();
    }
    list(provision, "actor")
        .iter()
        .filter_map(|actor| reference_at(actor, "reference"))
        .filter(|target| target.starts_with("RelatedPerson/"))
        .collect()
}

/// What a närstående consent allows: read (`access`), and answer/book agreed times (`book`).
pub(crate) fn consent_allows(consent: &Value, action: ConsentAction) -> bool {
    let (system, code) = match action {
        ConsentAction::Read => (CONSENT_ACTION_HL7, "access"),
        ConsentAction::Book => (codes::CONSENT_ACTION_SYSTEM, codes::BOOK),
    };
    provision(consent).is_some_and(|p| any_concept_has(p, "action", system, code))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConsentAction {
    Read,
    Book,
}

/// Whether `resource` is a Consent of `patient` (`Consent.patient`).
pub(crate) fn consent_of_patient(consent: &Value, patient: &str) -> bool {
    reference_at(consent, "patient")
        .as_deref()
        .and_then(crate::json::patient_id)
        == Some(patient)
}
