//! The access log's storage words (DOMAIN.md I15): compact, append-only entries, one per
//! access, each hash-chained to the one before it, searched by a few keys and rendered as
//! AuditEvents above storage.
//!
//! Storage never sees an AuditEvent: an [`AccessLogEntry`] carries the searchable columns,
//! the multi-valued search keys ([`AccessLogTerm`]) and an opaque compact `body` that the
//! engine alone reads. The hash of an entry ([`link_hash`]) is defined here, once, for the
//! backends to append with and to verify with.

use paraply_fhir::ResourceId;
use paraply_search::{DateRange, PageCursor, Prefix, Restriction};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The `prev_hash` of a chain's first entry: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a multi-valued search key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TermKey {
    /// A patient whose data was touched, or who acted (the patient's id).
    Patient,
    /// Who acted, as a reference (`PractitionerRole/…`, `Patient/…`, `RelatedPerson/…`).
    Agent,
    /// What was touched, as a reference (`Patient/…`, `CarePlan/…`).
    Entity,
}

impl TermKey {
    pub const fn as_str(self) -> &'static str {
        match self {
            TermKey::Patient => "patient",
            TermKey::Agent => "agent",
            TermKey::Entity => "entity",
        }
    }
}

/// One search key value of an entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccessLogTerm {
    pub key: TermKey,
    pub value: String,
}

/// One access, to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogEntry {
    /// The id of the AuditEvent it is rendered as.
    pub id: ResourceId,
    /// When the access happened; kept to the microsecond.
    pub recorded: OffsetDateTime,
    /// The RESTful interaction (`read`, `search-type`, …): `AuditEvent.subtype`.
    pub subtype: String,
    /// `AuditEvent.action` (C, R, U, D, E).
    pub action: String,
    /// `AuditEvent.outcome` (0, 4, 8).
    pub outcome: String,
    /// An emergency access (`ETREAT`).
    pub emergency: bool,
    /// The compact record, as the engine wrote it.
    pub body: String,
    /// The search keys; duplicates are stored once.
    pub terms: Vec<AccessLogTerm>,
}

impl AccessLogEntry {
    /// The entry's content as the chain hashes it.
    pub fn content(&self) -> LinkContent<'_> {
        LinkContent {
            id: self.id.as_str(),
            recorded_us: micros(self.recorded),
            subtype: &self.subtype,
            action: &self.action,
            outcome: &self.outcome,
            emergency: self.emergency,
            body: &self.body,
            terms: self
                .terms
                .iter()
                .map(|t| (t.key.as_str(), t.value.as_str()))
                .collect(),
        }
    }
}

/// Microseconds since the Unix epoch, the precision the log keeps.
pub fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// The hashed content of one entry, as appended or as read back from its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkContent<'a> {
    pub id: &'a str,
    pub recorded_us: i64,
    pub subtype: &'a str,
    pub action: &'a str,
    pub outcome: &'a str,
    pub emergency: bool,
    pub body: &'a str,
    /// `(key, value)`; order and duplicates do not matter.
    pub terms: Vec<(&'a str, &'a str)>,
}

/// `hash = SHA-256(prev_hash ‖ chain ‖ position ‖ content)`, lowercase hex.
///
/// Every field is length-prefixed (8 bytes, little-endian) so no two different contents
/// give the same bytes; terms are sorted and deduplicated, as the table stores them.
/// Chain and position are hashed too: an entry moved to another place no longer fits.
pub fn link_hash(prev_hash: &str, chain: i64, position: i64, content: &LinkContent<'_>) -> String {
    fn field(hasher: &mut Sha256, bytes: &[u8]) {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    let mut hasher = Sha256::new();
    field(&mut hasher, prev_hash.as_bytes());
    field(&mut hasher, &chain.to_le_bytes());
    field(&mut hasher, &position.to_le_bytes());
    field(&mut hasher, content.id.as_bytes());
    field(&mut hasher, &content.recorded_us.to_le_bytes());
    field(&mut hasher, content.subtype.as_bytes());
    field(&mut hasher, content.action.as_bytes());
    field(&mut hasher, content.outcome.as_bytes());
    field(&mut hasher, &[u8::from(content.emergency)]);
    field(&mut hasher, content.body.as_bytes());
    let mut terms = content.terms.clone();
    terms.sort_unstable();
    terms.dedup();
    hasher.update((terms.len() as u64).to_le_bytes());
    for (key, value) in terms {
        field(&mut hasher, key.as_bytes());
        field(&mut hasher, value.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// One alternative of an [`AccessLogFilter`].
#[derive(Debug, Clone, PartialEq)]
pub enum AccessLogCondition {
    /// The AuditEvent id.
    Id(String),
    Term(AccessLogTerm),
    Subtype(String),
    Outcome(String),
    Emergency(bool),
    /// `recorded` compared with a date range as FHIR date search does (the instant is a
    /// range of one microsecond).
    Recorded {
        prefix: Prefix,
        range: DateRange,
    },
    /// Every entry (a token every event carries, like `type=rest`).
    Always,
    /// No entry (a value no event carries).
    Never,
}

/// One parameter occurrence: any alternative matches.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLogFilter {
    pub any_of: Vec<AccessLogCondition>,
}

/// The order of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogOrder {
    /// As appended (`seq`).
    Appended,
    /// By `recorded`, then `seq`.
    Recorded { descending: bool },
}

/// A search of the access log.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLogQuery {
    /// Every filter must hold.
    pub filters: Vec<AccessLogFilter>,
    pub order: AccessLogOrder,
    pub count: u32,
    /// Where the page starts: `values` holds the `recorded` microseconds as an `Int` when
    /// ordered by it, `seq` the entry's row.
    pub page: Option<PageCursor>,
    /// Count every match.
    pub total: bool,
    /// What the caller may see: entries naming (by a patient term) a patient the caller
    /// may see.
    pub restriction: Option<Restriction>,
}

/// One entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogRow {
    pub seq: i64,
    pub id: ResourceId,
    pub recorded: OffsetDateTime,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogPage {
    pub rows: Vec<AccessLogRow>,
    /// More matches lie beyond this page in the direction it was read.
    pub more: bool,
    pub total: Option<u64>,
}

/// What `verify` found of one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    pub chain: i64,
    /// Entries walked.
    pub entries: u64,
    /// The position the walk started after (0, or where a purge left the chain).
    pub anchor: i64,
    /// The chain head's last position.
    pub head: i64,
}

/// The first link that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub chain: i64,
    pub position: i64,
    /// The AuditEvent id of the entry found there, if any.
    pub id: Option<String>,
    /// What differs.
    pub problem: String,
}

/// The result of walking every chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub chains: Vec<ChainSummary>,
    pub broken: Option<BrokenLink>,
}

/// Where a purge left a chain: its first kept entry follows `position`, whose hash was
/// `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainAnchor {
    pub chain: i64,
    pub position: i64,
    pub hash: String,
}

/// What a purge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    pub deleted: u64,
    pub anchors: Vec<ChainAnchor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content<'a>(body: &'a str, terms: Vec<(&'a str, &'a str)>) -> LinkContent<'a> {
        LinkContent {
            id: "ae-1",
            recorded_us: 1,
            subtype: "read",
            action: "R",
            outcome: "0",
            emergency: false,
            body,
            terms,
        }
    }

    #[test]
    fn every_field_and_the_place_in_the_chain_change_the_hash() {
        let base = link_hash(GENESIS_HASH, 0, 1, &content("{}", vec![("patient", "p1")]));
        assert_eq!(base.len(), 64);
        let reordered = link_hash(
            GENESIS_HASH,
            0,
            1,
            &content("{}", vec![("patient", "p1"), ("patient", "p1")]),
        );
        assert_eq!(base, reordered, "terms are a set");
        for other in [
            link_hash(&base, 0, 1, &content("{}", vec![("patient", "p1")])),
            link_hash(GENESIS_HASH, 1, 1, &content("{}", vec![("patient", "p1")])),
            link_hash(GENESIS_HASH, 0, 2, &content("{}", vec![("patient", "p1")])),
            link_hash(GENESIS_HASH, 0, 1, &content("{ }", vec![("patient", "p1")])),
            link_hash(GENESIS_HASH, 0, 1, &content("{}", vec![("patient", "p2")])),
            link_hash(GENESIS_HASH, 0, 1, &content("{}", vec![])),
        ] {
            assert_ne!(base, other);
        }
    }
}
