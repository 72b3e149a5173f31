//! Access restrictions a search carries to storage (DOMAIN.md §4, I11–I13).
//!
//! The access rules (paraply-core) decide *who* the caller is and turn that into a
//! [`Restriction`]; storage turns the restriction into SQL next to the client's own filters,
//! so pages, counts and `_include`s only ever see what the caller may see. A restriction is
//! set by the server, never parsed from a query string.

use paraply_fhir::{ResourceId, ResourceType};

/// How a resource of a type names the patient whose data it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientLink {
    /// The resource is the patient (`Patient/{id}`).
    Itself,
    /// The reference search parameter whose `Patient/{id}` target is the patient.
    Param(&'static str),
    /// Not patient data: directories (Organization, Practitioner, …) and server resources.
    None,
}

/// The patient link of every served type. A patient-linked resource without such a
/// reference belongs to no patient and is visible only to unrestricted callers.
pub fn patient_link(resource_type: ResourceType) -> PatientLink {
    use ResourceType as T;
    match resource_type {
        T::Patient => PatientLink::Itself,
        T::Appointment
        | T::AppointmentResponse
        | T::AuditEvent
        | T::CarePlan
        | T::CareTeam
        | T::Communication
        | T::CommunicationRequest
        | T::Consent
        | T::DocumentReference
        | T::Encounter
        | T::Goal
        | T::Provenance
        | T::RelatedPerson
        | T::Task => PatientLink::Param("patient"),
        // A Group of patients (a cohort, a bulk export's selection) is its members' data.
        T::Group => PatientLink::Param("member"),
        T::HealthcareService
        | T::Location
        | T::Organization
        | T::Practitioner
        | T::PractitionerRole
        | T::Schedule
        | T::Slot
        | T::Subscription => PatientLink::None,
    }
}

/// A second way a resource of `resource_type` belongs to a patient: through the resource its
/// `param` reference names (of the given type), whose own [`patient_link`] names the
/// patient. A staff member's or a relative's answer to a SIP meeting (an
/// AppointmentResponse whose `actor` is not the Patient) names no patient itself; the
/// Appointment it answers does, and the answer is that patient's data.
pub fn patient_link_via(resource_type: ResourceType) -> Option<(&'static str, ResourceType)> {
    match resource_type {
        ResourceType::AppointmentResponse => Some(("appointment", ResourceType::Appointment)),
        _ => None,
    }
}

/// Types that are no patient's data yet are not open to every caller: a restricted caller
/// sees one only as staff of the care provider whose owner tag
/// ([`paraply_fhir::codes::CARE_PROVIDER_TAG_SYSTEM`]) it carries — the one that created it.
/// Patients and relatives never see them; system clients are not restricted.
///
/// Subscriptions name endpoints and carry their credentials (`channel.header`) until they get
/// an owning organization of their own.
pub fn owner_only(resource_type: ResourceType) -> bool {
    matches!(resource_type, ResourceType::Subscription)
}

/// What a restricted caller may see. Resources of types whose [`patient_link`] is
/// [`PatientLink::None`] are not restricted by it, except the [`owner_only`] ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restriction {
    /// A patient: only data of these patients (their own id).
    Patients(Vec<ResourceId>),
    /// A relative (I13): data of the patient each RelatedPerson belongs to
    /// (`RelatedPerson.patient`), but only while that patient has an *active* `Consent`
    /// with `provision.type = permit` whose `provision.actor` names the RelatedPerson —
    /// or, for a guardian (vårdnadshavare: `relationship` GUARD, recorded by staff), while
    /// the patient is under 13. Checked in the query itself, so a revoked consent and a
    /// 13th birthday take effect at once, without anyone acting.
    RelativeOf(Relatives),
    /// Staff (I11, I12).
    Staff(Box<StaffScope>),
}

/// The RelatedPerson records a relative is, and the day that decides guardians' access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relatives {
    pub related_persons: Vec<ResourceId>,
    /// A guardian sees a child's data only if the child's `birthDate` is after this day:
    /// today 13 years ago (on the 13th birthday the access has ended).
    pub guardian_of_born_after: time::Date,
}

impl Relatives {
    /// The relatives' restriction on `today`.
    pub fn on(related_persons: Vec<ResourceId>, today: time::Date) -> Relatives {
        Relatives {
            related_persons,
            guardian_of_born_after: years_before(today, GUARDIAN_AGE_LIMIT),
        }
    }
}

/// The age at which a guardian's proxy access ends (DOMAIN.md I13).
pub const GUARDIAN_AGE_LIMIT: i32 = 13;

/// The same day `years` earlier; 29 February becomes 28 February in a common year.
fn years_before(day: time::Date, years: i32) -> time::Date {
    let year = day.year() - years;
    day.replace_year(year)
        .or_else(|_| time::Date::from_calendar_date(year, day.month(), 28))
        .unwrap_or(day)
}

/// The staff rules, evaluated per resource of patient `P`:
///
/// 1. Care relationship: `P` has a CareTeam with `status` active whose `participant`
///    (member) is one of [`StaffScope::members`], or a PractitionerRole whose
///    `organization` is one of [`StaffScope::units`]; or an open Encounter (planned,
///    arrived, triaged, in progress, on leave) whose `participant` is one of `members` or
///    whose `service-provider` is one of `units` — unless `emergency`.
/// 2. Spärr: no *active* `Consent` of `P` with `provision.type = deny`
///    (search parameter `provision-type`) whose `actor` is one of
///    [`StaffScope::blocked_if_actor`] — unless `emergency`.
/// 3. Care-provider boundary: the resource carries no owner tag
///    (`meta.tag` of system [`paraply_fhir::codes::CARE_PROVIDER_TAG_SYSTEM`]), or its owner
///    code is [`StaffScope::care_provider`], or one of the resource's own reference index
///    rows targets one of `members`/`units`/`organizations` (the caller's organization
///    takes part in it), or `P` has an active permit Consent whose `actor` is one of
///    `organizations` — unless `emergency`.
///
/// The Patient resource itself needs rules 1 and 2 only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffScope {
    /// `PractitionerRole/{id}` references of the caller (and `Organization/{id}` of units
    /// and the huvudman, when the issuer grants relationship at that level).
    pub members: Vec<String>,
    /// `Organization/{id}` of the caller's unit: colleagues' PractitionerRoles there count.
    pub units: Vec<String>,
    /// `Organization/{id}` of the caller's care provider and huvudman.
    pub organizations: Vec<String>,
    /// The caller's care-provider HSA-id, compared with the owner tag's code.
    pub care_provider: String,
    /// Actors a spärr may name to block this caller: their unit and care provider.
    pub blocked_if_actor: Vec<String>,
    /// A logged emergency access (`purposeOfUse` ETREAT): rules 1–3 are waived.
    pub emergency: bool,
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn a_guardians_access_ends_on_the_13th_birthday() {
        let relatives = Relatives::on(Vec::new(), date!(2030 - 03 - 15));
        // Born 2017-03-15: 13 today, so not after the cut-off.
        assert_eq!(relatives.guardian_of_born_after, date!(2017 - 03 - 15));
        assert!(date!(2017 - 03 - 16) > relatives.guardian_of_born_after);
        assert_eq!(
            Relatives::on(Vec::new(), date!(2032 - 02 - 29)).guardian_of_born_after,
            date!(2019 - 02 - 28)
        );
    }
}
