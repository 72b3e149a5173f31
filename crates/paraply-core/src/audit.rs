//! The access log (DOMAIN.md I15): one AuditEvent per access to patient data, following
//! IHE Basic Audit Log Patterns (BALP, <https://profiles.ihe.net/ITI/BALP/>), and a
//! Provenance per write ([`crate::provenance`]).
//!
//! How an [`AuditRecord`] maps to an R4 AuditEvent ([`audit_event`]):
//! - `type` = `rest`, `subtype` = the RESTful interaction, `action` = C/R/U/D/E.
//! - `agent`: the requestor (BALP "user": `IRCP` for reads and queries, `AGNT` for writes,
//!   `PAT` when a patient acts), with `policy` = the token's issuer and `purposeOfUse`.
//!   Staff are named by HSA-id (`who.identifier`, plus their PractitionerRole if known);
//!   their unit and care provider are two further agents typed `v3-RoleClass#SDLOC`
//!   (vårdenhet, a service delivery location) and `#PROV` (vårdgivare), named by HSA-id,
//!   so the patient's view can keep them and drop the person. A last agent is the server
//!   itself (DICOM `110152`, destination).
//! - `source.observer` = Paraply, type `4` (application server).
//! - `entity`: each patient (role `1`), the resource touched (role `4`), a search's query
//!   (role `24`, base64 in `entity.query`) and the request id (BALP `XrequestId`).
//! - Emergency access (`ETREAT`) is flagged three ways: `purposeOfEvent` and the agent's
//!   `purposeOfUse` carry `ETREAT` with the caller's reason as `text`, and
//!   `meta.security` carries `v3-ActReason#ETREAT`, so one search (`_security`) or one
//!   glance at `meta` finds every emergency access.
//!
//! No personnummer and no names: the record holds none except inside a search query or an
//! emergency reason, so those are masked ([`mask_query`], [`mask_digits`]) before they are
//! written.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use paraply_fhir::{HSA_ID, ResourceId, ResourceType};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::context::Purpose;
use crate::stamp::format_instant;

/// What was done, in BALP terms; each maps to one `restful-interaction` subtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// read (`R`).
    Read,
    /// vread (`R`).
    VRead,
    /// search (`E`, BALP Query).
    Query,
    /// history of an instance, type or the system (`E`).
    History,
    /// An operation such as `$patientkontrakt` or `$access-log` that reads data (`E`).
    Operation,
    /// create (`C`).
    Create,
    /// update (`U`).
    Update,
    /// patch (`U`).
    Patch,
    /// delete (`D`).
    Delete,
}

impl AuditAction {
    /// `AuditEvent.action`.
    pub const fn code(self) -> &'static str {
        match self {
            AuditAction::Read | AuditAction::VRead => "R",
            AuditAction::Query | AuditAction::History | AuditAction::Operation => "E",
            AuditAction::Create => "C",
            AuditAction::Update | AuditAction::Patch => "U",
            AuditAction::Delete => "D",
        }
    }

    /// `AuditEvent.subtype` in `http://hl7.org/fhir/restful-interaction`.
    pub const fn interaction(self) -> &'static str {
        match self {
            AuditAction::Read => "read",
            AuditAction::VRead => "vread",
            AuditAction::Query => "search-type",
            AuditAction::History => "history",
            AuditAction::Operation => "operation",
            AuditAction::Create => "create",
            AuditAction::Update => "update",
            AuditAction::Patch => "patch",
            AuditAction::Delete => "delete",
        }
    }

    /// The action whose [`Self::interaction`] is `code`.
    pub fn from_interaction(code: &str) -> Option<AuditAction> {
        [
            AuditAction::Read,
            AuditAction::VRead,
            AuditAction::Query,
            AuditAction::History,
            AuditAction::Operation,
            AuditAction::Create,
            AuditAction::Update,
            AuditAction::Patch,
            AuditAction::Delete,
        ]
        .into_iter()
        .find(|action| action.interaction() == code)
    }

    const fn is_write(self) -> bool {
        matches!(
            self,
            AuditAction::Create | AuditAction::Update | AuditAction::Patch | AuditAction::Delete
        )
    }
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
    /// What the access yielded, shown on its query entity (`entity.detail`, type → value):
    /// a bulk export's resources per type.
    pub detail: Vec<(String, String)>,
    pub request_id: String,
}

pub(crate) const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
pub(crate) const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
pub(crate) const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
pub(crate) const PARTICIPATION_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
pub(crate) const ROLE_CLASS: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleClass";
pub(crate) const DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const SECURITY_SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
pub(crate) const AUDIT_ENTITY_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/audit-entity-type";
pub(crate) const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const BALP_ENTITY_TYPE: &str = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType";

/// Identifier system of Paraply's request ids (`X-Request-Id`) in `entity.what.identifier`.
pub const REQUEST_ID_SYSTEM: &str = "https://paraply.se/fhir/sid/request-id";
/// Identifier system of OAuth `client_id`s of system clients in `agent.who.identifier`.
pub const CLIENT_ID_SYSTEM: &str = "https://paraply.se/fhir/sid/client-id";
/// How Paraply names itself as the observer and destination of every event.
pub(crate) const SERVER_NAME: &str = "Paraply";

/// `v3-RoleClass` codes of the unit and care-provider agents.
pub(crate) const UNIT_ROLE: &str = "SDLOC";
pub(crate) const CARE_PROVIDER_ROLE: &str = "PROV";

/// Builds the R4 AuditEvent for `record` with the given id (no `meta.versionId` or
/// `lastUpdated`: the writer stamps those).
pub fn audit_event(record: &AuditRecord, id: &ResourceId) -> Value {
    let mut event = Map::new();
    event.insert("resourceType".into(), json!("AuditEvent"));
    event.insert("id".into(), json!(id.as_str()));
    if matches!(record.purpose, Purpose::Emergency { .. }) {
        event.insert(
            "meta".into(),
            json!({"security": [coding(ACT_REASON, "ETREAT", "Emergency Treatment")]}),
        );
    }
    event.insert(
        "type".into(),
        coding(AUDIT_EVENT_TYPE, "rest", "Restful Operation"),
    );
    event.insert(
        "subtype".into(),
        json!([{"system": RESTFUL_INTERACTION, "code": record.action.interaction()}]),
    );
    event.insert("action".into(), json!(record.action.code()));
    event.insert("recorded".into(), json!(format_instant(record.recorded)));
    let (outcome, description) = match &record.outcome {
        AuditOutcome::Success => ("0", None),
        AuditOutcome::Denied { reason } => ("4", Some(reason)),
        AuditOutcome::Failed { reason } => ("8", Some(reason)),
    };
    event.insert("outcome".into(), json!(outcome));
    if let Some(description) = description.filter(|d| !d.is_empty()) {
        event.insert("outcomeDesc".into(), json!(mask_digits(description)));
    }
    let purpose = purpose_of_use(&record.purpose);
    event.insert("purposeOfEvent".into(), json!([purpose.clone()]));
    event.insert("agent".into(), Value::Array(agents(record, purpose)));
    event.insert(
        "source".into(),
        json!({
            "observer": {"display": SERVER_NAME},
            "type": [{"system": SECURITY_SOURCE_TYPE, "code": "4", "display": "Application Server"}]
        }),
    );
    event.insert("entity".into(), Value::Array(entities(record)));
    Value::Object(event)
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

fn purpose_of_use(purpose: &Purpose) -> Value {
    match purpose {
        Purpose::Treatment => json!({"coding": [coding(ACT_REASON, "TREAT", "treatment")]}),
        Purpose::Emergency { reason } => {
            let mut concept =
                json!({"coding": [coding(ACT_REASON, "ETREAT", "Emergency Treatment")]});
            let reason = mask_digits(reason.trim());
            if !reason.is_empty() {
                concept["text"] = json!(reason);
            }
            concept
        }
    }
}

fn agents(record: &AuditRecord, purpose: Value) -> Vec<Value> {
    let user_type = if record.action.is_write() {
        coding(ROLE_CLASS, "AGNT", "agent")
    } else {
        coding(PARTICIPATION_TYPE, "IRCP", "information recipient")
    };
    let mut requestor = Map::new();
    let mut organizations = Vec::new();
    let who = match &record.agent {
        AuditAgent::Staff {
            hsa_id,
            unit_hsa_id,
            care_provider_hsa_id,
            practitioner_role,
        } => {
            requestor.insert("type".into(), json!({"coding": [user_type]}));
            organizations.push(organization_agent(
                unit_hsa_id,
                UNIT_ROLE,
                "service delivery location",
            ));
            organizations.push(organization_agent(
                care_provider_hsa_id,
                CARE_PROVIDER_ROLE,
                "healthcare provider",
            ));
            let mut who = json!({"identifier": {"system": HSA_ID, "value": hsa_id}});
            if let Some(role) = practitioner_role {
                who["reference"] = json!(format!("PractitionerRole/{role}"));
            }
            Some(who)
        }
        AuditAgent::Citizen { reference } => {
            let is_patient = reference
                .as_deref()
                .is_some_and(|r| r.starts_with("Patient/"));
            let agent_type = if is_patient {
                coding(ROLE_CLASS, "PAT", "patient")
            } else {
                user_type
            };
            requestor.insert("type".into(), json!({"coding": [agent_type]}));
            reference.as_ref().map(|r| json!({"reference": r}))
        }
        AuditAgent::System { client_id } => {
            requestor.insert(
                "type".into(),
                json!({"coding": [coding(DICOM, "110150", "Application")]}),
            );
            Some(json!({"identifier": {"system": CLIENT_ID_SYSTEM, "value": client_id}}))
        }
        AuditAgent::Unauthenticated => {
            requestor.insert("type".into(), json!({"coding": [user_type]}));
            None
        }
    };
    if let Some(who) = who {
        requestor.insert("who".into(), who);
    }
    requestor.insert("requestor".into(), json!(true));
    if !record.issuer.is_empty() {
        requestor.insert("policy".into(), json!([record.issuer]));
    }
    requestor.insert("purposeOfUse".into(), json!([purpose]));

    let mut agents = vec![Value::Object(requestor)];
    agents.extend(organizations);
    agents.push(json!({
        "type": {"coding": [coding(DICOM, "110152", "Destination Role ID")]},
        "who": {"display": SERVER_NAME},
        "requestor": false
    }));
    agents
}

fn organization_agent(hsa_id: &str, role: &str, display: &str) -> Value {
    json!({
        "type": {"coding": [coding(ROLE_CLASS, role, display)]},
        "who": {"identifier": {"system": HSA_ID, "value": hsa_id}},
        "requestor": false
    })
}

fn entities(record: &AuditRecord) -> Vec<Value> {
    let mut entities: Vec<Value> = record
        .patients
        .iter()
        .map(|patient| {
            json!({
                "what": {"reference": format!("Patient/{patient}")},
                "type": coding(AUDIT_ENTITY_TYPE, "1", "Person"),
                "role": coding(OBJECT_ROLE, "1", "Patient")
            })
        })
        .collect();
    if let Some((resource_type, id)) = &record.entity {
        entities.push(json!({
            "what": {"reference": format!("{resource_type}/{id}")},
            "type": coding(AUDIT_ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "4", "Domain Resource")
        }));
    }
    if let Some(query) = record.query.as_deref().filter(|q| !q.is_empty()) {
        let mut entity = json!({
            "type": coding(AUDIT_ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "24", "Query"),
            "query": STANDARD.encode(mask_query(query))
        });
        if !record.detail.is_empty() {
            entity["detail"] = record
                .detail
                .iter()
                .map(|(kind, value)| json!({"type": kind, "valueString": value}))
                .collect();
        }
        entities.push(entity);
    }
    if !record.request_id.is_empty() {
        entities.push(json!({
            "what": {"identifier": {"system": REQUEST_ID_SYSTEM, "value": record.request_id}},
            "type": coding(BALP_ENTITY_TYPE, "XrequestId", "X-Request-Id")
        }));
    }
    entities
}

/// Search parameters whose values name or identify a person: their values are masked in
/// the logged query. The patients a search touched are logged by id as entities, so the
/// log still says whose data was read.
const PERSON_PARAMETERS: &[&str] = &[
    "identifier",
    "name",
    "family",
    "given",
    "phonetic",
    "telecom",
    "phone",
    "email",
    "address",
    "birthdate",
];

/// `query` (`Type?a=b&c=d`) with the values of person-identifying parameters replaced by
/// `*` (also at the end of a chain, `patient.identifier=`), and any personnummer-like run
/// of digits elsewhere masked.
pub(crate) fn mask_query(query: &str) -> String {
    let (path, pairs) = query.split_once('?').unwrap_or(("", query));
    let mut masked = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in url::form_urlencoded::parse(pairs.as_bytes()) {
        let base = name.split(':').next().unwrap_or_default();
        let last = base.rsplit('.').next().unwrap_or_default();
        let personal = PERSON_PARAMETERS.contains(&last) || last.starts_with("address-");
        if personal {
            masked.append_pair(&name, "*");
        } else if name == "_typeFilter" {
            // A bulk export's filter is a search of its own (`Patient?name=…`): masked alike.
            masked.append_pair(&name, &mask_query(&value));
        } else {
            masked.append_pair(&name, &mask_digits(&value));
        }
    }
    let masked = masked.finish();
    if path.is_empty() {
        masked
    } else {
        format!("{path}?{masked}")
    }
}

/// `text` with every run of 10 to 12 digits (optionally with the `-`/`+` of a written
/// personnummer) replaced by `*`: such a run is a personnummer or samordningsnummer more
/// often than anything else, and neither belongs in the access log.
pub(crate) fn mask_digits(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            let mut digits = 0;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || ((chars[i] == '-' || chars[i] == '+')
                        && digits >= 6
                        && chars.get(i + 1).is_some_and(char::is_ascii_digit)))
            {
                if chars[i].is_ascii_digit() {
                    digits += 1;
                }
                i += 1;
            }
            if (10..=12).contains(&digits) {
                out.push('*');
            } else {
                out.extend(&chars[start..i]);
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use paraply_fhir::validate;

    pub(crate) fn id(text: &str) -> ResourceId {
        text.parse().unwrap()
    }

    pub(crate) fn staff() -> AuditAgent {
        AuditAgent::Staff {
            hsa_id: "SE2321000016-1234".into(),
            unit_hsa_id: "SE2321000016-UNIT".into(),
            care_provider_hsa_id: "SE2321000016-PROV".into(),
            practitioner_role: Some(id("role-1")),
        }
    }

    pub(crate) fn record(patient: &str, recorded: OffsetDateTime) -> AuditRecord {
        AuditRecord {
            recorded,
            action: AuditAction::Read,
            agent: staff(),
            issuer: "http://127.0.0.1:4000/region".into(),
            purpose: Purpose::Treatment,
            outcome: AuditOutcome::Success,
            patients: vec![id(patient)],
            entity: Some((ResourceType::CarePlan, id("plan-1"))),
            query: None,
            detail: Vec::new(),
            request_id: "req-1".into(),
        }
    }

    /// A bulk export's entry says what it held: the counts per type survive the compact
    /// form the log keeps and show as `entity.detail` on the query entity, valid R4.
    #[test]
    fn an_export_entry_carries_its_counts_as_query_detail() {
        let mut record = record("p1", OffsetDateTime::UNIX_EPOCH);
        record.action = AuditAction::Operation;
        record.patients.clear();
        record.entity = None;
        record.query = Some("$export?_since=2026-01-01".into());
        record.detail = vec![
            ("Patient".into(), "2".into()),
            ("CarePlan".into(), "3".into()),
        ];
        let body = crate::audit_row::compact(&record).to_string();
        let back = crate::audit_row::record_of_body(record.recorded, &body).unwrap();
        assert_eq!(back, record);
        let event = audit_event(&back, &id("e1"));
        let query = event["entity"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e.get("query").is_some())
            .unwrap();
        assert_eq!(
            query["detail"],
            json!([{"type": "Patient", "valueString": "2"}, {"type": "CarePlan", "valueString": "3"}])
        );
        validate(&event).unwrap();
    }

    fn codes(event: &Value, pointer: &str) -> Vec<String> {
        event
            .pointer(pointer)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["code"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_staff_read_is_a_valid_balp_event_naming_user_unit_provider_and_patient() {
        let event = audit_event(&record("p1", OffsetDateTime::UNIX_EPOCH), &id("ae-1"));
        validate(&event).unwrap();
        assert_eq!(event["type"]["code"], "rest");
        assert_eq!(codes(&event, "/subtype"), ["read"]);
        assert_eq!(event["action"], "R");
        assert_eq!(event["outcome"], "0");
        assert_eq!(event["recorded"], "1970-01-01T00:00:00.000Z");
        assert_eq!(codes(&event, "/purposeOfEvent/0/coding"), ["TREAT"]);
        let user = &event["agent"][0];
        assert_eq!(user["requestor"], true);
        assert_eq!(user["who"]["identifier"]["value"], "SE2321000016-1234");
        assert_eq!(user["who"]["reference"], "PractitionerRole/role-1");
        assert_eq!(user["policy"][0], "http://127.0.0.1:4000/region");
        assert_eq!(
            event["agent"][1]["who"]["identifier"]["value"],
            "SE2321000016-UNIT"
        );
        assert_eq!(
            event["agent"][2]["who"]["identifier"]["value"],
            "SE2321000016-PROV"
        );
        assert_eq!(event["source"]["type"][0]["code"], "4");
        assert_eq!(event["entity"][0]["what"]["reference"], "Patient/p1");
        assert_eq!(event["entity"][0]["role"]["code"], "1");
        assert_eq!(event["entity"][1]["what"]["reference"], "CarePlan/plan-1");
        assert_eq!(event["entity"][2]["what"]["identifier"]["value"], "req-1");
        assert!(event.get("meta").is_none());
    }

    #[test]
    fn emergency_access_is_flagged_with_its_reason_and_denials_say_why() {
        let mut r = record("p1", OffsetDateTime::UNIX_EPOCH);
        r.purpose = Purpose::Emergency {
            reason: "medvetslös patient 19121212-1212".into(),
        };
        r.outcome = AuditOutcome::Denied {
            reason: "no care relationship".into(),
        };
        let event = audit_event(&r, &id("ae-2"));
        validate(&event).unwrap();
        assert_eq!(codes(&event, "/meta/security"), ["ETREAT"]);
        assert_eq!(codes(&event, "/purposeOfEvent/0/coding"), ["ETREAT"]);
        assert_eq!(event["purposeOfEvent"][0]["text"], "medvetslös patient *");
        assert_eq!(codes(&event, "/agent/0/purposeOfUse/0/coding"), ["ETREAT"]);
        assert_eq!(event["outcome"], "4");
        assert_eq!(event["outcomeDesc"], "no care relationship");
    }

    #[test]
    fn every_agent_and_action_gives_a_valid_event_without_personnummer() {
        let agents = [
            staff(),
            AuditAgent::Citizen {
                reference: Some("Patient/p1".into()),
            },
            AuditAgent::Citizen {
                reference: Some("RelatedPerson/r1".into()),
            },
            AuditAgent::Citizen { reference: None },
            AuditAgent::System {
                client_id: "batch-client".into(),
            },
            AuditAgent::Unauthenticated,
        ];
        let actions = [
            AuditAction::Read,
            AuditAction::VRead,
            AuditAction::Query,
            AuditAction::History,
            AuditAction::Operation,
            AuditAction::Create,
            AuditAction::Update,
            AuditAction::Patch,
            AuditAction::Delete,
        ];
        for agent in agents {
            for action in actions {
                let mut r = record("p1", OffsetDateTime::now_utc());
                r.agent = agent.clone();
                r.action = action;
                r.outcome = AuditOutcome::Failed {
                    reason: "database unavailable".into(),
                };
                r.query = Some(
                    "Patient?identifier=http://electronichealth.se/identifier/personnummer|191212121212&name=Tolvan&_count=5"
                        .into(),
                );
                let event = audit_event(&r, &id("ae-3"));
                validate(&event).unwrap_or_else(|e| panic!("{agent:?} {action:?}: {e:?}"));
                assert_eq!(codes(&event, "/subtype"), [action.interaction()]);
                let text = event.to_string();
                let query = event["entity"][2]["query"].as_str().unwrap();
                let query = String::from_utf8(STANDARD.decode(query).unwrap()).unwrap();
                for secret in ["191212121212", "Tolvan"] {
                    assert!(!text.contains(secret) && !query.contains(secret), "{query}");
                }
                assert_eq!(query, "Patient?identifier=*&name=*&_count=5");
            }
        }
    }

    #[test]
    fn digits_that_look_like_personnummer_are_masked_and_others_kept() {
        assert_eq!(mask_digits("191212121212"), "*");
        assert_eq!(
            mask_digits("pnr 121212-1212, datum 2026-01-31"),
            "pnr *, datum 2026-01-31"
        );
        assert_eq!(mask_digits("19121212+1212 id 42"), "* id 42");
        assert_eq!(
            mask_query("CarePlan?patient.identifier=x|1&date=ge2026-01-01&subject=Patient/p1"),
            "CarePlan?patient.identifier=*&date=ge2026-01-01&subject=Patient%2Fp1"
        );
        // A bulk export's `_typeFilter` is a search too: its person values are masked.
        let masked = mask_query("$export?_typeFilter=Patient%3Fname%3DTolvansson%26gender%3Dmale");
        let inner = url::form_urlencoded::parse(masked.split_once('?').unwrap().1.as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        assert_eq!(inner, "Patient?name=*&gender=male");
    }
}
