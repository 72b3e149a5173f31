//! Reading an operation's `Parameters` body: each parameter by name, its `value[x]`.

use paraply_core::CoreError;
use serde_json::Value;

use super::parse;

/// A Parameters body's parameters by name (`valueX` or `resource`), each in order.
pub(super) struct Parameters<'a>(Vec<(&'a str, &'a Value)>);

impl<'a> Parameters<'a> {
    pub(super) fn of(
        body: Option<&'a Value>,
        operation: &str,
        known: &[&str],
    ) -> Result<Self, CoreError> {
        let Some(body) = body else {
            return Err(CoreError::bad_request(format!(
                "${operation} takes a Parameters body"
            )));
        };
        if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
            return Err(CoreError::bad_request(format!(
                "${operation} takes a Parameters body"
            )));
        }
        let mut found = Vec::new();
        for parameter in body
            .get("parameter")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
        {
            let name = parameter.get("name").and_then(Value::as_str).unwrap_or("");
            if !known.contains(&name) {
                return Err(CoreError::BadRequest {
                    message: format!("unknown ${operation} parameter '{name}'"),
                    expression: Some(name.to_owned()),
                });
            }
            let value = parameter
                .as_object()
                .and_then(|p| p.iter().find(|(key, _)| key.starts_with("value")))
                .map(|(_, value)| value);
            if let Some(value) = value {
                found.push((name, value));
            }
        }
        Ok(Parameters(found))
    }

    pub(super) fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a Value> + 's {
        self.0
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    pub(super) fn text(&self, name: &str) -> Option<&'a str> {
        self.all(name).next().and_then(Value::as_str)
    }

    pub(super) fn required_text(&self, name: &str, operation: &str) -> Result<&'a str, CoreError> {
        self.text(name).ok_or_else(|| CoreError::BadRequest {
            message: format!("${operation} needs '{name}'"),
            expression: Some(name.to_owned()),
        })
    }

    pub(super) fn references(&self, name: &str) -> Vec<String> {
        self.all(name)
            .filter_map(|value| value.get("reference").and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
    }
}

pub(super) fn body_of(stored: &paraply_store::StoredResource) -> Result<Value, CoreError> {
    parse(stored.body.as_deref().unwrap_or("{}"))
}
