//! Code systems of the patientkontrakt (DOMAIN.md §2): the national ones Paraply reuses and
//! Paraply's own, all under one canonical base.

/// The canonical base of everything Paraply defines (code systems, profiles, search
/// parameters).
pub const CANONICAL_BASE: &str = "https://paraply.se/fhir";

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
        ] {
            assert!(system.starts_with(CANONICAL_BASE), "{system}");
        }
    }
}
