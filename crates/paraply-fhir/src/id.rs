//! Logical ids and version ids, checked once at the edge.

use std::fmt;
use std::str::FromStr;

/// A logical resource id: `[A-Za-z0-9\-\.]{1,64}` (FHIR R4 `id` datatype).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(String);

impl ResourceId {
    /// A fresh server-assigned id (a UUID, which fits the id grammar).
    pub fn generate() -> Self {
        ResourceId(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ResourceId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if valid {
            Ok(ResourceId(s.to_owned()))
        } else {
            Err(InvalidId(s.to_owned()))
        }
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text that is not a valid FHIR id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a valid FHIR id (1-64 characters of A-Z, a-z, 0-9, '-' and '.')")]
pub struct InvalidId(pub String);

/// A version of one resource; versions count up from 1 without gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionId(u64);

impl VersionId {
    pub const FIRST: VersionId = VersionId(1);

    pub fn new(n: u64) -> Option<Self> {
        (n >= 1).then_some(VersionId(n))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn next(self) -> VersionId {
        VersionId(self.0 + 1)
    }

    /// Parses an `ETag`/`If-Match` value: `W/"3"`, `"3"` or `3`.
    pub fn from_etag(etag: &str) -> Option<Self> {
        let bare = etag.trim();
        let bare = bare.strip_prefix("W/").unwrap_or(bare);
        let bare = bare.trim_matches('"');
        bare.parse::<u64>().ok().and_then(VersionId::new)
    }

    /// The weak ETag the server sends: `W/"3"`.
    pub fn etag(self) -> String {
        format!("W/\"{}\"", self.0)
    }
}

impl FromStr for VersionId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<u64>()
            .ok()
            .and_then(VersionId::new)
            .ok_or_else(|| InvalidId(s.to_owned()))
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_r4_grammar() {
        assert!("abc-1.2".parse::<ResourceId>().is_ok());
        assert!("".parse::<ResourceId>().is_err());
        assert!("a/b".parse::<ResourceId>().is_err());
        assert!("x".repeat(65).parse::<ResourceId>().is_err());
        assert!(
            ResourceId::generate()
                .as_str()
                .parse::<ResourceId>()
                .is_ok()
        );
    }

    #[test]
    fn etags_parse_in_all_common_spellings() {
        for s in ["W/\"3\"", "\"3\"", "3", " W/\"3\" "] {
            assert_eq!(VersionId::from_etag(s), VersionId::new(3));
        }
        assert_eq!(VersionId::from_etag("W/\"0\""), None);
        assert_eq!(
            VersionId::new(7).map(VersionId::etag).as_deref(),
            Some("W/\"7\"")
        );
    }
}
