//! A Subscription resource parsed once into what delivery needs: its criteria as a typed
//! search, its endpoint, headers, payload and signing secret. The write check
//! ([`crate::SubscriptionCheck`]) and the worker read a Subscription through this one
//! parser, so what was accepted on write is exactly what is delivered.

use paraply_fhir::{ResourceId, ResourceType};
use paraply_search::SearchQuery;
use serde_json::{Map, Value};
use url::Url;

/// The extension on `Subscription.channel` holding the secret each notification is signed
/// with (HMAC-SHA256). Like `channel.header` it is never shown back (paraply-core strips
/// both from every answer).
pub use paraply_fhir::codes::SUBSCRIPTION_SIGNING_SECRET_EXTENSION as SIGNING_SECRET_EXTENSION;
/// The Subscriptions R5 Backport IG's choice of how much a notification carries.
pub const PAYLOAD_CONTENT_EXTENSION: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";
/// A secret shorter than this is refused: HMAC with a guessable key proves nothing.
pub const MIN_SECRET_LENGTH: usize = 32;

/// `Subscription.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Requested,
    Active,
    Error,
    Off,
}

impl Status {
    pub fn code(self) -> &'static str {
        match self {
            Status::Requested => "requested",
            Status::Active => "active",
            Status::Error => "error",
            Status::Off => "off",
        }
    }

    fn parse(code: &str) -> Option<Status> {
        match code {
            "requested" => Some(Status::Requested),
            "active" => Some(Status::Active),
            "error" => Some(Status::Error),
            "off" => Some(Status::Off),
            _ => None,
        }
    }

    /// Whether changes are matched for it: an active subscription and one whose
    /// deliveries are failing (its notifications wait for the endpoint to come back).
    pub fn receives_events(self) -> bool {
        matches!(self, Status::Active | Status::Error)
    }
}

/// How much of the changed resource a notification carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// No entries besides the status (no `channel.payload`).
    Empty,
    /// The changed resource's URL and version only: no health data leaves the server.
    IdOnly,
    /// The changed version itself, when the subscriber's care provider may read it at
    /// delivery time under the access rules; otherwise as [`Payload::IdOnly`].
    FullResource,
}

/// The search a subscription's criteria name: the type and its query pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Criteria {
    pub resource_type: ResourceType,
    pub pairs: Vec<(String, String)>,
}

impl Criteria {
    /// The criteria as a search, narrowed to the resources `ids` (the changes to match;
    /// none: the criteria alone).
    pub fn query_for(&self, ids: &[&ResourceId]) -> Result<SearchQuery, String> {
        let ids = ids
            .iter()
            .map(|id| id.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let pairs = self
            .pairs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .chain((!ids.is_empty()).then_some(("_id", ids.as_str())));
        SearchQuery::parse(self.resource_type, pairs).map_err(|e| e.to_string())
    }
}

/// A Subscription as delivery sees it.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub status: Status,
    pub criteria: Criteria,
    pub endpoint: Url,
    /// `channel.header` entries split into name and value.
    pub headers: Vec<(String, String)>,
    pub payload: Payload,
    pub secret: String,
}

/// Why a Subscription cannot be delivered, with the FHIRPath of the element at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub expression: &'static str,
}

fn refuse(expression: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        message: message.into(),
        expression,
    }
}

impl Subscription {
    pub fn parse(resource: &Map<String, Value>) -> Result<Subscription, Vec<Refusal>> {
        let mut refusals = Vec::new();
        let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
        let status = text(resource.get("status"))
            .as_deref()
            .and_then(Status::parse)
            .ok_or_else(|| {
                refuse(
                    "Subscription.status",
                    "status must be requested, active, error or off",
                )
            });
        let criteria = text(resource.get("criteria"))
            .ok_or_else(|| refuse("Subscription.criteria", "criteria is required"))
            .and_then(|criteria| parse_criteria(&criteria));
        let channel = resource.get("channel").and_then(Value::as_object);
        let channel_type = channel.and_then(|c| c.get("type")).and_then(Value::as_str);
        if channel_type != Some("rest-hook") {
            refusals.push(refuse(
                "Subscription.channel.type",
                "only rest-hook subscriptions are delivered",
            ));
        }
        let endpoint = text(channel.and_then(|c| c.get("endpoint")))
            .ok_or_else(|| {
                refuse(
                    "Subscription.channel.endpoint",
                    "a rest-hook needs an endpoint",
                )
            })
            .and_then(|endpoint| {
                Url::parse(&endpoint)
                    .map_err(|e| refuse("Subscription.channel.endpoint", format!("not a URL: {e}")))
            });
        let headers = channel
            .and_then(|c| c.get("header"))
            .and_then(Value::as_array)
            .map(|headers| {
                headers
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|header| match header.split_once(':') {
                        Some((name, value)) if !name.trim().is_empty() => {
                            Ok((name.trim().to_owned(), value.trim().to_owned()))
                        }
                        _ => Err(refuse(
                            "Subscription.channel.header",
                            "a header is written 'Name: value'",
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap_or(Ok(Vec::new()));
        let payload = payload(channel);
        let secret = extension_string(channel, SIGNING_SECRET_EXTENSION)
            .filter(|secret| secret.len() >= MIN_SECRET_LENGTH)
            .ok_or_else(|| {
                refuse(
                    "Subscription.channel.extension",
                    format!(
                        "a signing secret of at least {MIN_SECRET_LENGTH} characters is required \
                         (extension {SIGNING_SECRET_EXTENSION}): every notification is signed with it"
                    ),
                )
            });
        let (status, criteria, endpoint, headers, payload, secret) = (
            kept(status, &mut refusals),
            kept(criteria, &mut refusals),
            kept(endpoint, &mut refusals),
            kept(headers, &mut refusals),
            kept(payload, &mut refusals),
            kept(secret, &mut refusals),
        );
        match (status, criteria, endpoint, headers, payload, secret) {
            (
                Some(status),
                Some(criteria),
                Some(endpoint),
                Some(headers),
                Some(payload),
                Some(secret),
            ) if refusals.is_empty() => Ok(Subscription {
                status,
                criteria,
                endpoint,
                headers,
                payload,
                secret,
            }),
            _ => Err(refusals),
        }
    }
}

/// The value, or `None` with its refusal kept: every fault is reported at once.
fn kept<T>(result: Result<T, Refusal>, refusals: &mut Vec<Refusal>) -> Option<T> {
    result.map_err(|refusal| refusals.push(refusal)).ok()
}

/// `Type?name=value&…`: a served type other than the server's own records, and a query
/// the search grammar accepts.
fn parse_criteria(criteria: &str) -> Result<Criteria, Refusal> {
    let at = "Subscription.criteria";
    let (type_name, query) = criteria.split_once('?').unwrap_or((criteria, ""));
    let resource_type: ResourceType = type_name.parse().map_err(|_| {
        refuse(
            at,
            format!("'{type_name}' is not a resource type this server serves"),
        )
    })?;
    if matches!(
        resource_type,
        ResourceType::Subscription | ResourceType::AuditEvent | ResourceType::Provenance
    ) {
        return Err(refuse(
            at,
            format!("{resource_type} changes are not notified"),
        ));
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    if pairs
        .iter()
        .any(|(name, _)| name.starts_with('_') && name != "_tag" && name != "_profile")
    {
        return Err(refuse(
            at,
            "criteria are search parameters only (no _id, _count, _sort, _include or other result control)",
        ));
    }
    let criteria = Criteria {
        resource_type,
        pairs,
    };
    criteria
        .query_for(&[])
        .map_err(|e| refuse(at, format!("not a valid search: {e}")))?;
    Ok(criteria)
}

fn payload(channel: Option<&Map<String, Value>>) -> Result<Payload, Refusal> {
    let Some(payload) = channel.and_then(|c| c.get("payload")) else {
        return Ok(Payload::Empty);
    };
    let at = "Subscription.channel.payload";
    let mime = payload
        .as_str()
        .ok_or_else(|| refuse(at, "payload is a MIME type"))?;
    if mime != "application/fhir+json" && mime != "application/json" {
        return Err(refuse(
            at,
            "notifications are sent as application/fhir+json",
        ));
    }
    let content = channel
        .and_then(|c| c.get("_payload"))
        .and_then(Value::as_object)
        .and_then(|element| extension_string(Some(element), PAYLOAD_CONTENT_EXTENSION));
    match content.as_deref() {
        None | Some("id-only") => Ok(Payload::IdOnly),
        Some("empty") => Ok(Payload::Empty),
        Some("full-resource") => Ok(Payload::FullResource),
        Some(other) => Err(refuse(at, format!("unknown payload content '{other}'"))),
    }
}

fn extension_string(element: Option<&Map<String, Value>>, url: &str) -> Option<String> {
    element?
        .get("extension")?
        .as_array()?
        .iter()
        .find(|extension| extension.get("url").and_then(Value::as_str) == Some(url))
        .and_then(|extension| {
            extension
                .get("valueString")
                .or_else(|| extension.get("valueCode"))
                .and_then(Value::as_str)
        })
        .map(str::to_owned)
}
