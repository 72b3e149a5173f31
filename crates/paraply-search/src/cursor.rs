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
///
/// Every order ends with the version row's `seq` (the store's write order), and without a
/// `_sort` it is the whole order: the index rows a search starts from are keyed by it, so a
/// page can be read straight off an index and stop after `_count` rows. The price of this
/// tie-break over the id: an update writes a new version row with a higher `seq`, so a
/// resource updated between two page reads moves to the end of its run of equal sort values
/// (to the very end without `_sort`) and may be served again on a later page. Following
/// `next` links it is never skipped for that, since a write only moves a row further along;
/// following `previous` links it may be, as those walk the other way. (Changing the sorted
/// value itself moves the resource to wherever the new value sorts, as with any keyset.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageCursor {
    /// The sort values of the boundary row, one per sort key.
    pub values: Vec<SortValue>,
    /// The boundary row's version row (`seq`): the final tie-breaker of every order.
    pub seq: i64,
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
            seq: 42,
            backwards: true,
        };
        assert_eq!(PageCursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(PageCursor::decode("not a cursor"), None);
    }
}
