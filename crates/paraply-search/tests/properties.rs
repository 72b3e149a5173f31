//! Property tests: the search-parameter parser never panics on arbitrary pairs, in strict
//! and lenient handling, and every refusal is a [`SearchError`] with a message.
//!
//! 256 cases by default so CI stays fast; the target is 100 000:
//! `PARAPLY_PROPTEST_CASES=100000 cargo test -p paraply-search --test properties`.

use paraply_fhir::ResourceType;
use paraply_proptest_support::config;
use paraply_search::{Handling, SearchQuery, params_for};
use proptest::prelude::*;

/// Result parameters and chaining syntax the parser handles besides the registry's names.
const SPECIAL_NAMES: &[&str] = &[
    "_count",
    "_sort",
    "_include",
    "_revinclude",
    "_include:iterate",
    "_revinclude:iterate",
    "_summary",
    "_elements",
    "_total",
    "_cursor",
    "_format",
    "_pretty",
    "_has",
    "_id",
    "_lastUpdated",
    "_tag",
    "_profile",
    "_security",
    "_text",
    "_content",
    "_list",
    "_filter",
    "_type",
    "_contained",
    "",
];

const MODIFIERS: &[&str] = &[
    "",
    ":exact",
    ":contains",
    ":missing",
    ":not",
    ":text",
    ":in",
    ":not-in",
    ":above",
    ":below",
    ":of-type",
    ":identifier",
    ":Patient",
    ":CarePlan",
    ":iterate",
    ":",
    "::",
    ":unknown",
];

/// Value pieces: prefixes, separators, escapes and the shapes of dates, tokens, references.
const VALUE_PIECES: &[&str] = &[
    "eq",
    "ne",
    "gt",
    "lt",
    "ge",
    "le",
    "sa",
    "eb",
    "ap",
    "|",
    ",",
    "\\",
    "\\,",
    "\\|",
    "$",
    ":",
    ".",
    "-",
    "+",
    "T",
    "Z",
    "2024",
    "2024-02-30",
    "2024-01-01T10:00:00+01:00",
    "-01",
    "Patient/1",
    "CarePlan/",
    "http://x/y",
    "urn:oid:1.2.752.129.5.1.69",
    "true",
    "false",
    "9999999999999999999999",
    "1e400",
    "NaN",
    "_has:CarePlan:subject:status",
    "*",
];

fn name() -> impl Strategy<Value = String> {
    let registry_names = || {
        proptest::sample::select(
            ResourceType::ALL
                .iter()
                .flat_map(|t| params_for(*t).map(|def| def.name))
                .collect::<Vec<_>>(),
        )
    };
    prop_oneof![
        4 => (registry_names(), proptest::sample::select(MODIFIERS))
            .prop_map(|(name, modifier)| format!("{name}{modifier}")),
        2 => (proptest::sample::select(SPECIAL_NAMES), proptest::sample::select(MODIFIERS))
            .prop_map(|(name, modifier)| format!("{name}{modifier}")),
        // Chains: `subject.name`, `subject:Patient.name`.
        1 => (registry_names(), proptest::sample::select(MODIFIERS), registry_names())
            .prop_map(|(first, modifier, second)| format!("{first}{modifier}.{second}")),
        1 => any::<String>(),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::collection::vec(
            prop_oneof![
                3 => proptest::sample::select(VALUE_PIECES).prop_map(str::to_owned),
                1 => "[a-zA-Z0-9]{0,8}",
                1 => any::<String>(),
            ],
            0..6,
        )
        .prop_map(|pieces| pieces.concat()),
        1 => any::<String>(),
        1 => "[0-9]{1,30}",
    ]
}

fn handling() -> impl Strategy<Value = Handling> {
    prop_oneof![Just(Handling::Strict), Just(Handling::Lenient)]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_parameters_parse_or_are_refused_with_a_message(
        resource_type in proptest::sample::select(ResourceType::ALL),
        pairs in proptest::collection::vec((name(), value()), 0..8),
        handling in handling(),
    ) {
        let borrowed = pairs.iter().map(|(name, value)| (name.as_str(), value.as_str()));
        if let Err(refusal) = SearchQuery::parse_with(resource_type, borrowed, handling) {
            prop_assert!(!refusal.to_string().is_empty(), "{refusal:?}");
        }
    }
}
