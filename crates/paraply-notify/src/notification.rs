//! The notification a subscriber receives, in the shape of the Subscriptions R5 Backport IG
//! for R4: a `history` Bundle whose first entry is a SubscriptionStatus `Parameters` with
//! `events-since-subscription-start` (so a receiver sees a gap) and, for id-only payloads,
//! one entry naming the changed version. Signed with HMAC-SHA256 over the exact body.

use hmac::{Hmac, Mac};
use paraply_store::{Notification, NotificationKind};
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::subscription::{Payload, Status};

/// The header carrying the signature: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Paraply-Signature";

const STATUS_PROFILE: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4";
const NOTIFICATION_PROFILE: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4";

/// The Bundle of `notification` for subscription `subscription_url` (absolute), whose
/// status is `status`; entries' URLs are under `base` (the public FHIR base). `resource` is
/// the changed version for a full-resource payload the subscriber may read (`None`: the
/// entry names it only).
pub fn bundle(
    base: &str,
    subscription_url: &str,
    status: Status,
    payload: Payload,
    notification: &Notification,
    resource: Option<Value>,
    now: OffsetDateTime,
) -> Value {
    let timestamp = paraply_core::format_instant(now);
    let mut parameters = vec![
        json!({"name": "subscription", "valueReference": {"reference": subscription_url}}),
        json!({"name": "status", "valueCode": status.code()}),
        json!({"name": "type", "valueCode": notification.kind.code()}),
        json!({"name": "events-since-subscription-start",
               "valueString": notification.event_number.to_string()}),
    ];
    let focus = notification
        .focus
        .as_deref()
        .filter(|_| notification.kind == NotificationKind::Event);
    if let Some(focus) = focus {
        let mut parts = vec![
            json!({"name": "event-number", "valueString": notification.event_number.to_string()}),
            json!({"name": "timestamp",
                   "valueInstant": paraply_core::format_instant(notification.created)}),
        ];
        if payload != Payload::Empty {
            parts.push(json!({"name": "focus", "valueReference": {"reference": format!("{base}/{focus}")}}));
        }
        parameters.push(json!({"name": "notification-event", "part": parts}));
    }
    let status_id = uuid::Uuid::new_v4();
    let mut entries = vec![json!({
        "fullUrl": format!("urn:uuid:{status_id}"),
        "resource": {
            "resourceType": "Parameters",
            "id": status_id.to_string(),
            "meta": {"profile": [STATUS_PROFILE]},
            "parameter": parameters,
        },
        "request": {"method": "GET", "url": format!("{subscription_url}/$status")},
        "response": {"status": "200"},
    })];
    if let Some(focus) = focus.filter(|_| payload != Payload::Empty) {
        // `Type/id/_history/version`: the version tells a create from an update.
        let (current, version) = focus.split_once("/_history/").unwrap_or((focus, "1"));
        let created = version == "1";
        let mut entry = json!({
            "fullUrl": format!("{base}/{current}"),
            "request": {"method": if created { "POST" } else { "PUT" },
                        "url": if created { current.split('/').next().unwrap_or(current) } else { current }},
            "response": {"status": if created { "201" } else { "200" },
                         "etag": format!("W/\"{version}\"")},
        });
        if let Some(resource) = resource.filter(|_| payload == Payload::FullResource) {
            entry["resource"] = resource;
        }
        entries.push(entry);
    }
    json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"profile": [NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": timestamp,
        "entry": entries,
    })
}

/// The signature header's value for `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts a key of any length; the error case cannot occur.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use paraply_fhir::ResourceId;

    use super::*;

    fn notification(kind: NotificationKind, number: i64, focus: Option<&str>) -> Notification {
        Notification {
            seq: 1,
            subscription_id: "sub-1".parse::<ResourceId>().unwrap(),
            event_number: number,
            kind,
            focus: focus.map(str::to_owned),
            created: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn an_event_names_its_number_and_the_changed_version_only() {
        let body = bundle(
            "https://paraply.example/fhir",
            "https://paraply.example/fhir/Subscription/sub-1",
            Status::Active,
            Payload::IdOnly,
            &notification(
                NotificationKind::Event,
                7,
                Some("Appointment/a1/_history/2"),
            ),
            None,
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(body["type"], "history");
        let status = &body["entry"][0]["resource"];
        assert_eq!(status["parameter"][3]["valueString"], "7");
        assert_eq!(status["parameter"][2]["valueCode"], "event-notification");
        let focus = &body["entry"][1];
        assert_eq!(
            focus["fullUrl"],
            "https://paraply.example/fhir/Appointment/a1"
        );
        assert_eq!(focus["request"]["method"], "PUT");
        assert!(
            focus.get("resource").is_none(),
            "id-only carries no health data"
        );
    }

    #[test]
    fn a_handshake_has_no_event() {
        let body = bundle(
            "https://p/fhir",
            "https://p/fhir/Subscription/sub-1",
            Status::Requested,
            Payload::IdOnly,
            &notification(NotificationKind::Handshake, 0, None),
            None,
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(body["entry"].as_array().unwrap().len(), 1);
        assert_eq!(
            body["entry"][0]["resource"]["parameter"][2]["valueCode"],
            "handshake"
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
