//! A fact a domain derives from its resources, kept with the period it held for (see
//! [`crate::StoreTx::record_fact`] and [`crate::Store::facts_at`]).

use time::OffsetDateTime;

/// One fact: what holds of `subject` (e.g. `Patient/p1`) from `at` on, as JSON text the
/// domain reads back. `kind` separates the domain's kinds of fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub kind: &'static str,
    pub subject: String,
    pub at: OffsetDateTime,
    pub body: String,
}
