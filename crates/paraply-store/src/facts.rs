//! A fact a domain derives from its resources, kept with the period it held for (see
//! [`crate::StoreTx::record_fact`] and [`crate::Store::facts_at`]).

use time::OffsetDateTime;

/// One fact: what holds of `subject` (e.g. `Patient/p1`) from `at` on, as JSON text the
/// domain reads back (one line: compact JSON, as `serde_json::to_string` writes it; a body
/// with a line break is refused). `kind` separates the domain's kinds of fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub kind: &'static str,
    pub subject: String,
    pub at: OffsetDateTime,
    pub body: String,
}

/// Facts read back together ([`crate::Store::facts_at`]): their bodies, one per line. A
/// report reads a million facts; crossing from the database a page at a time rather than a
/// row at a time is most of its speed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FactPage {
    lines: String,
}

impl FactPage {
    /// A page of the bodies in `lines`, one per line.
    pub fn new(lines: String) -> FactPage {
        FactPage { lines }
    }

    /// Each fact's body.
    pub fn bodies(&self) -> impl Iterator<Item = &str> {
        self.lines.lines()
    }
}
