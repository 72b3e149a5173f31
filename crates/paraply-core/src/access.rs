//! The access rules (DOMAIN.md §1, I11–I14): who an authenticated caller is in FHIR terms,
//! what their SMART scopes allow, and which data they may see or write.
//!
//! Visibility is decided in one place, storage's [`Restriction`]: searches carry it into
//! SQL (so pages and totals only count what the caller may see), and a read or a write
//! asks the same question with a one-row search (`_id=…` + restriction). There is no second
//! implementation of the rules in Rust that could drift from the SQL.

use paraply_auth::{Context, Permission, Principal, Scopes};
use paraply_fhir::codes::{CARE_PROVIDER_TAG_SYSTEM, NOTE_VISIBILITY_URL};
use paraply_fhir::{ResourceId, ResourceType};
use paraply_search::{
    Condition, Filter, IndexValue, PatientLink, ReferenceTarget, Restriction, SearchQuery,
    StaffScope, TokenSystem, Total, owner_only, param_rows, patient_link,
};
use paraply_store::HistoryScope;
use serde_json::{Map, Value, json};

use crate::audit::{AuditAction, AuditAgent, AuditOutcome, AuditRecord};
use crate::context::{Purpose, RequestContext};
use crate::engine::Reader;
use crate::error::CoreError;
use crate::operations::{Audience, OperationAudit};
use crate::request::{FhirRequest, Interaction};
use crate::stamp::now;

/// Settings of the access rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessSettings {
    /// A staff member logging in at a known unit of the care provider their issuer speaks
    /// for, without a PractitionerRole there yet, gets one (and a Practitioner) created.
    /// `false`: such a login is refused until an administrator registers the role.
    pub create_practitioner_role_on_first_login: bool,
}

impl Default for AccessSettings {
    fn default() -> Self {
        AccessSettings {
            create_practitioner_role_on_first_login: true,
        }
    }
}

/// Who the caller is in FHIR terms, resolved from their token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    Patient {
        patient: ResourceId,
    },
    /// A person who is a RelatedPerson of one or more patients.
    Relative {
        related_persons: Vec<ResourceId>,
    },
    Staff(Box<StaffSubject>),
    /// A system client: its scopes are its rights (`system/*.rs` reads everything).
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StaffSubject {
    pub role: ResourceId,
    pub unit: ResourceId,
    pub care_provider: Option<ResourceId>,
    pub care_provider_hsa_id: String,
    pub huvudman: Option<String>,
}

/// An authenticated caller with their resolved identity: what every rule below needs.
pub(crate) struct Access {
    pub principal: Principal,
    pub subject: Subject,
    pub purpose: Purpose,
    pub request_id: String,
    /// The request's query string (`CarePlan?patient=…`), for the access log of a search.
    pub query: Option<String>,
}

/// How many resources `query` matches, without fetching any.
async fn count(reader: &mut Reader<'_>, mut query: SearchQuery) -> Result<u64, CoreError> {
    query.count = 0;
    query.page = None;
    query.include.clear();
    query.revinclude.clear();
    query.total = Total::Accurate;
    Ok(reader.search(&query).await?.total.unwrap_or_default())
}

/// Which SMART permission an interaction needs on which type.
pub(crate) fn required_permission(interaction: &Interaction) -> Option<(ResourceType, Permission)> {
    Some(match interaction {
        Interaction::Read { resource_type, .. } | Interaction::VRead { resource_type, .. } => {
            (*resource_type, Permission::Read)
        }
        Interaction::Create { resource_type, .. } => (*resource_type, Permission::Create),
        Interaction::Update { resource_type, .. } | Interaction::Patch { resource_type, .. } => {
            (*resource_type, Permission::Update)
        }
        Interaction::ConditionalUpdate { query, .. } => (query.resource_type, Permission::Update),
        Interaction::Delete { resource_type, .. } => (*resource_type, Permission::Delete),
        Interaction::ConditionalDelete { query } => (query.resource_type, Permission::Delete),
        Interaction::Search { query } => (query.resource_type, Permission::Search),
        Interaction::History(params) => match &params.scope {
            paraply_store::HistoryScope::Instance(resource_type, _) => {
                (*resource_type, Permission::Read)
            }
            paraply_store::HistoryScope::Type(resource_type) => {
                (*resource_type, Permission::Search)
            }
            paraply_store::HistoryScope::System => return None,
        },
        Interaction::Operation { operation, call } => {
            let (resource_type, permission) = operation.definition().permission;
            (resource_type.or(call.resource_type)?, permission)
        }
        Interaction::Capabilities
        | Interaction::ReadSearchParameter { .. }
        | Interaction::Bundle { .. } => return None,
    })
}

/// Types only the server writes: the access log and write provenance (I15).
pub(crate) fn server_written(resource_type: ResourceType) -> bool {
    matches!(
        resource_type,
        ResourceType::AuditEvent | ResourceType::Provenance
    )
}

/// What patients and relatives may write through the portal (DOMAIN.md §3, I14).
fn citizen_writable(resource_type: ResourceType) -> bool {
    matches!(
        resource_type,
        ResourceType::AppointmentResponse
            | ResourceType::Goal
            | ResourceType::Communication
            | ResourceType::Consent
    )
}

impl Access {
    fn scopes(&self) -> &Scopes {
        self.principal.scopes()
    }

    /// SMART scopes: a citizen's `patient/` or `user/` scopes, staff's `user/`, a system
    /// client's `system/`.
    pub fn check_scope(
        &self,
        resource_type: ResourceType,
        permission: Permission,
    ) -> Result<(), CoreError> {
        let contexts: &[Context] = match self.principal {
            Principal::Citizen { .. } => &[Context::Patient, Context::User],
            Principal::Staff { .. } => &[Context::User],
            Principal::System { .. } => &[Context::System],
        };
        if contexts
            .iter()
            .any(|c| self.scopes().allows(Some(*c), resource_type, permission))
        {
            Ok(())
        } else {
            Err(CoreError::Forbidden {
                reason: format!(
                    "the token's scopes do not allow {} on {resource_type}",
                    permission_word(permission)
                ),
            })
        }
    }

    /// Scope, server-written types and the citizen write list: checks that need no data.
    pub fn check_interaction(&self, interaction: &Interaction) -> Result<(), CoreError> {
        let Some((resource_type, permission)) = required_permission(interaction) else {
            if let Interaction::History(params) = interaction
                && matches!(params.scope, paraply_store::HistoryScope::System)
                && !matches!(self.subject, Subject::System)
            {
                return Err(CoreError::Forbidden {
                    reason: "system-wide history is for system clients only".into(),
                });
            }
            return Ok(());
        };
        self.check_scope(resource_type, permission)?;
        let writes = matches!(
            permission,
            Permission::Create | Permission::Update | Permission::Delete
        );
        if writes && server_written(resource_type) {
            return Err(CoreError::Forbidden {
                reason: format!("{resource_type} resources are written by the server only"),
            });
        }
        if writes
            && matches!(self.principal, Principal::Citizen { .. })
            && !citizen_writable(resource_type)
        {
            return Err(CoreError::Forbidden {
                reason: format!("patients and relatives cannot write {resource_type} resources"),
            });
        }
        if let Interaction::History(params) = interaction
            && matches!(params.scope, paraply_store::HistoryScope::Type(_))
            && self.restriction().is_some()
        {
            return Err(CoreError::Forbidden {
                reason: "type-wide history is for system clients only; search instead".into(),
            });
        }
        Ok(())
    }

    /// The restriction every query of this caller carries; `None` for system clients.
    pub fn restriction(&self) -> Option<Restriction> {
        match &self.subject {
            Subject::Patient { patient } => Some(Restriction::Patients(vec![patient.clone()])),
            Subject::Relative { related_persons } => {
                Some(Restriction::RelativeOf(related_persons.clone()))
            }
            Subject::Staff(staff) => {
                let unit = format!("Organization/{}", staff.unit);
                let mut organizations: Vec<String> = Vec::new();
                if let Some(provider) = &staff.care_provider {
                    organizations.push(format!("Organization/{provider}"));
                }
                if let Some(huvudman) = &staff.huvudman
                    && !organizations.contains(huvudman)
                {
                    organizations.push(huvudman.clone());
                }
                let mut blocked_if_actor = vec![unit.clone()];
                blocked_if_actor.extend(organizations.iter().cloned());
                Some(Restriction::Staff(Box::new(StaffScope {
                    members: vec![format!("PractitionerRole/{}", staff.role)],
                    units: vec![unit],
                    organizations,
                    care_provider: staff.care_provider_hsa_id.clone(),
                    blocked_if_actor,
                    emergency: matches!(self.purpose, Purpose::Emergency { .. }),
                })))
            }
            Subject::System => None,
        }
    }

    /// Whether the caller may see `resource_type/id` as it stands in `reader`'s view.
    pub async fn visible(
        &self,
        reader: &mut Reader<'_>,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<bool, CoreError> {
        let Some(restriction) = self.restriction() else {
            return Ok(true);
        };
        if patient_link(resource_type) == PatientLink::None && !owner_only(resource_type) {
            return Ok(true);
        }
        reader.visible(resource_type, id, &restriction).await
    }

    /// Refuses unless the caller may see the resource.
    pub async fn require_visible(
        &self,
        reader: &mut Reader<'_>,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<(), CoreError> {
        if self.visible(reader, resource_type, id).await? {
            Ok(())
        } else {
            Err(self.no_access(resource_type))
        }
    }

    /// Whether a spärr hides some of what `query` (this caller's, restricted) would find.
    /// Costs one query when no spärr names the caller's unit or provider at all, three when
    /// one does (the search counted with and without the spärr rule).
    pub async fn blocked_data_exists(
        &self,
        reader: &mut Reader<'_>,
        query: &SearchQuery,
    ) -> Result<bool, CoreError> {
        let Some(Restriction::Staff(scope)) = &query.restriction else {
            return Ok(false);
        };
        if scope.emergency || scope.blocked_if_actor.is_empty() {
            return Ok(false);
        }
        let mut sparrar = SearchQuery::new(ResourceType::Consent);
        let token = |param: &'static str, code: &str| Filter {
            negated: false,
            any_of: vec![Condition::Token {
                param,
                system: TokenSystem::Any,
                code: Some(code.to_owned()),
            }],
        };
        sparrar.filters.push(token("status", "active"));
        sparrar.filters.push(token("provision-type", "deny"));
        sparrar.filters.push(Filter {
            negated: false,
            any_of: scope
                .blocked_if_actor
                .iter()
                .filter_map(|actor| actor.split_once('/'))
                .filter_map(|(type_name, id)| {
                    Some(Condition::Reference {
                        param: "actor",
                        target: ReferenceTarget::Local {
                            target_type: Some(type_name.parse().ok()?),
                            id: id.to_owned(),
                        },
                    })
                })
                .collect(),
        });
        if count(reader, sparrar).await? == 0 {
            return Ok(false);
        }
        let mut unblocked_scope = scope.as_ref().clone();
        unblocked_scope.blocked_if_actor.clear();
        let mut unblocked = query.clone();
        unblocked.restriction = Some(Restriction::Staff(Box::new(unblocked_scope)));
        Ok(count(reader, unblocked).await? > count(reader, query.clone()).await?)
    }

    pub fn no_access(&self, resource_type: ResourceType) -> CoreError {
        CoreError::Forbidden {
            reason: match self.subject {
                Subject::Staff(_) => format!(
                    "no access to this {resource_type}: it needs a care relationship with the patient (or consent across care providers), and no spärr"
                ),
                Subject::Relative { .. } => format!(
                    "no access to this {resource_type}: it needs an active consent from the patient"
                ),
                _ => format!("no access to this {resource_type}"),
            },
        }
    }

    /// Before a staff write: the owner tag. A new resource is owned by the writer's care
    /// provider; an update keeps the owner of the version it replaces.
    pub fn stamp_owner(&self, body: &mut Value, current_owner: Option<Option<String>>) {
        let Subject::Staff(staff) = &self.subject else {
            return;
        };
        let owner = match current_owner {
            Some(existing) => existing,
            None => Some(staff.care_provider_hsa_id.clone()),
        };
        set_owner(body, owner);
    }

    /// The AuditEvent of one access by this caller.
    pub fn record(
        &self,
        summary: &AccessSummary,
        error: Option<&CoreError>,
        patients: Vec<ResourceId>,
    ) -> AuditRecord {
        AuditRecord {
            recorded: now(),
            action: summary.action,
            agent: agent_of(&self.principal, Some(&self.subject)),
            issuer: self.principal.issuer().to_owned(),
            purpose: self.purpose.clone(),
            outcome: audit_outcome(error),
            patients,
            entity: summary.entity.clone(),
            query: if summary.search {
                self.query.clone()
            } else {
                None
            },
            request_id: self.request_id.clone(),
        }
    }
}

fn audit_outcome(error: Option<&CoreError>) -> AuditOutcome {
    match error {
        None => AuditOutcome::Success,
        Some(CoreError::Forbidden { reason }) => AuditOutcome::Denied {
            reason: reason.clone(),
        },
        Some(other) => AuditOutcome::Failed {
            reason: other.to_string(),
        },
    }
}

/// The AuditEvent of a caller whose token is valid but whom no record matches.
pub(crate) fn unresolved_record(
    context: &RequestContext,
    principal: &Principal,
    interaction: &Interaction,
    error: &CoreError,
) -> AuditRecord {
    let summary = AccessSummary::of(interaction);
    AuditRecord {
        recorded: now(),
        action: summary
            .as_ref()
            .map_or(AuditAction::Operation, |s| s.action),
        agent: agent_of(principal, None),
        issuer: principal.issuer().to_owned(),
        purpose: context.purpose.clone(),
        outcome: audit_outcome(Some(error)),
        patients: summary.map(|s| s.patients).unwrap_or_default(),
        entity: None,
        query: None,
        request_id: context.request_id.clone(),
    }
}

/// The AuditEvent of a request refused before anyone was identified.
pub(crate) fn refused_login_record(request_id: &str, reason: &str) -> AuditRecord {
    AuditRecord {
        recorded: now(),
        action: AuditAction::Operation,
        agent: AuditAgent::Unauthenticated,
        issuer: String::new(),
        purpose: Purpose::Treatment,
        outcome: AuditOutcome::Denied {
            reason: reason.to_owned(),
        },
        patients: Vec::new(),
        entity: None,
        query: None,
        request_id: request_id.to_owned(),
    }
}

/// The agent of the access log.
fn agent_of(principal: &Principal, subject: Option<&Subject>) -> AuditAgent {
    {
        match (principal, subject) {
            (
                Principal::Staff {
                    hsa_id,
                    unit_hsa_id,
                    care_provider_hsa_id,
                    ..
                },
                subject,
            ) => AuditAgent::Staff {
                hsa_id: hsa_id.clone(),
                unit_hsa_id: unit_hsa_id.clone(),
                care_provider_hsa_id: care_provider_hsa_id.clone(),
                practitioner_role: match subject {
                    Some(Subject::Staff(staff)) => Some(staff.role.clone()),
                    _ => None,
                },
            },
            (Principal::Citizen { .. }, Some(Subject::Patient { patient })) => {
                AuditAgent::Citizen {
                    reference: Some(format!("Patient/{patient}")),
                }
            }
            (Principal::Citizen { .. }, Some(Subject::Relative { related_persons })) => {
                AuditAgent::Citizen {
                    reference: related_persons
                        .first()
                        .map(|id| format!("RelatedPerson/{id}")),
                }
            }
            (Principal::Citizen { .. }, _) => AuditAgent::Citizen { reference: None },
            (Principal::System { client_id, .. }, _) => AuditAgent::System {
                client_id: client_id.clone(),
            },
        }
    }
}

impl Access {
    /// Whether output must drop internal notes (I14).
    pub fn is_citizen(&self) -> bool {
        matches!(self.principal, Principal::Citizen { .. })
    }

    /// Whom an operation's answer is for.
    pub fn audience(&self) -> Audience {
        match self.subject {
            Subject::Patient { .. } => Audience::Patient,
            Subject::Relative { .. } => Audience::Relative,
            Subject::Staff(_) => Audience::Staff,
            Subject::System => Audience::System,
        }
    }
}

/// What the access log needs to know of an interaction before it runs.
#[derive(Debug, Clone)]
pub(crate) struct AccessSummary {
    pub action: AuditAction,
    pub entity: Option<(ResourceType, ResourceId)>,
    /// Patients known from the request itself: a written body's, `$access-log`'s.
    pub patients: Vec<ResourceId>,
    /// Whether the request's query string belongs in the log (a search).
    pub search: bool,
}

impl AccessSummary {
    /// `None` for interactions that touch no patient data (capabilities, directories).
    pub fn of(interaction: &Interaction) -> Option<AccessSummary> {
        let patient_data = |t: ResourceType| patient_link(t) != PatientLink::None;
        let summary = |action, entity: Option<(ResourceType, ResourceId)>| AccessSummary {
            action,
            entity,
            patients: Vec::new(),
            search: false,
        };
        // A Patient not yet written has no id to name; other bodies name their patient.
        let with_body =
            |action, resource_type: ResourceType, id: Option<&ResourceId>, body: &Value| {
                AccessSummary {
                    action,
                    entity: id.map(|id| (resource_type, id.clone())),
                    patients: id
                        .map(|id| patients_of_value(resource_type, id, body))
                        .unwrap_or_else(|| patients_of_body(resource_type, body)),
                    search: false,
                }
            };
        Some(match interaction {
            Interaction::Read { resource_type, id } if patient_data(*resource_type) => {
                summary(AuditAction::Read, Some((*resource_type, id.clone())))
            }
            Interaction::VRead {
                resource_type, id, ..
            } if patient_data(*resource_type) => {
                summary(AuditAction::VRead, Some((*resource_type, id.clone())))
            }
            Interaction::Search { query } if patient_data(query.resource_type) => AccessSummary {
                search: true,
                ..summary(AuditAction::Query, None)
            },
            Interaction::History(params) => match &params.scope {
                HistoryScope::Instance(resource_type, id) if patient_data(*resource_type) => {
                    summary(AuditAction::History, Some((*resource_type, id.clone())))
                }
                HistoryScope::Type(resource_type) if !patient_data(*resource_type) => return None,
                _ => summary(AuditAction::History, None),
            },
            Interaction::Operation { operation, call }
                if operation.definition().audit == OperationAudit::PatientData =>
            {
                match (call.resource_type, &call.id) {
                    (Some(ResourceType::Patient), Some(patient)) => AccessSummary {
                        patients: vec![patient.clone()],
                        ..summary(
                            AuditAction::Operation,
                            Some((ResourceType::Patient, patient.clone())),
                        )
                    },
                    (Some(resource_type), Some(id)) => {
                        summary(AuditAction::Operation, Some((resource_type, id.clone())))
                    }
                    _ => summary(AuditAction::Operation, None),
                }
            }
            Interaction::Create {
                resource_type,
                body,
                ..
            } if patient_data(*resource_type) => {
                with_body(AuditAction::Create, *resource_type, None, body)
            }
            Interaction::Update {
                resource_type,
                id,
                body,
                ..
            } if patient_data(*resource_type) => {
                with_body(AuditAction::Update, *resource_type, Some(id), body)
            }
            Interaction::ConditionalUpdate { query, body } if patient_data(query.resource_type) => {
                with_body(AuditAction::Update, query.resource_type, None, body)
            }
            Interaction::Patch {
                resource_type, id, ..
            } if patient_data(*resource_type) => {
                summary(AuditAction::Patch, Some((*resource_type, id.clone())))
            }
            Interaction::Delete {
                resource_type, id, ..
            } if patient_data(*resource_type) => {
                summary(AuditAction::Delete, Some((*resource_type, id.clone())))
            }
            Interaction::ConditionalDelete { query } if patient_data(query.resource_type) => {
                summary(AuditAction::Delete, None)
            }
            _ => return None,
        })
    }

    /// For a refused access: whose data the target resource is (nothing is shown).
    pub async fn patients_of_target(&self, store: &dyn paraply_store::Store) -> Vec<ResourceId> {
        if !self.patients.is_empty() {
            return self.patients.clone();
        }
        let Some((resource_type, id)) = &self.entity else {
            return Vec::new();
        };
        match store.read(*resource_type, id).await {
            Ok(Some(resource)) => resource
                .body
                .as_deref()
                .map(|body| patients_of(*resource_type, id, body))
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// `Type?query` of a request, as the access log keeps it.
pub(crate) fn query_text(request: &FhirRequest) -> Option<String> {
    if request.query.is_empty() {
        return None;
    }
    let encoded: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(request.query.iter())
        .finish();
    Some(format!("{}?{encoded}", request.path))
}

fn permission_word(permission: Permission) -> &'static str {
    match permission {
        Permission::Create => "create",
        Permission::Read => "read",
        Permission::Update => "update",
        Permission::Delete => "delete",
        Permission::Search => "search",
    }
}

/// The owner code of a stored body's care-provider tag.
pub(crate) fn owner_of(body: &str) -> Option<String> {
    if !body.contains(CARE_PROVIDER_TAG_SYSTEM) {
        return None;
    }
    let value: Value = serde_json::from_str(body).ok()?;
    value
        .pointer("/meta/tag")?
        .as_array()?
        .iter()
        .find(|tag| tag.get("system").and_then(Value::as_str) == Some(CARE_PROVIDER_TAG_SYSTEM))
        .and_then(|tag| tag.get("code").and_then(Value::as_str))
        .map(str::to_owned)
}

fn set_owner(body: &mut Value, owner: Option<String>) {
    let Some(map) = body.as_object_mut() else {
        return;
    };
    let meta = map
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let mut tags: Vec<Value> = meta
        .get("tag")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter(|t| {
                    t.get("system").and_then(Value::as_str) != Some(CARE_PROVIDER_TAG_SYSTEM)
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if let Some(code) = owner {
        tags.push(json!({"system": CARE_PROVIDER_TAG_SYSTEM, "code": code}));
    }
    if tags.is_empty() {
        meta.remove("tag");
    } else {
        meta.insert("tag".into(), Value::Array(tags));
    }
    if meta.is_empty() {
        map.remove("meta");
    }
}

/// The patients a resource body belongs to (by its patient link), for the access log.
pub(crate) fn patients_of(
    resource_type: ResourceType,
    id: &ResourceId,
    body: &str,
) -> Vec<ResourceId> {
    if patient_link(resource_type) == PatientLink::None {
        return Vec::new();
    }
    match serde_json::from_str::<Value>(body) {
        Ok(value) => patients_of_value(resource_type, id, &value),
        Err(_) => Vec::new(),
    }
}

fn patients_of_value(
    resource_type: ResourceType,
    id: &ResourceId,
    value: &Value,
) -> Vec<ResourceId> {
    match patient_link(resource_type) {
        PatientLink::Itself => vec![id.clone()],
        _ => patients_of_body(resource_type, value),
    }
}

/// The patients a body names through its patient link (none for a Patient itself).
fn patients_of_body(resource_type: ResourceType, value: &Value) -> Vec<ResourceId> {
    match patient_link(resource_type) {
        PatientLink::Itself | PatientLink::None => Vec::new(),
        PatientLink::Param(param) => param_rows(resource_type, &[param], value)
            .into_iter()
            .filter_map(|row| match row.value {
                IndexValue::Reference {
                    target_type: Some(ResourceType::Patient),
                    target_id: Some(id),
                    ..
                } => id.parse().ok(),
                _ => None,
            })
            .collect(),
    }
}

/// Drops `channel.header` from a stored Subscription body: it holds the credentials the
/// server sends to the subscriber's endpoint, which no reader needs to see.
pub(crate) fn without_channel_headers(body: String) -> String {
    if !body.contains("\"header\"") {
        return body;
    }
    let Ok(mut value) = serde_json::from_str::<Value>(&body) else {
        return body;
    };
    strip_channel_headers(&mut value);
    serde_json::to_string(&value).unwrap_or(body)
}

/// Drops `channel.header` from every Subscription in `value`, at any depth (a Bundle's
/// entries, contained resources).
pub(crate) fn strip_channel_headers(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("resourceType").and_then(Value::as_str) == Some("Subscription")
                && let Some(Value::Object(channel)) = map.get_mut("channel")
            {
                channel.remove("header");
            }
            map.values_mut().for_each(strip_channel_headers);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_channel_headers),
        _ => {}
    }
}

/// Drops internal notes (I14) from a body shown to a patient or relative.
pub(crate) fn without_internal_notes(body: String) -> String {
    if !body.contains(NOTE_VISIBILITY_URL) {
        return body;
    }
    let Ok(mut value) = serde_json::from_str::<Value>(&body) else {
        return body;
    };
    strip_notes(&mut value);
    serde_json::to_string(&value).unwrap_or(body)
}

fn strip_notes(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(notes)) = map.get_mut("note") {
                notes.retain(|note| !is_internal(note));
                if notes.is_empty() {
                    map.remove("note");
                }
            }
            map.values_mut().for_each(strip_notes);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_notes),
        _ => {}
    }
}

fn is_internal(note: &Value) -> bool {
    note.get("extension")
        .and_then(Value::as_array)
        .is_some_and(|extensions| {
            extensions.iter().any(|e| {
                e.get("url").and_then(Value::as_str) == Some(NOTE_VISIBILITY_URL)
                    && e.get("valueCode").and_then(Value::as_str) == Some("internal")
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_notes_never_reach_citizens() {
        let body = json!({
            "resourceType": "CareTeam",
            "note": [
                {"text": "Ring gärna på förmiddagen"},
                {"text": "Intern: svår att nå",
                 "extension": [{"url": NOTE_VISIBILITY_URL, "valueCode": "internal"}]}
            ]
        })
        .to_string();
        let shown = without_internal_notes(body);
        assert!(shown.contains("förmiddagen"));
        assert!(!shown.contains("svår att nå"));
    }

    #[test]
    fn subscription_channel_headers_are_never_shown() {
        let body = json!({
            "resourceType": "Subscription",
            "status": "active",
            "channel": {"type": "rest-hook", "endpoint": "https://x.example/hook",
                        "header": ["Authorization: Bearer hemligt"]},
            "contained": [{"resourceType": "Subscription",
                           "channel": {"header": ["X-Key: också hemligt"]}}]
        })
        .to_string();
        let shown = without_channel_headers(body);
        assert!(shown.contains("https://x.example/hook"));
        assert!(!shown.contains("hemligt"), "{shown}");
    }

    #[test]
    fn owner_tag_is_set_replaced_and_read_back() {
        let mut body = json!({"resourceType": "CarePlan", "meta": {"tag": [
            {"system": CARE_PROVIDER_TAG_SYSTEM, "code": "forged"},
            {"system": "x", "code": "keep"}
        ]}});
        set_owner(&mut body, Some("SE2321000016-0001".into()));
        let text = body.to_string();
        assert_eq!(owner_of(&text).as_deref(), Some("SE2321000016-0001"));
        assert!(text.contains("keep") && !text.contains("forged"));
        set_owner(&mut body, None);
        assert_eq!(owner_of(&body.to_string()), None);
    }

    #[test]
    fn a_create_names_the_patient_of_its_body_and_a_new_patient_none() {
        let create = |body: Value| Interaction::Create {
            resource_type: body["resourceType"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| unreachable!()),
            body,
            if_none_exist: None,
        };
        let goal = create(json!({"resourceType": "Goal", "subject": {"reference": "Patient/p1"}}));
        let named = AccessSummary::of(&goal).map(|s| s.patients);
        assert_eq!(named.as_deref().map(<[_]>::len), Some(1));
        let patient = create(json!({"resourceType": "Patient"}));
        let named = AccessSummary::of(&patient).map(|s| s.patients);
        assert_eq!(named, Some(Vec::new()));
    }

    #[test]
    fn patients_of_follows_the_patient_link() {
        let id: ResourceId = "c1".parse().unwrap_or_else(|_| unreachable!());
        let body =
            json!({"resourceType": "CareTeam", "subject": {"reference": "Patient/p1"}}).to_string();
        let patients = patients_of(ResourceType::CareTeam, &id, &body);
        assert_eq!(patients.len(), 1);
        assert_eq!(patients[0].as_str(), "p1");
    }
}
