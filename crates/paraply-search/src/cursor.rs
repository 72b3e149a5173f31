//! Keyset page cursors: a page starts after (or, going back, before) the sort values of a
//! row, so next/previous links stay correct while others write (no OFFSET on a moving
//! table). The cursor travels in `_page` as opaque base64url JSON.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// One sort value of a row, as the store computed it (`Null` when the resource has none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v")]
pub enum SortValue {
    Null,
    Int(i64),
    Text(String),
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageCursor {
    /// The sort values of the boundary row, one per sort key.
    pub values: Vec<SortValue>,
    /// The boundary row's id (the final tie-breaker of every order).
    pub id: String,
    /// `true` for a previous link: the page ends before the boundary row.
    pub backwards: bool,
}

impl PageCursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(text: &str) -> Option<PageCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_survive_a_round_trip_and_garbage_is_refused() {
        let cursor = PageCursor {
            values: vec![
                SortValue::Int(-5),
                SortValue::Text("ågren".into()),
                SortValue::Null,
            ],
            id: "p-1".into(),
            backwards: true,
        };
        assert_eq!(PageCursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(PageCursor::decode("not a cursor"), None);
    }
}
