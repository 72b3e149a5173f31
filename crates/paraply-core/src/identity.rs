//! Who the caller is in FHIR terms: a citizen's token → their Patient (or the
//! RelatedPersons they are), a staff token → their PractitionerRole at the unit of the login
//! (created on a first login when the issuer speaks for the unit's care provider). Resolved
//! identities are cached briefly; consents and care relationships are not (see
//! [`crate::access`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paraply_auth::Principal;
use paraply_fhir::{HSA_ID, PERSONNUMMER, ResourceId, ResourceType};
use paraply_search::{Condition, Filter, ReferenceTarget, SearchQuery, TokenSystem, Total};
use serde_json::json;

use crate::access::{Access, AccessSettings, StaffSubject, Subject};
use crate::context::RequestContext;
use crate::engine::{Fhir, Outcome};
use crate::error::CoreError;
use crate::request::Interaction;

/// How long a resolved identity (token subject → Patient / PractitionerRole id) is reused.
/// Identities change rarely; consents and care relationships are *not* cached — they are
/// checked in every query, so a revoked consent takes effect at once.
const IDENTITY_TTL: Duration = Duration::from_secs(300);

/// Resolved identities, shared by all requests.
#[derive(Clone, Default)]
pub(crate) struct IdentityCache {
    entries: Arc<Mutex<HashMap<String, (Instant, Subject)>>>,
}

impl IdentityCache {
    fn get(&self, key: &str) -> Option<Subject> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < IDENTITY_TTL)
            .map(|(_, subject)| subject.clone())
    }

    /// Forgets every citizen's resolved identity (keys `c|…`); staff stay cached.
    pub(crate) fn forget_citizens(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|key, _| !key.starts_with("c|"));
        }
    }

    fn put(&self, key: String, subject: Subject) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 100_000 {
                entries.retain(|_, (at, _)| at.elapsed() < IDENTITY_TTL);
            }
            entries.insert(key, (Instant::now(), subject));
        }
    }
}

impl Fhir {
    /// Finds (or, for staff on first login, creates) the caller's resources.
    pub(crate) async fn resolve(
        &self,
        cache: &IdentityCache,
        settings: &AccessSettings,
        context: &RequestContext,
        principal: &Principal,
        query: Option<String>,
    ) -> Result<Access, CoreError> {
        let key = match principal {
            Principal::Citizen {
                personnummer,
                issuer,
                ..
            } => format!("c|{issuer}|{}", personnummer.as_str()),
            Principal::Staff {
                hsa_id,
                unit_hsa_id,
                care_provider_hsa_id,
                issuer,
                ..
            } => format!("s|{issuer}|{hsa_id}|{unit_hsa_id}|{care_provider_hsa_id}"),
            Principal::System { .. } => String::new(),
        };
        let subject = match principal {
            Principal::System { .. } => Subject::System,
            _ => match cache.get(&key) {
                Some(subject) => subject,
                None => {
                    let subject = self.lookup(settings, principal).await?;
                    cache.put(key, subject.clone());
                    subject
                }
            },
        };
        Ok(Access {
            principal: principal.clone(),
            subject,
            purpose: context.purpose.clone(),
            request_id: context.request_id.clone(),
            query,
        })
    }

    async fn lookup(
        &self,
        settings: &AccessSettings,
        principal: &Principal,
    ) -> Result<Subject, CoreError> {
        let store = self.store().as_ref();
        match principal {
            Principal::Citizen { personnummer, .. } => {
                let pnr = personnummer.as_str();
                if let Some(patient) = find_one(store, ResourceType::Patient, PERSONNUMMER, pnr)
                    .await?
                    .into_iter()
                    .next()
                {
                    return Ok(Subject::Patient { patient });
                }
                let related_persons =
                    find_one(store, ResourceType::RelatedPerson, PERSONNUMMER, pnr).await?;
                if related_persons.is_empty() {
                    return Err(CoreError::Forbidden {
                        reason: "no patient or relative record matches the logged-in person".into(),
                    });
                }
                Ok(Subject::Relative { related_persons })
            }
            Principal::Staff {
                hsa_id,
                unit_hsa_id,
                care_provider_hsa_id,
                huvudman,
                ..
            } => {
                let unit = find_one(store, ResourceType::Organization, HSA_ID, unit_hsa_id)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| CoreError::Forbidden {
                        reason: format!("the unit {unit_hsa_id} of the login is not registered"),
                    })?;
                let care_provider = find_one(
                    store,
                    ResourceType::Organization,
                    HSA_ID,
                    care_provider_hsa_id,
                )
                .await?
                .into_iter()
                .next();
                let role = match find_role(store, hsa_id, &unit).await? {
                    Some(role) => role,
                    None => {
                        let speaks_for_provider = match (huvudman, &care_provider) {
                            (Some(huvudman), Some(provider)) => {
                                *huvudman == format!("Organization/{provider}")
                            }
                            _ => false,
                        };
                        if !settings.create_practitioner_role_on_first_login || !speaks_for_provider
                        {
                            return Err(CoreError::Forbidden {
                                reason: format!(
                                    "{hsa_id} has no PractitionerRole at unit {unit_hsa_id}, and the issuer is not trusted to create one"
                                ),
                            });
                        }
                        self.create_role(hsa_id, &unit).await?
                    }
                };
                Ok(Subject::Staff(Box::new(StaffSubject {
                    role,
                    unit,
                    care_provider,
                    care_provider_hsa_id: care_provider_hsa_id.clone(),
                    huvudman: huvudman.clone(),
                })))
            }
            Principal::System { .. } => Ok(Subject::System),
        }
    }

    /// First login of a staff member at a unit: a Practitioner (unless one has the HSA-id) and
    /// a PractitionerRole at the unit, written by the server through the one write path as a
    /// transaction Bundle.
    async fn create_role(&self, hsa_id: &str, unit: &ResourceId) -> Result<ResourceId, CoreError> {
        let practitioner = format!("urn:uuid:{}", ResourceId::generate());
        let bundle = json!({
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": practitioner,
                    "resource": {
                        "resourceType": "Practitioner",
                        "identifier": [{"system": HSA_ID, "value": hsa_id}],
                        "active": true
                    },
                    "request": {
                        "method": "POST",
                        "url": "Practitioner",
                        "ifNoneExist": format!("identifier={HSA_ID}|{hsa_id}")
                    }
                },
                {
                    "resource": {
                        "resourceType": "PractitionerRole",
                        "active": true,
                        "practitioner": {"reference": practitioner},
                        "organization": {"reference": format!("Organization/{unit}")}
                    },
                    "request": {"method": "POST", "url": "PractitionerRole"}
                }
            ]
        });
        let outcome = self.execute(Interaction::Bundle { bundle }, None).await?;
        let Outcome::BundleResponse { entries, .. } = outcome else {
            return Err(CoreError::bad_request(
                "a first login's transaction answered no Bundle",
            ));
        };
        match entries.into_iter().nth(1) {
            Some(Ok(Outcome::Resource { resource, .. })) => {
                tracing::info!(
                    "created a PractitionerRole on a staff member's first login at a unit"
                );
                Ok(resource.id)
            }
            Some(Err(error)) => Err(error),
            _ => Err(CoreError::bad_request(
                "a first login's transaction wrote no PractitionerRole",
            )),
        }
    }
}

fn identifier_query(resource_type: ResourceType, system: &str, value: &str) -> SearchQuery {
    let mut query = SearchQuery::new(resource_type);
    query.filters.push(Filter {
        negated: false,
        any_of: vec![Condition::Token {
            param: "identifier",
            system: TokenSystem::Is(system.to_owned()),
            code: Some(value.to_owned()),
        }],
    });
    query.count = 20;
    query.total = Total::None;
    query
}

async fn find_one(
    store: &dyn paraply_store::Store,
    resource_type: ResourceType,
    system: &str,
    value: &str,
) -> Result<Vec<ResourceId>, CoreError> {
    let page = store
        .search(&identifier_query(resource_type, system, value))
        .await?;
    Ok(page.matches.into_iter().map(|m| m.resource.id).collect())
}

fn reference_filter(param: &'static str, resource_type: ResourceType, id: &ResourceId) -> Filter {
    Filter {
        negated: false,
        any_of: vec![Condition::Reference {
            param,
            target: ReferenceTarget::Local {
                target_type: Some(resource_type),
                id: id.to_string(),
            },
        }],
    }
}

async fn find_role(
    store: &dyn paraply_store::Store,
    hsa_id: &str,
    unit: &ResourceId,
) -> Result<Option<ResourceId>, CoreError> {
    let Some(practitioner) = find_one(store, ResourceType::Practitioner, HSA_ID, hsa_id)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let mut query = SearchQuery::new(ResourceType::PractitionerRole);
    query.filters.push(reference_filter(
        "practitioner",
        ResourceType::Practitioner,
        &practitioner,
    ));
    query.filters.push(reference_filter(
        "organization",
        ResourceType::Organization,
        unit,
    ));
    query.count = 1;
    query.total = Total::None;
    let page = store.search(&query).await?;
    Ok(page.matches.into_iter().next().map(|m| m.resource.id))
}
