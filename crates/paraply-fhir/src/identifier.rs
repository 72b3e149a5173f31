//! Swedish identifier systems (DOMAIN.md §2): one stored spelling per system.

/// Personnummer, as stored.
pub const PERSONNUMMER: &str = "http://electronichealth.se/identifier/personnummer";
/// Samordningsnummer, as stored.
pub const SAMORDNINGSNUMMER: &str = "http://electronichealth.se/identifier/samordningsnummer";
/// HSA-id of staff, units and care providers, as stored.
pub const HSA_ID: &str = "urn:oid:1.2.752.29.4.19";
/// Organisationsnummer.
pub const ORGANISATIONSNUMMER: &str = "urn:oid:2.5.4.97";

/// Maps an accepted alias of an identifier system to the spelling Paraply stores and
/// searches by, so that `urn:oid:1.2.752.129.2.1.3.1|19121212…` finds a patient stored
/// under the personnummer URL. Unknown systems pass through unchanged.
pub fn canonical_system(system: &str) -> &str {
    match system {
        "urn:oid:1.2.752.129.2.1.3.1" => PERSONNUMMER,
        "urn:oid:1.2.752.129.2.1.3.3" => SAMORDNINGSNUMMER,
        "urn:oid:1.2.752.129.2.1.4.1" => HSA_ID,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_aliases_map_to_the_stored_system() {
        assert_eq!(
            canonical_system("urn:oid:1.2.752.129.2.1.3.1"),
            PERSONNUMMER
        );
        assert_eq!(
            canonical_system("urn:oid:1.2.752.129.2.1.3.3"),
            SAMORDNINGSNUMMER
        );
        assert_eq!(canonical_system("urn:oid:1.2.752.129.2.1.4.1"), HSA_ID);
        assert_eq!(canonical_system(PERSONNUMMER), PERSONNUMMER);
        assert_eq!(canonical_system("http://example.org"), "http://example.org");
    }
}
