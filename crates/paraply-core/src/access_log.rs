//! `GET Patient/{id}/$access-log`: the patient's view of the access log (DOMAIN.md §1, §5):
//! who read or wrote their data — by unit and care provider, not by staff member —, when,
//! what kind of data, why (and whether it was an emergency access), and whether it was
//! allowed.
//!
//! The answer is a `searchset` Bundle of AuditEvents, newest first, each reduced to what the
//! patient may see: the staff member's HSA-id and PractitionerRole, the token issuer, other
//! patients named by the same event, the search query, the request id, the emergency reason
//! text (free text written by staff) and failure details are dropped. Every entry is still
//! a valid AuditEvent. Pages continue with the search cursor (`_page`); links are relative
//! to the FHIR base, which only the HTTP edge knows.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use paraply_fhir::ResourceId;
use paraply_search::{PageCursor, SortValue};
use paraply_store::{
    AccessLogCondition, AccessLogFilter, AccessLogOrder, AccessLogQuery, AccessLogTerm, Store,
    TermKey, micros,
};
use serde_json::{Map, Value, json};

use crate::audit::{CARE_PROVIDER_ROLE, CLIENT_ID_SYSTEM, OBJECT_ROLE, ROLE_CLASS, UNIT_ROLE};
use crate::audit_row::rendered;
use crate::error::CoreError;

/// One page of the access log of `patient`, newest first: `count` events, after `page`
/// (a cursor from a previous answer's `next` link).
pub async fn access_log(
    store: &dyn Store,
    patient: &ResourceId,
    count: u32,
    page: Option<PageCursor>,
) -> Result<Value, CoreError> {
    let patient_reference = format!("Patient/{patient}");
    // A total would count the whole log on every page; `next` says whether more follow.
    let query = AccessLogQuery {
        filters: vec![AccessLogFilter {
            any_of: vec![AccessLogCondition::Term(AccessLogTerm {
                key: TermKey::Patient,
                value: patient.to_string(),
            })],
        }],
        order: AccessLogOrder::Recorded { descending: true },
        count,
        page: page.clone(),
        total: false,
        restriction: None,
    };
    let backwards = page.as_ref().is_some_and(|p| p.backwards);
    let found = store.search_access_log(&query).await?;

    let own_url = format!("Patient/{patient}/$access-log?_count={count}");
    let mut self_url = own_url.clone();
    if let Some(page) = &page {
        self_url.push_str(&format!("&_page={}", page.encode()));
    }
    let mut links = vec![json!({"relation": "self", "url": self_url})];
    if let (true, Some(last)) = (found.more || backwards, found.rows.last()) {
        let cursor = PageCursor {
            values: vec![SortValue::Int(micros(last.recorded))],
            seq: last.seq,
            backwards: false,
        };
        links.push(json!({
            "relation": "next",
            "url": format!("{own_url}&_page={}", cursor.encode())
        }));
    }
    let entries = found
        .rows
        .iter()
        .map(|row| {
            Ok(json!({
                "resource": for_patient(&rendered(row)?, &patient_reference),
                "search": {"mode": "match"}
            }))
        })
        .collect::<Result<Vec<_>, CoreError>>()?;
    let mut bundle = Map::new();
    bundle.insert("resourceType".into(), json!("Bundle"));
    bundle.insert("type".into(), json!("searchset"));
    bundle.insert("link".into(), Value::Array(links));
    if !entries.is_empty() {
        bundle.insert("entry".into(), Value::Array(entries));
    }
    Ok(Value::Object(bundle))
}

/// The stored AuditEvent reduced to what its patient may see (see the module docs).
fn for_patient(event: &Value, patient_reference: &str) -> Value {
    let mut out = Map::new();
    for key in ["resourceType", "id"] {
        copy(event, &mut out, key);
    }
    if let Some(security) = event.pointer("/meta/security") {
        out.insert("meta".into(), json!({"security": security}));
    }
    for key in ["type", "subtype", "action", "recorded", "outcome"] {
        copy(event, &mut out, key);
    }
    if let Some(purposes) = event.get("purposeOfEvent") {
        out.insert("purposeOfEvent".into(), codings_only(purposes));
    }
    let agents: Vec<Value> = array(event, "agent")
        .filter_map(agent_for_patient)
        .collect();
    out.insert("agent".into(), Value::Array(agents));
    copy(event, &mut out, "source");
    let entities: Vec<Value> = array(event, "entity")
        .filter_map(|entity| entity_for_patient(entity, patient_reference))
        .collect();
    if !entities.is_empty() {
        out.insert("entity".into(), Value::Array(entities));
    }
    Value::Object(out)
}

fn copy(from: &Value, to: &mut Map<String, Value>, key: &str) {
    if let Some(value) = from.get(key) {
        to.insert(key.into(), value.clone());
    }
}

fn array<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// CodeableConcepts without their free `text` (the emergency reason).
fn codings_only(concepts: &Value) -> Value {
    Value::Array(
        concepts
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|concept| concept.get("coding"))
            .map(|coding| json!({"coding": coding}))
            .collect(),
    )
}

fn has_code(concept: Option<&Value>, system: &str, code: &str) -> bool {
    concept
        .and_then(|c| c.get("coding"))
        .and_then(Value::as_array)
        .is_some_and(|codings| {
            codings
                .iter()
                .any(|c| c["system"] == system && c["code"] == code)
        })
}

/// The requestor without a staff member's identity, and the unit and care provider; the
/// server's own agent is left out.
fn agent_for_patient(agent: &Value) -> Option<Value> {
    let agent_type = agent.get("type");
    if has_code(agent_type, ROLE_CLASS, UNIT_ROLE)
        || has_code(agent_type, ROLE_CLASS, CARE_PROVIDER_ROLE)
    {
        return Some(json!({
            "type": agent_type,
            "who": agent.get("who"),
            "requestor": false
        }));
    }
    if agent.get("requestor") != Some(&Value::Bool(true)) {
        return None;
    }
    let mut out = Map::new();
    copy(agent, &mut out, "type");
    let who = agent.get("who");
    let citizen = who
        .and_then(|w| w.get("reference"))
        .and_then(Value::as_str)
        .filter(|r| r.starts_with("Patient/") || r.starts_with("RelatedPerson/"));
    let system = who
        .and_then(|w| w.pointer("/identifier/system"))
        .is_some_and(|s| s == CLIENT_ID_SYSTEM);
    if let Some(reference) = citizen {
        out.insert("who".into(), json!({"reference": reference}));
    } else if system {
        copy(agent, &mut out, "who");
    }
    out.insert("requestor".into(), json!(true));
    if let Some(purposes) = agent.get("purposeOfUse") {
        out.insert("purposeOfUse".into(), codings_only(purposes));
    }
    Some(Value::Object(out))
}

/// This patient's own entity, and the kind of resource read or searched (not which one,
/// and not the query, which may name others).
fn entity_for_patient(entity: &Value, patient_reference: &str) -> Option<Value> {
    let reference = entity.pointer("/what/reference").and_then(Value::as_str);
    let role = entity.pointer("/role/code").and_then(Value::as_str);
    let from_object_role = entity
        .pointer("/role/system")
        .is_some_and(|s| s == OBJECT_ROLE);
    match (role, from_object_role) {
        (Some("1"), true) => (reference == Some(patient_reference)).then(|| entity.clone()),
        (Some("4"), true) => {
            let kind = reference?.split('/').next()?;
            Some(
                json!({"what": {"type": kind}, "type": entity.get("type"), "role": entity.get("role")}),
            )
        }
        (Some("24"), true) => {
            let query = STANDARD.decode(entity.get("query")?.as_str()?).ok()?;
            let query = String::from_utf8(query).ok()?;
            let kind = query.split('?').next().filter(|k| !k.is_empty())?;
            Some(
                json!({"what": {"type": kind}, "type": entity.get("type"), "role": entity.get("role")}),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use paraply_fhir::ResourceType;
    use paraply_search::SearchQuery;
    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::audit::tests::{id, record};
    use crate::audit::{AuditAction, AuditAgent, AuditOutcome};
    use crate::audit_log::stage_audit_event;
    use crate::audit_log::tests::sqlite;
    use crate::context::Purpose;

    fn resources(bundle: &Value) -> Vec<Value> {
        bundle["entry"]
            .as_array()
            .map(|entries| entries.iter().map(|e| e["resource"].clone()).collect())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_patient_sees_only_their_events_newest_first_by_unit_without_staff_ids() {
        let db = sqlite().await;
        let start = OffsetDateTime::now_utc() - Duration::hours(1);
        let mut tx = db.store.begin().await.unwrap();
        // p1: a read, an emergency search over p1 and p2, a denied read; p2 and p3: other reads.
        let read = record("p1", start);
        let mut search = record("p1", start + Duration::minutes(2));
        search.action = AuditAction::Query;
        search.patients = vec![id("p1"), id("p2")];
        search.entity = None;
        search.query = Some("CarePlan?patient.identifier=x|191212121212".into());
        search.purpose = Purpose::Emergency {
            reason: "Dr Andersson, akut".into(),
        };
        let mut denied = record("p1", start + Duration::minutes(1));
        denied.outcome = AuditOutcome::Denied {
            reason: "no care relationship".into(),
        };
        let mut own = record("p1", start + Duration::minutes(3));
        own.agent = AuditAgent::Citizen {
            reference: Some("Patient/p1".into()),
        };
        for r in [
            read,
            search,
            denied,
            own,
            record("p2", start),
            record("p3", start),
        ] {
            stage_audit_event(tx.as_mut(), &r).await.unwrap();
        }
        tx.commit().await.unwrap();

        // Emergency accesses are one search away for the people who review them.
        let emergencies = SearchQuery::parse(
            ResourceType::AuditEvent,
            [(
                "_security",
                "http://terminology.hl7.org/CodeSystem/v3-ActReason|ETREAT",
            )],
        )
        .unwrap();
        assert_eq!(
            crate::audit_search::search(db.store.as_ref(), &emergencies)
                .await
                .unwrap()
                .matches
                .len(),
            1
        );

        let bundle = access_log(db.store.as_ref(), &id("p1"), 10, None)
            .await
            .unwrap();
        assert_eq!(bundle["type"], "searchset");
        let events = resources(&bundle);
        assert_eq!(events.len(), 4);
        let recorded: Vec<&str> = events
            .iter()
            .map(|e| e["recorded"].as_str().unwrap())
            .collect();
        let mut newest_first = recorded.clone();
        newest_first.sort_by(|a, b| b.cmp(a));
        assert_eq!(recorded, newest_first);

        let text = bundle.to_string();
        for hidden in [
            "SE2321000016-1234",
            "PractitionerRole",
            "Patient/p2",
            "191212121212",
            "Andersson",
            "req-1",
            "127.0.0.1",
            "no care relationship",
        ] {
            assert!(
                !text.contains(hidden),
                "{hidden} shown to the patient: {text}"
            );
        }
        for event in &events {
            paraply_fhir::validate(event).unwrap_or_else(|e| panic!("{e:?}: {event}"));
        }

        let [own, search, denied, read] = events.as_slice() else {
            unreachable!()
        };
        assert_eq!(own["agent"][0]["who"]["reference"], "Patient/p1");
        assert_eq!(search["meta"]["security"][0]["code"], "ETREAT");
        assert_eq!(search["purposeOfEvent"][0]["coding"][0]["code"], "ETREAT");
        assert_eq!(search["entity"][1]["what"]["type"], "CarePlan");
        assert_eq!(denied["outcome"], "4");
        assert_eq!(read["action"], "R");
        assert_eq!(
            read["agent"][1]["who"]["identifier"]["value"],
            "SE2321000016-UNIT"
        );
        assert_eq!(
            read["agent"][2]["who"]["identifier"]["value"],
            "SE2321000016-PROV"
        );
        assert!(read["agent"][0].get("who").is_none());
        assert_eq!(read["entity"][0]["what"]["reference"], "Patient/p1");
        assert_eq!(read["entity"][1]["what"]["type"], "CarePlan");
    }

    #[tokio::test]
    async fn pages_continue_with_the_next_link_until_the_log_ends() {
        let db = sqlite().await;
        let start = OffsetDateTime::now_utc() - Duration::hours(1);
        let mut tx = db.store.begin().await.unwrap();
        for minute in 0..5 {
            stage_audit_event(
                tx.as_mut(),
                &record("p1", start + Duration::minutes(minute)),
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();

        let mut seen = Vec::new();
        let mut page = None;
        loop {
            let bundle = access_log(db.store.as_ref(), &id("p1"), 2, page)
                .await
                .unwrap();
            seen.extend(resources(&bundle).iter().map(|e| e["recorded"].clone()));
            let next = bundle["link"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["relation"] == "next")
                .map(|l| l["url"].as_str().unwrap().to_owned());
            let Some(next) = next else { break };
            assert!(next.starts_with("Patient/p1/$access-log?_count=2&_page="));
            let cursor = next.rsplit("_page=").next().unwrap();
            page = Some(PageCursor::decode(cursor).unwrap());
        }
        assert_eq!(seen.len(), 5);
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.as_str().cmp(&a.as_str()));
        sorted.dedup();
        assert_eq!(seen, sorted);
    }

    /// The AuditEvents, Provenances and the `$access-log` Bundle are valid R4 according to
    /// the independent validator (`../shared/tools/fhir-validate`), run when
    /// `PARAPLY_FHIR_VALIDATOR_PYTHON` names a Python with `fhir.resources` (as in e2e).
    #[tokio::test]
    async fn emitted_resources_pass_the_independent_r4_validator() {
        let db = sqlite().await;
        let now = OffsetDateTime::now_utc();
        let mut samples = Vec::new();
        let agents = [
            crate::audit::tests::staff(),
            AuditAgent::Citizen {
                reference: Some("Patient/p1".into()),
            },
            AuditAgent::Citizen { reference: None },
            AuditAgent::System {
                client_id: "batch".into(),
            },
            AuditAgent::Unauthenticated,
        ];
        let mut tx = db.store.begin().await.unwrap();
        for (i, agent) in agents.iter().enumerate() {
            let mut r = record("p1", now);
            r.agent = agent.clone();
            r.action = AuditAction::Query;
            r.query = Some("CarePlan?patient=Patient/p1".into());
            r.purpose = Purpose::Emergency {
                reason: "akut".into(),
            };
            r.outcome = AuditOutcome::Denied {
                reason: "spärr".into(),
            };
            samples.push(crate::audit::audit_event(&r, &id(&format!("ae-{i}"))));
            samples.push(crate::provenance::provenance(
                (
                    ResourceType::CarePlan,
                    &id("plan-1"),
                    paraply_fhir::VersionId::FIRST,
                ),
                crate::provenance::ProvenanceActivity::Update,
                agent,
                now,
                &id(&format!("prov-{i}")),
            ));
            stage_audit_event(tx.as_mut(), &r).await.unwrap();
        }
        tx.commit().await.unwrap();
        samples.push(
            access_log(db.store.as_ref(), &id("p1"), 3, None)
                .await
                .unwrap(),
        );

        let texts: Vec<String> = samples.iter().map(Value::to_string).collect();
        let names: Vec<String> = (0..texts.len()).map(|i| i.to_string()).collect();
        let documents: Vec<(&str, &str)> = names
            .iter()
            .zip(&texts)
            .map(|(name, text)| (name.as_str(), text.as_str()))
            .collect();
        paraply_fhir_validator::assert_valid(&documents);
    }
}
