//! Swedish identifier systems (DOMAIN.md §2): one stored spelling per system.

/// The stored spellings of the Swedish identifier systems: defined once, by the checks
/// that enforce them on every write.
pub use paraply_constraints::{HSA_ID, ORGANISATIONSNUMMER, PERSONNUMMER, SAMORDNINGSNUMMER};

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
