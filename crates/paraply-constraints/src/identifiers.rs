//! Swedish identifiers (DOMAIN.md §2), checked on every write whatever profile the
//! resource claims: accepted OID spellings of a system are rewritten to the stored one, and
//! the value of a personnummer, samordningsnummer, HSA-id or organisationsnummer must be
//! well formed.

use serde_json::{Map, Value};

use crate::ConstraintIssue;

/// Personnummer, as stored (must equal `paraply_fhir::identifier::PERSONNUMMER`).
pub const PERSONNUMMER: &str = "http://electronichealth.se/identifier/personnummer";
/// Samordningsnummer, as stored.
pub const SAMORDNINGSNUMMER: &str = "http://electronichealth.se/identifier/samordningsnummer";
/// HSA-id of staff, units and care providers, as stored.
pub const HSA_ID: &str = "urn:oid:1.2.752.29.4.19";
/// Organisationsnummer.
pub const ORGANISATIONSNUMMER: &str = "urn:oid:2.5.4.97";

/// Accepted input spellings of a system and the spelling Paraply stores.
const SYSTEM_ALIASES: &[(&str, &str)] = &[
    ("urn:oid:1.2.752.129.2.1.3.1", PERSONNUMMER),
    ("urn:oid:1.2.752.129.2.1.3.3", SAMORDNINGSNUMMER),
    ("urn:oid:1.2.752.129.2.1.4.1", HSA_ID),
];

/// Longest unit-specific part of an HSA-id after the hyphen. The HSA-id is at most 31
/// characters in all (`SE` + 10 digits + `-` leaves 18); we accept 1–18 letters or digits.
const HSA_SUFFIX_MAX: usize = 18;

/// Walks every Identifier in `resource` — any object under a key named `identifier` or
/// ending in `Identifier` (so `Reference.identifier` and `masterIdentifier` too) — rewrites
/// accepted OID spellings of its `system` to the stored one, and returns one issue per
/// malformed Swedish identifier value. Contained resources are walked as well.
pub fn check_identifiers(resource: &mut Value) -> Vec<ConstraintIssue> {
    let mut path = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("Resource")
        .to_owned();
    let mut issues = Vec::new();
    walk(resource, &mut path, false, &mut issues);
    issues
}

fn walk(
    value: &mut Value,
    path: &mut String,
    is_identifier: bool,
    issues: &mut Vec<ConstraintIssue>,
) {
    match value {
        Value::Array(items) => {
            let len = path.len();
            for (index, item) in items.iter_mut().enumerate() {
                path.push_str(&format!("[{index}]"));
                walk(item, path, is_identifier, issues);
                path.truncate(len);
            }
        }
        Value::Object(object) => {
            if is_identifier {
                check_identifier(object, path, issues);
            }
            for (key, child) in object.iter_mut() {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                let child_is_identifier = key == "identifier" || key.ends_with("Identifier");
                walk(child, path, child_is_identifier, issues);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn check_identifier(
    identifier: &mut Map<String, Value>,
    path: &str,
    issues: &mut Vec<ConstraintIssue>,
) {
    let Some(Value::String(system)) = identifier.get_mut("system") else {
        return;
    };
    if let Some((_, stored)) = SYSTEM_ALIASES.iter().find(|(alias, _)| alias == system) {
        *system = (*stored).to_owned();
    }
    let kind = match system.as_str() {
        PERSONNUMMER => SwedishIdentifier::Personnummer,
        SAMORDNINGSNUMMER => SwedishIdentifier::Samordningsnummer,
        HSA_ID => SwedishIdentifier::HsaId,
        ORGANISATIONSNUMMER => SwedishIdentifier::Organisationsnummer,
        _ => return,
    };
    // An identifier without a value (e.g. only an extension) has nothing to check.
    let Some(Value::String(value)) = identifier.get_mut("value") else {
        return;
    };
    if kind == SwedishIdentifier::Organisationsnummer {
        normalise_organisationsnummer(value);
    }
    if let Err(reason) = kind.validate(value) {
        issues.push(ConstraintIssue {
            key: kind.key().to_owned(),
            expression: format!("{path}.value"),
            message: format!("'{value}' is not a valid {}: {reason}", kind.name()),
        });
    }
}

/// `NNNNNN-NNNN` is the usual printed form; Paraply stores the ten digits alone.
fn normalise_organisationsnummer(value: &mut String) {
    let bytes = value.as_bytes();
    if bytes.len() == 11
        && bytes[6] == b'-'
        && value.chars().filter(char::is_ascii_digit).count() == 10
    {
        value.remove(6);
    }
}

/// The Swedish identifier systems whose values Paraply checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwedishIdentifier {
    Personnummer,
    Samordningsnummer,
    HsaId,
    Organisationsnummer,
}

impl SwedishIdentifier {
    /// The issue key a malformed value is reported under.
    pub fn key(self) -> &'static str {
        match self {
            Self::Personnummer => "se-personnummer",
            Self::Samordningsnummer => "se-samordningsnummer",
            Self::HsaId => "se-hsa-id",
            Self::Organisationsnummer => "se-organisationsnummer",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Personnummer => "personnummer",
            Self::Samordningsnummer => "samordningsnummer",
            Self::HsaId => "HSA-id",
            Self::Organisationsnummer => "organisationsnummer",
        }
    }

    /// Checks a value in its stored form; the error says what is wrong.
    pub fn validate(self, value: &str) -> Result<(), String> {
        match self {
            Self::Personnummer => check_person_number(value, 0),
            Self::Samordningsnummer => check_person_number(value, 60),
            Self::HsaId => check_hsa_id(value),
            Self::Organisationsnummer => check_organisationsnummer(value),
        }
    }
}

/// `YYYYMMDDNNNC`: a real date (a samordningsnummer adds 60 to the day) and the Luhn check
/// digit `C` over the ten digits `YYMMDDNNN`.
fn check_person_number(value: &str, day_offset: u32) -> Result<(), String> {
    if value.len() != 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("it must have 12 digits (YYYYMMDDNNNC, no hyphen)".to_owned());
    }
    let digits: Vec<u32> = value.bytes().map(|b| u32::from(b - b'0')).collect();
    let number = |range: std::ops::Range<usize>| digits[range].iter().fold(0, |n, d| n * 10 + d);
    let year = number(0..4);
    let month = number(4..6);
    let day = number(6..8);
    let Some(day) = day.checked_sub(day_offset).filter(|d| *d >= 1) else {
        return Err(date_error(day_offset));
    };
    if !(1..=12).contains(&month) || day > days_in_month(year, month) {
        return Err(date_error(day_offset));
    }
    if !luhn_valid(&digits[2..]) {
        return Err("the check digit is wrong".to_owned());
    }
    Ok(())
}

fn date_error(day_offset: u32) -> String {
    if day_offset == 0 {
        "YYYYMMDD is not a date".to_owned()
    } else {
        format!("YYYYMMDD with the day less {day_offset} is not a date")
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

/// Luhn (mod 10) over `digits`, the last being the check digit: from the left, digits in
/// even positions count twice (the ten-digit personnummer and organisationsnummer both start
/// with a doubled digit).
fn luhn_valid(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let twice = d * 2;
                twice / 10 + twice % 10
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `SE` + the ten-digit organisationsnummer of the organisation issuing it + `-` + 1–18
/// letters or digits (Inera's HSA-id form, e.g. `SE2321000016-15CX`, at most 31 characters).
fn check_hsa_id(value: &str) -> Result<(), String> {
    let rule = "it must be SE, a 10-digit organisationsnummer, '-' and 1-18 letters or digits";
    let Some(rest) = value.strip_prefix("SE") else {
        return Err(rule.to_owned());
    };
    let Some((organisation, suffix)) = rest.split_once('-') else {
        return Err(rule.to_owned());
    };
    let organisation_ok =
        organisation.len() == 10 && organisation.bytes().all(|b| b.is_ascii_digit());
    let suffix_ok = (1..=HSA_SUFFIX_MAX).contains(&suffix.len())
        && suffix.bytes().all(|b| b.is_ascii_alphanumeric());
    if organisation_ok && suffix_ok {
        Ok(())
    } else {
        Err(rule.to_owned())
    }
}

/// Ten digits (stored without the hyphen) whose last is the Luhn check digit.
fn check_organisationsnummer(value: &str) -> Result<(), String> {
    if value.len() != 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("it must have 10 digits".to_owned());
    }
    let digits: Vec<u32> = value.bytes().map(|b| u32::from(b - b'0')).collect();
    if !luhn_valid(&digits) {
        return Err("the check digit is wrong".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn verdict(kind: SwedishIdentifier, value: &str) -> Result<(), String> {
        kind.validate(value)
    }

    #[test]
    fn swedish_identifier_values_are_accepted_or_refused_by_their_rules() {
        use SwedishIdentifier::*;
        let cases: &[(SwedishIdentifier, &str, Option<&str>)] = &[
            (Personnummer, "191212121212", None),
            (Personnummer, "200002291235", None), // 29 Feb in a leap year (2000 is one)
            (Personnummer, "1", Some("it must have 12 digits")),
            (Personnummer, "1912121212", Some("it must have 12 digits")),
            (
                Personnummer,
                "19121212-1212",
                Some("it must have 12 digits"),
            ),
            (Personnummer, "19121212121X", Some("it must have 12 digits")),
            (Personnummer, "190002291235", Some("is not a date")), // 1900 is no leap year
            (Personnummer, "191213121212", Some("is not a date")),
            (Personnummer, "191204311212", Some("is not a date")),
            (
                Personnummer,
                "191212121213",
                Some("the check digit is wrong"),
            ),
            (Personnummer, "197010632391", Some("is not a date")), // a samordningsnummer
            (Samordningsnummer, "197010632391", None),
            (
                Samordningsnummer,
                "191212121212",
                Some("with the day less 60 is not a date"),
            ),
            (
                Samordningsnummer,
                "197010632392",
                Some("the check digit is wrong"),
            ),
            (HsaId, "SE2321000016-15CX", None),
            (HsaId, "SE2321000016-1", None),
            (HsaId, "SE2321000016-", Some("it must be SE")),
            (HsaId, "SE232100001-15CX", Some("it must be SE")),
            (HsaId, "2321000016-15CX", Some("it must be SE")),
            (HsaId, "SE2321000016-15ÅX", Some("it must be SE")),
            (
                HsaId,
                "SE2321000016-1234567890123456789",
                Some("it must be SE"),
            ), // 32 characters
            (Organisationsnummer, "2321000016", None),
            (Organisationsnummer, "5560912148", None),
            (
                Organisationsnummer,
                "5560912149",
                Some("the check digit is wrong"),
            ),
            (
                Organisationsnummer,
                "556091214",
                Some("it must have 10 digits"),
            ),
        ];
        for (kind, value, expected) in cases {
            match (verdict(*kind, value), expected) {
                (Ok(()), None) => {}
                (Err(reason), Some(part)) if reason.contains(part) => {}
                (got, _) => panic!("{kind:?} {value}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn an_invalid_identifier_is_reported_at_its_value() {
        let mut patient = json!({
            "resourceType": "Patient",
            "identifier": [
                {"system": PERSONNUMMER, "value": "191212121212"},
                {"system": PERSONNUMMER, "value": "1"}
            ]
        });
        let issues = check_identifiers(&mut patient);
        assert_eq!(
            issues,
            vec![ConstraintIssue {
                key: "se-personnummer".to_owned(),
                expression: "Patient.identifier[1].value".to_owned(),
                message: "'1' is not a valid personnummer: it must have 12 digits (YYYYMMDDNNNC, no hyphen)"
                    .to_owned(),
            }]
        );
    }

    #[test]
    fn oid_spellings_are_rewritten_to_the_stored_system_everywhere() {
        let mut team = json!({
            "resourceType": "CareTeam",
            "identifier": [{"system": "urn:oid:1.2.752.129.2.1.4.1", "value": "SE2321000016-15CX"}],
            "subject": {"identifier": {"system": "urn:oid:1.2.752.129.2.1.3.1", "value": "191212121212"}},
            "participant": [{"member": {"identifier": {"system": "urn:oid:1.2.752.129.2.1.3.3", "value": "197010632391"}}}],
            "managingOrganization": [{"identifier": {"system": "urn:oid:2.5.4.97", "value": "232100-0016"}}]
        });
        assert_eq!(check_identifiers(&mut team), vec![]);
        assert_eq!(team["identifier"][0]["system"], HSA_ID);
        assert_eq!(team["subject"]["identifier"]["system"], PERSONNUMMER);
        assert_eq!(
            team["participant"][0]["member"]["identifier"]["system"],
            SAMORDNINGSNUMMER
        );
        assert_eq!(
            team["managingOrganization"][0]["identifier"]["value"],
            "2321000016"
        );
    }

    #[test]
    fn a_rewritten_oid_spelling_is_checked_under_the_stored_system() {
        let mut document = json!({
            "resourceType": "DocumentReference",
            "masterIdentifier": {"system": "urn:oid:1.2.752.129.2.1.3.1", "value": "191212121213"}
        });
        let issues = check_identifiers(&mut document);
        assert_eq!(issues.len(), 1);
        assert_eq!(
            issues[0].expression,
            "DocumentReference.masterIdentifier.value"
        );
        assert_eq!(document["masterIdentifier"]["system"], PERSONNUMMER);
    }

    #[test]
    fn identifiers_of_other_systems_are_left_alone() {
        let mut patient = json!({
            "resourceType": "Patient",
            "identifier": [{"system": "http://example.org/mrn", "value": "1"}, {"value": "no system"}]
        });
        let before = patient.clone();
        assert!(check_identifiers(&mut patient).is_empty());
        assert_eq!(patient, before);
    }
}
