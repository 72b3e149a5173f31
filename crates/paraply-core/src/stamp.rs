//! Server-kept metadata: `id`, `meta.versionId` and `meta.lastUpdated` on every version.

use paraply_fhir::{ResourceId, VersionId};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::macros::format_description;

/// Formats an instant the way `meta.lastUpdated` carries it (UTC, milliseconds).
pub fn format_instant(instant: OffsetDateTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    instant
        .to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// Now, truncated to the millisecond that `meta.lastUpdated` shows, so `_since` compares
/// what the client saw.
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_millisecond(now.millisecond()).unwrap_or(now)
}

/// The resource with `id` and `meta` set by the server: `resourceType`, `id` and `meta`
/// first, the client's other `meta` elements (tags, profiles, security labels) kept.
pub fn stamp(
    mut body: Map<String, Value>,
    id: &ResourceId,
    version_id: VersionId,
    last_updated: OffsetDateTime,
) -> Value {
    let mut meta = Map::new();
    meta.insert("versionId".into(), Value::String(version_id.to_string()));
    meta.insert(
        "lastUpdated".into(),
        Value::String(format_instant(last_updated)),
    );
    if let Some(Value::Object(client_meta)) = body.shift_remove("meta") {
        for (key, value) in client_meta {
            if key != "versionId" && key != "lastUpdated" {
                meta.insert(key, value);
            }
        }
    }
    // Moved, not cloned: a write touches each element once.
    let mut stamped = Map::with_capacity(body.len() + 2);
    if let Some(resource_type) = body.shift_remove("resourceType") {
        stamped.insert("resourceType".into(), resource_type);
    }
    body.shift_remove("id");
    stamped.insert("id".into(), Value::String(id.to_string()));
    stamped.insert("meta".into(), Value::Object(meta));
    stamped.extend(body);
    Value::Object(stamped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stamp_puts_server_meta_first_and_keeps_client_tags() {
        let body = json!({"resourceType": "Patient", "active": true, "id": "x",
            "meta": {"versionId": "99", "tag": [{"code": "t"}]}});
        let id: ResourceId = "p1".parse().unwrap();
        let stamped = stamp(
            body.as_object().unwrap().clone(),
            &id,
            VersionId::FIRST,
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(
            serde_json::to_string(&stamped).unwrap(),
            r#"{"resourceType":"Patient","id":"p1","meta":{"versionId":"1","lastUpdated":"1970-01-01T00:00:00.000Z","tag":[{"code":"t"}]},"active":true}"#
        );
    }
}
