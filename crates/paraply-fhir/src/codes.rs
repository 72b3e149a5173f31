//! Code systems of the patientkontrakt (DOMAIN.md §2): the national ones Paraply reuses and
//! Paraply's own, all under one canonical base.

/// The canonical base of everything Paraply defines (code systems, profiles, search
/// parameters).
pub const CANONICAL_BASE: &str = "https://paraply.se/fhir";

/// The extension on `Subscription.channel` with the secret notifications are signed with;
/// like `channel.header`, never shown back to anyone.
pub const SUBSCRIPTION_SIGNING_SECRET_EXTENSION: &str =
    "https://paraply.se/fhir/StructureDefinition/subscription-signing-secret";

/// The extension on a `busy-tentative` Slot saying until when it is held (`$hold`); after
/// that instant the time counts as free again, without anyone acting.
pub const SLOT_HELD_UNTIL_EXTENSION: &str =
    "https://paraply.se/fhir/StructureDefinition/slot-held-until";

/// The extension on a held Slot naming the Appointment it is held for: only that
/// appointment may book it while the hold lasts.
pub const SLOT_HELD_FOR_EXTENSION: &str =
    "https://paraply.se/fhir/StructureDefinition/slot-held-for";

/// Paraply's plan-category code system: `patientkontrakt`.
pub const PLAN_CATEGORY_SYSTEM: &str = "https://paraply.se/fhir/CodeSystem/plan-category";
pub const PATIENTKONTRAKT: &str = "patientkontrakt";

/// National plan types (the GetCarePlans enum): `SIP`, `SPLPTLRV`, `SPU`, `VP`, `HP`, `RP`,
/// `GP`, `SVP`.
pub const PLAN_TYPE_SYSTEM: &str = "https://paraply.se/fhir/CodeSystem/plan-type";
pub const PLAN_TYPES: &[&str] = &["SIP", "SPLPTLRV", "SPU", "VP", "HP", "RP", "GP", "SVP"];

/// CareTeam categories Paraply uses: `fast-kontakt` and `sip-team`.
pub const CARE_TEAM_CATEGORY_SYSTEM: &str = "https://paraply.se/fhir/CodeSystem/care-team-category";
pub const FAST_KONTAKT: &str = "fast-kontakt";
pub const SIP_TEAM: &str = "sip-team";

/// Inera *Typ av fast kontakt*: `1` fast vårdkontakt, `2` fast läkarkontakt, `3` fast
/// omsorgskontakt, `4` fast vårdkontakt with overall coordination responsibility.
pub const FAST_KONTAKT_ROLE_SYSTEM: &str = "urn:oid:1.2.752.129.5.1.69";

/// Huvudman types: `region`, `kommun`, `privat-utforare`, `annan`.
pub const HUVUDMAN_TYPE_SYSTEM: &str = "https://paraply.se/fhir/CodeSystem/huvudman-type";
pub const HUVUDMAN_TYPES: &[&str] = &["region", "kommun", "privat-utforare", "annan"];

/// SIP team roles: `sip-samordnare`, `insatsansvarig`, `narstaende`, `annan-aktor`.
pub const SIP_ROLE_SYSTEM: &str = "https://paraply.se/fhir/CodeSystem/sip-role";

/// Service types: `sip-mote` (a SIP meeting).
pub const SERVICE_TYPE_SYSTEM: &str = "https://paraply.se/fhir/CodeSystem/service-type";
pub const SIP_MOTE: &str = "sip-mote";

/// `meta.tag` naming the care provider (vårdgivare, by HSA-id) that wrote a resource: the
/// server sets it on staff writes, and the access rules use it for the care-provider
/// boundary (DOMAIN.md I12). Resources without it belong to no single provider.
pub const CARE_PROVIDER_TAG_SYSTEM: &str = "https://paraply.se/fhir/CodeSystem/vardgivare";

/// Annotation extension marking a note `internal` (staff only) or `external`; internal
/// notes never reach patients or relatives (I14).
pub const NOTE_VISIBILITY_URL: &str = "https://paraply.se/fhir/StructureDefinition/note-visibility";

/// A relative's permit Consent may add this `provision.action` to `access`: the relative
/// may also answer and book the patient's agreed times (DOMAIN.md §3, I9).
pub const CONSENT_ACTION_SYSTEM: &str = "https://paraply.se/fhir/CodeSystem/consent-action";
pub const BOOK: &str = "book";

/// Paraply's extensions.
/// When a fixed contact can be reached: repeated on `CareTeam`, each with `daysOfWeek`
/// (code, repeating), `availableStartTime` and `availableEndTime` (time), like
/// `PractitionerRole.availableTime`.
pub const REACHABLE_HOURS_URL: &str = "https://paraply.se/fhir/StructureDefinition/reachable-hours";
/// How to reach a fixed contact when not by the CareTeam's telecom (`valueString`, e.g.
/// "Ring vårdcentralens växel och be om Anna"), Inera's `contactViaTeam` idea.
pub const CONTACT_ROUTE_URL: &str = "https://paraply.se/fhir/StructureDefinition/contact-route";
/// On an Insats `Task`: the effort is carried out by someone other than a huvudman
/// (Försäkringskassan, a school): `valueReference` (Organization) or `valueString`.
pub const PERFORMED_BY_OTHER_URL: &str =
    "https://paraply.se/fhir/StructureDefinition/performed-by-other";

/// Paraply's profiles (`fhir-profiles/`), by canonical URL.
pub mod profile {
    pub const PATIENTKONTRAKT: &str = "https://paraply.se/fhir/StructureDefinition/patientkontrakt";
    pub const SIP: &str = "https://paraply.se/fhir/StructureDefinition/sip";
    pub const LINKED_PLAN: &str = "https://paraply.se/fhir/StructureDefinition/linked-plan";
    pub const FAST_KONTAKT: &str = "https://paraply.se/fhir/StructureDefinition/fast-kontakt";
    pub const SIP_TEAM: &str = "https://paraply.se/fhir/StructureDefinition/sip-team";
    pub const AGREED_APPOINTMENT: &str =
        "https://paraply.se/fhir/StructureDefinition/agreed-appointment";
    pub const SIP_MEETING: &str = "https://paraply.se/fhir/StructureDefinition/sip-meeting";
    pub const INSATS: &str = "https://paraply.se/fhir/StructureDefinition/insats";
    pub const NARSTAENDE_CONSENT: &str =
        "https://paraply.se/fhir/StructureDefinition/narstaende-consent";
    pub const SIP_CONSENT: &str = "https://paraply.se/fhir/StructureDefinition/sip-consent";
    pub const SPARR_CONSENT: &str = "https://paraply.se/fhir/StructureDefinition/sparr-consent";

    /// Every profile above; a claim of anything else under the canonical base is a typo.
    pub const ALL: &[&str] = &[
        PATIENTKONTRAKT,
        SIP,
        LINKED_PLAN,
        FAST_KONTAKT,
        SIP_TEAM,
        AGREED_APPOINTMENT,
        SIP_MEETING,
        INSATS,
        NARSTAENDE_CONSENT,
        SIP_CONSENT,
        SPARR_CONSENT,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_paraply_system_lives_under_the_canonical_base() {
        for system in [
            PLAN_CATEGORY_SYSTEM,
            PLAN_TYPE_SYSTEM,
            CARE_TEAM_CATEGORY_SYSTEM,
            HUVUDMAN_TYPE_SYSTEM,
            SIP_ROLE_SYSTEM,
            SERVICE_TYPE_SYSTEM,
            CONSENT_ACTION_SYSTEM,
            REACHABLE_HOURS_URL,
            CONTACT_ROUTE_URL,
            PERFORMED_BY_OTHER_URL,
        ]
        .iter()
        .chain(profile::ALL)
        {
            assert!(system.starts_with(CANONICAL_BASE), "{system}");
        }
    }
}
