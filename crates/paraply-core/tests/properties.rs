//! Property tests: request parsing never panics on arbitrary paths, methods, query pairs,
//! headers and bodies (Bundles with random entries included), and every refusal is a
//! [`CoreError`] with a message, which the HTTP edge maps to an OperationOutcome.
//!
//! 256 cases by default so CI stays fast; the target is 100 000:
//! `PARAPLY_PROPTEST_CASES=100000 cargo test -p paraply-core --test properties`.

use paraply_core::{FhirRequest, Interaction, Method, Operations};
use paraply_fhir::ResourceType;
use paraply_proptest_support::{JsonShape, config};
use paraply_search::Handling;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const METHODS: &[Method] = &[
    Method::Get,
    Method::Post,
    Method::Put,
    Method::Patch,
    Method::Delete,
];

/// Path segments the router gives meaning to, besides the served types.
const SEGMENTS: &[&str] = &[
    "",
    "metadata",
    "_history",
    "_search",
    "$validate",
    "$access-log",
    "$everything",
    "$",
    "$$",
    "1",
    "2",
    "abc-123",
    "a.b",
    "Bundle",
    "patient",
    "..",
    "%2F",
    "_history",
    "x y",
];

const QUERY_NAMES: &[&str] = &[
    "_count",
    "_since",
    "_at",
    "_id",
    "_format",
    "_summary",
    "_sort",
    "_elements",
    "_include",
    "_revinclude",
    "_total",
    "_cursor",
    "_page",
    "name",
    "subject",
    "patient",
    "status",
    "identifier",
    "mode",
    "profile",
    "resource",
    "date",
    "",
];

const VALUE_PIECES: &[&str] = &[
    "1",
    "0",
    "-1",
    "99999999999999999999",
    "2024-01-01",
    "2024-01-01T00:00:00Z",
    "gt",
    "le",
    "Patient/1",
    "|",
    ",",
    ":",
    "W/\"1\"",
    "W/\"\"",
    "\"1\"",
    "true",
    "create",
    "urn:uuid:",
];

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(ResourceType::ALL).prop_map(|t| t.as_str().to_owned()),
        3 => proptest::sample::select(SEGMENTS).prop_map(str::to_owned),
        1 => "[A-Za-z0-9.-]{1,70}",
        1 => any::<String>(),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::collection::vec(segment(), 0..6).prop_map(|segments| segments.join("/")),
        1 => any::<String>(),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::collection::vec(proptest::sample::select(VALUE_PIECES), 0..4)
            .prop_map(|pieces| pieces.concat()),
        1 => any::<String>(),
    ]
}

fn query() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        4 => proptest::sample::select(QUERY_NAMES).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    proptest::collection::vec((name, text()), 0..5)
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    paraply_proptest_support::arbitrary_json(
        JsonShape {
            keys: &[],
            depth: 3,
            size: 32,
            branch: 5,
        },
        text().boxed(),
    )
}

/// A resource-shaped body: a served type (or not), an id (or not), random elements.
fn resource() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            4 => proptest::sample::select(ResourceType::ALL).prop_map(|t| json!(t.as_str())),
            1 => Just(json!("Binary")),
            1 => arbitrary_json(),
        ],
        proptest::option::of(segment()),
        proptest::collection::vec((any::<String>(), arbitrary_json()), 0..3),
    )
        .prop_map(|(resource_type, id, elements)| {
            let mut object: Map<String, Value> = elements.into_iter().collect();
            object.insert("resourceType".to_owned(), resource_type);
            if let Some(id) = id {
                object.insert("id".to_owned(), json!(id));
            }
            Value::Object(object)
        })
}

/// A Bundle entry: a request with a method and URL (both sometimes nonsense), headers,
/// a resource, a full URL; any part may be missing or of the wrong JSON type.
fn entry() -> impl Strategy<Value = Value> {
    let method = prop_oneof![
        4 => proptest::sample::select(&["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"][..])
            .prop_map(|m| json!(m)),
        1 => any::<String>().prop_map(|m| json!(m)),
        1 => arbitrary_json(),
    ];
    let url = prop_oneof![
        4 => (path(), query()).prop_map(|(path, query)| {
            let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            json!(format!("{path}?{}", query.join("&")))
        }),
        1 => arbitrary_json(),
    ];
    (
        method,
        url,
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(prop_oneof![resource(), arbitrary_json()]),
        proptest::option::of(text()),
    )
        .prop_map(
            |(method, url, if_match, if_none_exist, resource, full_url)| {
                let mut entry = json!({"request": {"method": method, "url": url}});
                if let Some(if_match) = if_match {
                    entry["request"]["ifMatch"] = json!(if_match);
                }
                if let Some(if_none_exist) = if_none_exist {
                    entry["request"]["ifNoneExist"] = json!(if_none_exist);
                }
                if let Some(resource) = resource {
                    entry["resource"] = resource;
                }
                if let Some(full_url) = full_url {
                    entry["fullUrl"] = json!(full_url);
                }
                entry
            },
        )
}

fn bundle() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(json!("batch")),
            Just(json!("transaction")),
            arbitrary_json()
        ],
        proptest::collection::vec(prop_oneof![4 => entry(), 1 => arbitrary_json()], 0..6),
    )
        .prop_map(
            |(kind, entries)| json!({"resourceType": "Bundle", "type": kind, "entry": entries}),
        )
}

fn body() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(prop_oneof![
        2 => resource(),
        2 => bundle(),
        1 => arbitrary_json(),
    ])
}

fn request() -> impl Strategy<Value = FhirRequest> {
    (
        proptest::sample::select(METHODS),
        path(),
        query(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        prop_oneof![Just(Handling::Strict), Just(Handling::Lenient)],
        body(),
    )
        .prop_map(
            |(method, path, query, if_match, if_none_exist, handling, body)| {
                let mut request = FhirRequest::new(method, path);
                request.query = query;
                request.if_match = if_match;
                request.if_none_exist = if_none_exist;
                request.handling = handling;
                request.body = body;
                request
            },
        )
}

/// Parses the way the engine parses a Bundle entry: its `request.url` with its query, its
/// headers and its resource, through the same [`Interaction::parse`].
fn parse_entry(entry: &Value, operations: &Operations) -> Result<Interaction, String> {
    let field = |name: &str| {
        entry
            .get("request")
            .and_then(|request| request.get(name))
            .and_then(Value::as_str)
    };
    let method = field("method").and_then(Method::parse).ok_or("no method")?;
    let mut request = FhirRequest::from_url(method, field("url").unwrap_or(""));
    request.if_match = field("ifMatch").map(str::to_owned);
    request.if_none_exist = field("ifNoneExist").map(str::to_owned);
    request.body = entry.get("resource").cloned();
    Interaction::parse(request, operations).map_err(|refusal| refusal.to_string())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_requests_parse_or_are_refused_with_a_message(request in request()) {
        let operations = Operations::standard();
        match Interaction::parse(request, &operations) {
            Ok(Interaction::Bundle { bundle }) => {
                for entry in bundle.get("entry").and_then(Value::as_array).into_iter().flatten() {
                    if let Err(refusal) = parse_entry(entry, &operations) {
                        prop_assert!(!refusal.is_empty());
                    }
                }
            }
            Ok(_) => {}
            Err(refusal) => prop_assert!(!refusal.to_string().is_empty(), "{refusal:?}"),
        }
    }
}
