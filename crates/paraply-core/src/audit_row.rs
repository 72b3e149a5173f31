//! An [`AuditRecord`] as the compact access-log entry storage keeps ([`log_entry`]) and
//! back ([`record_of`]): the columns it is searched by, its search terms, and a small JSON
//! body of what the AuditEvent is rendered from — not the AuditEvent itself, which is
//! rendered on read by [`crate::audit::audit_event`] and so keeps its BALP shape whatever
//! the storage.
//!
//! Personal values are masked before they are kept (the search query, reasons, the
//! emergency reason), exactly as the rendered AuditEvent shows them, so the table holds no
//! personnummer either.

use paraply_fhir::{ResourceId, ResourceType};
use paraply_store::{AccessLogEntry, AccessLogRow, AccessLogTerm, StoreError, TermKey};
use serde_json::{Map, Value, json};

use crate::audit::{
    AuditAction, AuditAgent, AuditOutcome, AuditRecord, audit_event, mask_digits, mask_query,
};
use crate::context::Purpose;
use crate::error::CoreError;

/// The entry to append for `record`, under a new AuditEvent id.
pub(crate) fn log_entry(record: &AuditRecord) -> AccessLogEntry {
    log_entry_as(record, ResourceId::generate())
}

/// The entry to append for `record` as AuditEvent `id`.
pub(crate) fn log_entry_as(record: &AuditRecord, id: ResourceId) -> AccessLogEntry {
    AccessLogEntry {
        id,
        recorded: record.recorded,
        subtype: record.action.interaction().to_owned(),
        action: record.action.code().to_owned(),
        outcome: outcome_code(&record.outcome).to_owned(),
        emergency: matches!(record.purpose, Purpose::Emergency { .. }),
        body: compact(record).to_string(),
        terms: terms(record),
    }
}

pub(crate) fn outcome_code(outcome: &AuditOutcome) -> &'static str {
    match outcome {
        AuditOutcome::Success => "0",
        AuditOutcome::Denied { .. } => "4",
        AuditOutcome::Failed { .. } => "8",
    }
}

/// The search keys of the R4 AuditEvent parameters Paraply serves: `patient` (every
/// patient touched, and a patient who acted — R4's `agent.who | entity.what` that are
/// Patients), `agent` (`agent.who` references) and `entity` (`entity.what` references).
fn terms(record: &AuditRecord) -> Vec<AccessLogTerm> {
    let mut terms = Vec::new();
    let mut add = |key: TermKey, value: String| {
        let term = AccessLogTerm { key, value };
        if !terms.contains(&term) {
            terms.push(term);
        }
    };
    for patient in &record.patients {
        add(TermKey::Patient, patient.to_string());
        add(TermKey::Entity, format!("Patient/{patient}"));
    }
    if let Some((resource_type, id)) = &record.entity {
        if *resource_type == ResourceType::Patient {
            add(TermKey::Patient, id.to_string());
        }
        add(TermKey::Entity, format!("{resource_type}/{id}"));
    }
    match &record.agent {
        AuditAgent::Staff {
            practitioner_role: Some(role),
            ..
        } => add(TermKey::Agent, format!("PractitionerRole/{role}")),
        AuditAgent::Citizen {
            reference: Some(reference),
        } => {
            if let Some(patient) = reference.strip_prefix("Patient/") {
                add(TermKey::Patient, patient.to_owned());
            }
            add(TermKey::Agent, reference.clone());
        }
        _ => {}
    }
    terms
}

/// The body kept: short keys, since every access writes one.
pub(crate) fn compact(record: &AuditRecord) -> Value {
    let mut body = Map::new();
    body.insert("a".into(), json!(record.action.interaction()));
    let agent = match &record.agent {
        AuditAgent::Staff {
            hsa_id,
            unit_hsa_id,
            care_provider_hsa_id,
            practitioner_role,
        } => {
            let mut staff = json!({"k": "staff", "h": hsa_id, "u": unit_hsa_id,
                "p": care_provider_hsa_id});
            if let Some(role) = practitioner_role {
                staff["r"] = json!(role.as_str());
            }
            staff
        }
        AuditAgent::Citizen { reference } => match reference {
            Some(reference) => json!({"k": "citizen", "r": reference}),
            None => json!({"k": "citizen"}),
        },
        AuditAgent::System { client_id } => json!({"k": "system", "c": client_id}),
        AuditAgent::Unauthenticated => json!({"k": "none"}),
    };
    body.insert("g".into(), agent);
    if !record.issuer.is_empty() {
        body.insert("i".into(), json!(record.issuer));
    }
    if let Purpose::Emergency { reason } = &record.purpose {
        body.insert("e".into(), json!(mask_digits(reason.trim())));
    }
    match &record.outcome {
        AuditOutcome::Success => {}
        AuditOutcome::Denied { reason } | AuditOutcome::Failed { reason } => {
            body.insert("o".into(), json!(outcome_code(&record.outcome)));
            body.insert("d".into(), json!(mask_digits(reason)));
        }
    }
    if !record.patients.is_empty() {
        let patients: Vec<&str> = record.patients.iter().map(ResourceId::as_str).collect();
        body.insert("pt".into(), json!(patients));
    }
    if let Some((resource_type, id)) = &record.entity {
        body.insert("en".into(), json!(format!("{resource_type}/{id}")));
    }
    if let Some(query) = record.query.as_deref().filter(|q| !q.is_empty()) {
        body.insert("q".into(), json!(mask_query(query)));
    }
    if !record.detail.is_empty() {
        let detail: Vec<[&str; 2]> = record
            .detail
            .iter()
            .map(|(kind, value)| [kind.as_str(), value.as_str()])
            .collect();
        body.insert("x".into(), json!(detail));
    }
    if !record.request_id.is_empty() {
        body.insert("r".into(), json!(record.request_id));
    }
    Value::Object(body)
}

fn corrupt(what: &str) -> CoreError {
    CoreError::Store(StoreError::Corrupt(format!("access log entry: {what}")))
}

/// The record a stored entry was appended for.
pub(crate) fn record_of(row: &AccessLogRow) -> Result<AuditRecord, CoreError> {
    record_of_body(row.recorded, &row.body)
}

/// The record of an entry's compact `body`, recorded at `recorded`.
pub(crate) fn record_of_body(
    recorded: time::OffsetDateTime,
    body: &str,
) -> Result<AuditRecord, CoreError> {
    let body: Value = serde_json::from_str(body).map_err(|_| corrupt("body is no JSON"))?;
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    let owned = |value: Option<&str>| value.unwrap_or_default().to_owned();
    let action = text("a")
        .and_then(AuditAction::from_interaction)
        .ok_or_else(|| corrupt("unknown interaction"))?;
    let agent_body = body.get("g").ok_or_else(|| corrupt("no agent"))?;
    let agent_text = |key: &str| agent_body.get(key).and_then(Value::as_str);
    let agent = match agent_text("k") {
        Some("staff") => AuditAgent::Staff {
            hsa_id: owned(agent_text("h")),
            unit_hsa_id: owned(agent_text("u")),
            care_provider_hsa_id: owned(agent_text("p")),
            practitioner_role: agent_text("r").and_then(|r| r.parse().ok()),
        },
        Some("citizen") => AuditAgent::Citizen {
            reference: agent_text("r").map(str::to_owned),
        },
        Some("system") => AuditAgent::System {
            client_id: owned(agent_text("c")),
        },
        Some("none") => AuditAgent::Unauthenticated,
        _ => return Err(corrupt("unknown agent")),
    };
    let reason = owned(text("d"));
    let outcome = match text("o") {
        None | Some("0") => AuditOutcome::Success,
        Some("4") => AuditOutcome::Denied { reason },
        Some(_) => AuditOutcome::Failed { reason },
    };
    let purpose = match text("e") {
        Some(reason) => Purpose::Emergency {
            reason: reason.to_owned(),
        },
        None => Purpose::Treatment,
    };
    let patients = body
        .get("pt")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|id| id.parse().ok())
        .collect();
    let entity = text("en")
        .and_then(|reference| reference.split_once('/'))
        .and_then(|(t, id)| Some((t.parse().ok()?, id.parse().ok()?)));
    Ok(AuditRecord {
        recorded,
        action,
        agent,
        issuer: owned(text("i")),
        purpose,
        outcome,
        patients,
        entity,
        query: text("q").map(str::to_owned),
        detail: body
            .get("x")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|pair| {
                Some((
                    pair.get(0)?.as_str()?.to_owned(),
                    pair.get(1)?.as_str()?.to_owned(),
                ))
            })
            .collect(),
        request_id: owned(text("r")),
    })
}

/// The AuditEvent of a stored entry, as version 1 written when it was recorded.
pub(crate) fn rendered(row: &AccessLogRow) -> Result<Value, CoreError> {
    let event = audit_event(&record_of(row)?, &row.id);
    let Value::Object(map) = event else {
        return Err(corrupt("rendered as no object"));
    };
    Ok(crate::stamp::stamp(
        map,
        &row.id,
        paraply_fhir::VersionId::FIRST,
        row.recorded,
    ))
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::audit::tests::{record, staff};

    fn row_of(entry: &AccessLogEntry) -> AccessLogRow {
        AccessLogRow {
            seq: 1,
            id: entry.id.clone(),
            recorded: entry.recorded,
            body: entry.body.clone(),
        }
    }

    #[test]
    fn every_record_comes_back_as_the_same_audit_event() {
        let agents = [
            staff(),
            AuditAgent::Citizen {
                reference: Some("Patient/p1".into()),
            },
            AuditAgent::Citizen { reference: None },
            AuditAgent::System {
                client_id: "batch".into(),
            },
            AuditAgent::Unauthenticated,
        ];
        let recorded = crate::stamp::now();
        for agent in agents {
            for outcome in [
                AuditOutcome::Success,
                AuditOutcome::Denied {
                    reason: "spärr".into(),
                },
                AuditOutcome::Failed {
                    reason: "database unavailable".into(),
                },
            ] {
                let mut r = record("p1", recorded);
                r.agent = agent.clone();
                r.outcome = outcome;
                r.action = AuditAction::Query;
                r.query = Some("CarePlan?patient=Patient/p1&_count=5".into());
                r.purpose = Purpose::Emergency {
                    reason: "akut".into(),
                };
                let entry = log_entry(&r);
                let back = record_of(&row_of(&entry)).unwrap();
                assert_eq!(audit_event(&back, &entry.id), audit_event(&r, &entry.id));
            }
        }
    }

    #[test]
    fn terms_name_patients_agents_and_entities_and_no_personnummer_is_kept() {
        let mut r = record("p1", OffsetDateTime::UNIX_EPOCH);
        r.agent = AuditAgent::Citizen {
            reference: Some("Patient/p9".into()),
        };
        r.query = Some("Patient?identifier=x|191212121212".into());
        r.purpose = Purpose::Emergency {
            reason: "19121212-1212 medvetslös".into(),
        };
        let entry = log_entry(&r);
        let terms: Vec<(&str, &str)> = entry
            .terms
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        for expected in [
            ("patient", "p1"),
            ("patient", "p9"),
            ("entity", "Patient/p1"),
            ("entity", "CarePlan/plan-1"),
            ("agent", "Patient/p9"),
        ] {
            assert!(terms.contains(&expected), "{expected:?} in {terms:?}");
        }
        assert!(entry.emergency);
        assert_eq!(
            (entry.subtype.as_str(), entry.action.as_str()),
            ("read", "R")
        );
        assert!(!entry.body.contains("1212"), "{}", entry.body);
        let event = rendered(&row_of(&entry)).unwrap();
        assert_eq!(event["meta"]["versionId"], "1");
        assert_eq!(event["id"], entry.id.as_str());
        paraply_fhir::validate(&event).unwrap();
    }
}
