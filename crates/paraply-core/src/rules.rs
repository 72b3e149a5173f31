//! The rules extension point: checks across resources that run inside a write's transaction,
//! after its writes and before its commit, so two concurrent writes cannot both pass. The
//! engine knows no rule; a domain (the patientkontrakt) registers its [`WriteRule`]s.

use async_trait::async_trait;
use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_store::StoreTx;
use serde_json::Value;

use crate::error::CoreError;

/// One version written in the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub resource_type: ResourceType,
    pub id: ResourceId,
    pub version_id: VersionId,
    /// The body it replaced (`None`: it was created, or had been deleted).
    pub before: Option<String>,
    /// The body written (`None`: a deletion).
    pub after: Option<String>,
}

/// An update the server makes in the same transaction because of a write (a patient's
/// AppointmentResponse moves the Appointment's status): it is validated, checked by the
/// rules and logged like any write.
#[derive(Debug, Clone)]
pub struct DerivedWrite {
    pub resource_type: ResourceType,
    pub id: ResourceId,
    /// The whole new body (its `id` the resource's; the server stamps `meta`).
    pub body: Value,
    /// The version the rule read; another writer's newer version retries the transaction.
    pub if_match: VersionId,
    /// The write that caused it, so an error can name its Bundle entry.
    pub cause: (ResourceType, ResourceId),
}

/// A rule over a transaction's writes.
#[async_trait]
pub trait WriteRule: Send + Sync {
    /// Checks `changes` (the writes since the rule last ran in this transaction) against
    /// what `tx` holds now, and returns the writes the server must add. A breach is
    /// [`CoreError::RuleBroken`]. The transaction sees its own writes; a rule that must not
    /// race another transaction's check takes [`StoreTx::serialize_on`] first.
    async fn check(
        &self,
        tx: &mut dyn StoreTx,
        changes: &[Change],
    ) -> Result<Vec<DerivedWrite>, CoreError>;
}
