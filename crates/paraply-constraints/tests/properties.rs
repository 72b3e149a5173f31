//! Property tests: the invariant and identifier checks never panic on arbitrary JSON.
//!
//! 256 cases by default so CI stays fast; the issue's target is 100 000:
//! `PARAPLY_PROPTEST_CASES=100000 cargo test -p paraply-constraints --test properties`.

use paraply_constraints::{check_identifiers, check_invariants, identifiers};
use paraply_proptest_support::{JsonShape, config};
use proptest::prelude::*;
use serde_json::Value;

/// Types with invariants, and names that have none.
const RESOURCE_TYPES: &[&str] = &[
    "CareTeam",
    "CarePlan",
    "Patient",
    "Practitioner",
    "Appointment",
    "Consent",
    "Task",
    "Organization",
    "RelatedPerson",
    "Goal",
    "",
    "Nonsense",
];

/// Element names the checks look at, so generated objects reach their deeper branches.
const ELEMENT_NAMES: &[&str] = &[
    "identifier",
    "system",
    "value",
    "use",
    "type",
    "participant",
    "member",
    "onBehalfOf",
    "role",
    "coding",
    "code",
    "period",
    "start",
    "end",
    "activity",
    "detail",
    "reference",
    "contained",
    "extension",
    "url",
    "valueString",
    "provision",
    "actor",
    "name",
    "given",
    "telecom",
    "policy",
    "policyRule",
    "scope",
    "category",
    "status",
];

/// The systems the identifier checks recognise, the legacy OIDs they rewrite
/// (1.2.752.129.2.1.3.1 personnummer, …3.3 samordningsnummer, …4.1 HSA-id) and one they ignore.
const IDENTIFIER_SYSTEMS: &[&str] = &[
    identifiers::PERSONNUMMER,
    identifiers::SAMORDNINGSNUMMER,
    identifiers::HSA_ID,
    identifiers::ORGANISATIONSNUMMER,
    "urn:oid:1.2.752.129.2.1.3.1",
    "urn:oid:1.2.752.129.2.1.3.3",
    "urn:oid:1.2.752.129.2.1.4.1",
    "https://example.org",
];

fn arbitrary_json() -> impl Strategy<Value = Value> {
    paraply_proptest_support::arbitrary_json(
        JsonShape {
            keys: ELEMENT_NAMES,
            depth: 5,
            size: 96,
            branch: 6,
        },
        prop_oneof![
            proptest::sample::select(IDENTIFIER_SYSTEMS).prop_map(str::to_owned),
            "(19|20)?[0-9]{6}[-+]?[0-9]{4}",
            "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)?",
        ]
        .boxed(),
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn invariant_checks_never_panic_and_name_each_issue(
        resource_type in proptest::sample::select(RESOURCE_TYPES),
        resource in arbitrary_json(),
    ) {
        for issue in check_invariants(resource_type, &resource) {
            prop_assert!(!issue.key.is_empty() && !issue.message.is_empty(), "{issue:?}");
        }
    }

    #[test]
    fn identifier_checks_never_panic_and_name_each_issue(mut resource in arbitrary_json()) {
        for issue in check_identifiers(&mut resource) {
            prop_assert!(!issue.key.is_empty() && !issue.message.is_empty(), "{issue:?}");
        }
    }
}
