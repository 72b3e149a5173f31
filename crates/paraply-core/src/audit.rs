//! The access log (DOMAIN.md I15): one AuditEvent per access to patient data, following
//! IHE Basic Audit Log Patterns (BALP), and a Provenance per write.

use paraply_fhir::{ResourceId, ResourceType};
use time::OffsetDateTime;

use crate::context::Purpose;

/// What was done, in BALP terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// read, vread (`R`).
    Read,
    /// search, history, `$patientkontrakt`-like operations (`E`, BALP Query).
    Query,
    /// create (`C`).
    Create,
    /// update, patch (`U`).
    Update,
    /// delete (`D`).
    Delete,
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditAgent {
    /// Staff: employeeHsaId, unit and care provider HSA-ids, and their PractitionerRole if known.
    Staff {
        hsa_id: String,
        unit_hsa_id: String,
        care_provider_hsa_id: String,
        practitioner_role: Option<ResourceId>,
    },
    /// A patient (`Patient/{id}`) or relative (`RelatedPerson/{id}`); `None` if the
    /// personnummer matched nobody (a denied attempt).
    Citizen { reference: Option<String> },
    /// A system client by `client_id`.
    System { client_id: String },
    /// A request whose bearer token was missing or failed validation (logged at the edge).
    Unauthenticated,
}

/// Whether it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditOutcome {
    Success,
    /// Refused by the access rules (403) — denied attempts are logged too.
    Denied {
        reason: String,
    },
    /// Failed for another reason (4xx/5xx), with the HTTP-ish reason.
    Failed {
        reason: String,
    },
}

/// One access to patient data; becomes exactly one AuditEvent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub recorded: OffsetDateTime,
    pub action: AuditAction,
    pub agent: AuditAgent,
    /// The issuer that vouched for the agent.
    pub issuer: String,
    pub purpose: Purpose,
    pub outcome: AuditOutcome,
    /// The patients whose data was touched (ids of `Patient`), deduplicated.
    pub patients: Vec<ResourceId>,
    /// The resource read or written, if one (type, id).
    pub entity: Option<(ResourceType, ResourceId)>,
    /// For searches: the query as received (`CarePlan?patient=…`), without the base.
    pub query: Option<String>,
    pub request_id: String,
}
