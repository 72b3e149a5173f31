//! The access rules (DOMAIN.md §1, I11–I14): who an authenticated caller is in FHIR terms,
//! what their SMART scopes allow, and which data they may see or write.
//!
//! Visibility is decided in one place, storage's [`Restriction`]: searches carry it into
//! SQL (so pages and totals only count what the caller may see), and a read or a write
//! asks the same question with a one-row search (`_id=…` + restriction). There is no second
//! implementation of the rules in Rust that could drift from the SQL.

use paraply_auth::{Context, Permission, Principal, Scopes};
use paraply_fhir::{ResourceId, ResourceType};
use paraply_search::{
    Condition, Filter, PatientLink, ReferenceTarget, Relatives, Restriction, SearchQuery,
    StaffScope, TokenSystem, Total, owner_only, patient_link,
};
use serde_json::Value;
use time::OffsetDateTime;

use crate::context::Purpose;
use crate::engine::Reader;
use crate::error::CoreError;
use crate::operations::Audience;
use crate::request::Interaction;
use crate::tags::set_owner;

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
        | Interaction::ReadConformance { .. }
        | Interaction::ListConformance { .. }
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

/// What patients and relatives may write through the portal (DOMAIN.md §3, I14). Only the
/// patient records their relatives (RelatedPerson): a relative cannot add others.
fn citizen_writable(subject: &Subject, resource_type: ResourceType) -> bool {
    match resource_type {
        ResourceType::AppointmentResponse
        | ResourceType::Goal
        | ResourceType::Communication
        | ResourceType::Consent => true,
        ResourceType::RelatedPerson => matches!(subject, Subject::Patient { .. }),
        _ => false,
    }
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
            && !citizen_writable(&self.subject, resource_type)
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
            Subject::Relative { related_persons } => Some(Restriction::RelativeOf(
                // The UTC day: a guardian's access ends at 01:00 (02:00 in summer) Swedish
                // time on the child's 13th birthday.
                Relatives::on(related_persons.clone(), OffsetDateTime::now_utc().date()),
            )),
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

fn permission_word(permission: Permission) -> &'static str {
    match permission {
        Permission::Create => "create",
        Permission::Read => "read",
        Permission::Update => "update",
        Permission::Delete => "delete",
        Permission::Search => "search",
    }
}
