//! Provenance of writes (DOMAIN.md I15: every write also a Provenance): who made which
//! version, when, on whose behalf. Written in the write's own transaction
//! ([`stage_provenance`]), so a version never exists without its Provenance.
//!
//! Unlike the access log seen by patients, a Provenance names the staff member (by HSA-id):
//! it answers "who wrote this", which the care record must be able to say.

use paraply_fhir::{HSA_ID, ResourceId, ResourceType, VersionId};
use paraply_store::StoreTx;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::audit::{AuditAgent, CLIENT_ID_SYSTEM};
use crate::audit_log::first_version;
use crate::error::CoreError;
use crate::stamp::format_instant;

const DATA_OPERATION: &str = "http://terminology.hl7.org/CodeSystem/v3-DataOperation";
const PARTICIPANT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/provenance-participant-type";

/// What the write did (`Provenance.activity`, v3-DataOperation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvenanceActivity {
    Create,
    Update,
    Delete,
}

impl ProvenanceActivity {
    const fn code(self) -> (&'static str, &'static str) {
        match self {
            ProvenanceActivity::Create => ("CREATE", "create"),
            ProvenanceActivity::Update => ("UPDATE", "revise"),
            ProvenanceActivity::Delete => ("DELETE", "delete"),
        }
    }
}

/// The R4 Provenance of one written version: `target` is the versioned reference
/// (`CarePlan/1/_history/2`), `agent` the author as in the access log (staff by HSA-id,
/// on behalf of their unit; a citizen by reference; a system by client id).
pub fn provenance(
    target: (ResourceType, &ResourceId, VersionId),
    activity: ProvenanceActivity,
    agent: &AuditAgent,
    recorded: OffsetDateTime,
    id: &ResourceId,
) -> Value {
    let (resource_type, target_id, version_id) = target;
    let (code, display) = activity.code();
    json!({
        "resourceType": "Provenance",
        "id": id.as_str(),
        "target": [{"reference": format!("{resource_type}/{target_id}/_history/{version_id}")}],
        "recorded": format_instant(recorded),
        "activity": {"coding": [{"system": DATA_OPERATION, "code": code, "display": display}]},
        "agent": [provenance_agent(agent)]
    })
}

fn provenance_agent(agent: &AuditAgent) -> Value {
    let author =
        json!({"coding": [{"system": PARTICIPANT_TYPE, "code": "author", "display": "Author"}]});
    match agent {
        AuditAgent::Staff {
            hsa_id,
            unit_hsa_id,
            practitioner_role,
            ..
        } => {
            let mut who = json!({"identifier": {"system": HSA_ID, "value": hsa_id}});
            if let Some(role) = practitioner_role {
                who["reference"] = json!(format!("PractitionerRole/{role}"));
            }
            json!({
                "type": author,
                "who": who,
                "onBehalfOf": {"identifier": {"system": HSA_ID, "value": unit_hsa_id}}
            })
        }
        AuditAgent::Citizen {
            reference: Some(reference),
        } => json!({"type": author, "who": {"reference": reference}}),
        AuditAgent::System { client_id } => json!({
            "type": author,
            "who": {"identifier": {"system": CLIENT_ID_SYSTEM, "value": client_id}}
        }),
        // Writes need an identified caller, so these are not expected; the Provenance still
        // says that the author is unknown rather than failing the write.
        AuditAgent::Citizen { reference: None } | AuditAgent::Unauthenticated => {
            json!({"type": author, "who": {"display": "unidentified caller"}})
        }
    }
}

/// Writes the Provenance of `target` inside the write's transaction.
pub async fn stage_provenance(
    tx: &mut dyn StoreTx,
    target: (ResourceType, &ResourceId, VersionId),
    activity: ProvenanceActivity,
    agent: &AuditAgent,
    recorded: OffsetDateTime,
) -> Result<(), CoreError> {
    let id = ResourceId::generate();
    let resource = provenance(target, activity, agent, recorded, &id);
    tx.write(first_version(ResourceType::Provenance, id, resource)?)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::{id, staff};
    use paraply_fhir::validate;

    #[test]
    fn provenances_of_every_activity_and_agent_are_valid_r4() {
        let agents = [
            staff(),
            AuditAgent::Citizen {
                reference: Some("Patient/p1".into()),
            },
            AuditAgent::Citizen { reference: None },
            AuditAgent::System {
                client_id: "c".into(),
            },
            AuditAgent::Unauthenticated,
        ];
        let version = VersionId::new(3).unwrap();
        for agent in &agents {
            for activity in [
                ProvenanceActivity::Create,
                ProvenanceActivity::Update,
                ProvenanceActivity::Delete,
            ] {
                let resource = provenance(
                    (ResourceType::CarePlan, &id("plan-1"), version),
                    activity,
                    agent,
                    OffsetDateTime::UNIX_EPOCH,
                    &id("prov-1"),
                );
                validate(&resource).unwrap_or_else(|e| panic!("{agent:?} {activity:?}: {e:?}"));
                assert_eq!(
                    resource["target"][0]["reference"],
                    "CarePlan/plan-1/_history/3"
                );
            }
        }
        let staff_written = provenance(
            (ResourceType::Task, &id("t"), VersionId::FIRST),
            ProvenanceActivity::Create,
            &staff(),
            OffsetDateTime::UNIX_EPOCH,
            &id("prov-2"),
        );
        assert_eq!(staff_written["activity"]["coding"][0]["code"], "CREATE");
        assert_eq!(
            staff_written["agent"][0]["who"]["identifier"]["value"],
            "SE2321000016-1234"
        );
        assert_eq!(
            staff_written["agent"][0]["onBehalfOf"]["identifier"]["value"],
            "SE2321000016-UNIT"
        );
    }
}
