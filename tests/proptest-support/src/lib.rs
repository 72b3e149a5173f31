//! What the property tests of several crates share: how many cases to run, and arbitrary
//! JSON shaped for the parser under test. For tests only.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// 256 cases by default so CI stays fast; `PARAPLY_PROPTEST_CASES=100000` for the issue's
/// full count.
pub fn config() -> ProptestConfig {
    let cases = std::env::var("PARAPLY_PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256);
    ProptestConfig::with_cases(cases)
}

/// The shape of [`arbitrary_json`]: object keys drawn mostly from `keys` (any string when
/// empty), leaves that are scalars or one of `texts`, at most `depth` levels of at most
/// `branch` children, about `size` nodes in all.
pub struct JsonShape {
    pub keys: &'static [&'static str],
    pub depth: u32,
    pub size: u32,
    pub branch: usize,
}

/// Arbitrary JSON of `shape`, with string leaves from `texts` besides any string.
pub fn arbitrary_json(shape: JsonShape, texts: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        texts.prop_map(Value::String),
    ];
    let key = arbitrary_key(shape.keys);
    let branch = shape.branch;
    leaf.prop_recursive(shape.depth, shape.size, branch as u32, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..branch).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..branch)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// An object key: mostly one of `keys` (element names the parser knows, so generated
/// objects get past its first check), sometimes any string; any string when `keys` is empty.
pub fn arbitrary_key(keys: &'static [&'static str]) -> BoxedStrategy<String> {
    if keys.is_empty() {
        return any::<String>().boxed();
    }
    prop_oneof![
        3 => proptest::sample::select(keys).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
    .boxed()
}
