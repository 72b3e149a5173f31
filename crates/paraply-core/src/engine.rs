//! Executes interactions against the store.

use std::sync::Arc;

use paraply_fhir::{ResourceId, ResourceType, VersionId, validate};
use paraply_search::{SearchQuery, Summary, Total, index_rows};
use paraply_store::{
    HistoryPage, HistoryQuery, NewVersion, SearchPage, Store, StoreTx, StoredResource,
};
use serde_json::Value;

use crate::context::{Caller, RequestContext};
use crate::error::CoreError;
use crate::request::{FhirRequest, HistoryParams, Interaction};
use crate::stamp::{now, stamp};

/// How often a write without `If-Match` is retried when another writer took the version
/// it wanted (the other writer's version is kept; this one is written on top of it).
const WRITE_ATTEMPTS: usize = 5;

/// What an interaction produced.
#[derive(Debug)]
pub enum Outcome {
    Capabilities(Value),
    /// A resource version: read, vread, or the result of a write.
    Resource {
        /// `true` when the write created the resource (201), `false` otherwise (200).
        created: bool,
        resource: StoredResource,
    },
    /// A delete (or a conditional delete that matched nothing).
    Deleted,
    Searchset {
        query: SearchQuery,
        page: SearchPage,
    },
    History {
        params: HistoryParams,
        page: HistoryPage,
    },
    /// The answers to a batch (each entry on its own) or a transaction (all succeeded).
    BundleResponse {
        transaction: bool,
        entries: Vec<Result<Outcome, CoreError>>,
    },
}

/// The FHIR engine, shared by all requests.
#[derive(Clone)]
pub struct Fhir {
    store: Arc<dyn Store>,
}

/// Where reads of one interaction go: straight to the store, or into an open transaction
/// (which must see its own writes).
pub(crate) enum Reader<'a> {
    Store(&'a dyn Store),
    Tx(&'a mut dyn StoreTx),
}

impl Reader<'_> {
    pub(crate) async fn read(
        &mut self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<StoredResource>, CoreError> {
        Ok(match self {
            Reader::Store(store) => store.read(resource_type, id).await?,
            Reader::Tx(tx) => tx.read(resource_type, id).await?,
        })
    }

    pub(crate) async fn search(&mut self, query: &SearchQuery) -> Result<SearchPage, CoreError> {
        Ok(match self {
            Reader::Store(store) => store.search(query).await?,
            Reader::Tx(tx) => tx.search(query).await?,
        })
    }
}

impl Fhir {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Fhir { store }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Parses and executes one request as the server itself (no access rules, no log):
    /// demo data and start-up tasks.
    pub async fn handle(&self, request: FhirRequest) -> Result<Outcome, CoreError> {
        let interaction = Interaction::parse(request)?;
        self.execute(interaction).await
    }

    /// Parses and executes one request on behalf of `context`'s caller.
    pub async fn handle_as(
        &self,
        context: &RequestContext,
        request: FhirRequest,
    ) -> Result<Outcome, CoreError> {
        match &context.caller {
            Caller::Unrestricted => self.handle(request).await,
            Caller::Authenticated(_) => self.handle(request).await,
        }
    }

    pub async fn execute(&self, interaction: Interaction) -> Result<Outcome, CoreError> {
        match interaction {
            Interaction::Bundle { bundle } => self.bundle(bundle).await,
            other if is_write(&other) => self.write(other).await,
            read => {
                self.read(&mut Reader::Store(self.store.as_ref()), read)
                    .await
            }
        }
    }

    /// Runs a write in its own transaction, retrying when a concurrent writer won the
    /// version and the client did not pin one with `If-Match`.
    async fn write(&self, interaction: Interaction) -> Result<Outcome, CoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = self.store.begin().await?;
            match write_in(tx.as_mut(), interaction.clone(), None).await {
                Ok(outcome) => {
                    tx.commit().await?;
                    return Ok(outcome);
                }
                Err(CoreError::Conflict { resource_type, id }) => {
                    if let Some(expected) = pinned_version(&interaction) {
                        // The version the client pinned stopped being current between our
                        // read and our write: the same answer as a stale If-Match.
                        return Err(CoreError::PreconditionFailed {
                            resource_type,
                            id,
                            expected,
                            current: "a newer version, written concurrently".into(),
                        });
                    }
                    if attempt >= WRITE_ATTEMPTS {
                        return Err(CoreError::Conflict { resource_type, id });
                    }
                    tracing::debug!(attempt, "concurrent write; retrying");
                }
                Err(error) => return Err(error),
            }
        }
    }

    pub(crate) async fn read(
        &self,
        reader: &mut Reader<'_>,
        interaction: Interaction,
    ) -> Result<Outcome, CoreError> {
        match interaction {
            Interaction::Capabilities => Ok(Outcome::Capabilities(
                crate::capabilities::capability_statement(),
            )),
            Interaction::ReadSearchParameter { id } => crate::capabilities::search_parameter(&id)
                .map(Outcome::Capabilities)
                .ok_or(CoreError::UnknownRoute(format!(
                    "SearchParameter/{id} is not one of Paraply's own definitions"
                ))),
            Interaction::Read { resource_type, id } => {
                let resource =
                    reader
                        .read(resource_type, &id)
                        .await?
                        .ok_or(CoreError::NotFound {
                            resource_type,
                            id: id.clone(),
                        })?;
                if resource.is_deleted() {
                    return Err(CoreError::Gone {
                        resource_type,
                        id,
                        version_id: resource.version_id,
                    });
                }
                Ok(Outcome::Resource {
                    created: false,
                    resource,
                })
            }
            Interaction::VRead {
                resource_type,
                id,
                version_id,
            } => {
                let resource = self
                    .store
                    .vread(resource_type, &id, version_id)
                    .await?
                    .ok_or(CoreError::VersionNotFound {
                        resource_type,
                        id: id.clone(),
                        version_id,
                    })?;
                if resource.is_deleted() {
                    return Err(CoreError::Gone {
                        resource_type,
                        id,
                        version_id,
                    });
                }
                Ok(Outcome::Resource {
                    created: false,
                    resource,
                })
            }
            Interaction::Search { mut query } => {
                if query.summary == Summary::Count {
                    query.count = 0;
                    query.total = Total::Accurate;
                }
                let page = reader.search(&query).await?;
                Ok(Outcome::Searchset { query, page })
            }
            Interaction::History(params) => {
                let page = self
                    .store
                    .history(&HistoryQuery {
                        scope: params.scope.clone(),
                        since: params.since,
                        count: params.count,
                        after: params.after,
                    })
                    .await?;
                Ok(Outcome::History { params, page })
            }
            other => Err(CoreError::bad_request(format!(
                "{} cannot be run as a read",
                interaction_name(&other)
            ))),
        }
    }
}

pub(crate) fn is_write(interaction: &Interaction) -> bool {
    matches!(
        interaction,
        Interaction::Create { .. }
            | Interaction::Update { .. }
            | Interaction::ConditionalUpdate { .. }
            | Interaction::Patch { .. }
            | Interaction::Delete { .. }
            | Interaction::ConditionalDelete { .. }
    )
}

/// The version an `If-Match` pinned, if any.
fn pinned_version(interaction: &Interaction) -> Option<VersionId> {
    match interaction {
        Interaction::Update { if_match, .. }
        | Interaction::Patch { if_match, .. }
        | Interaction::Delete { if_match, .. } => *if_match,
        _ => None,
    }
}

pub(crate) fn interaction_name(interaction: &Interaction) -> &'static str {
    match interaction {
        Interaction::Capabilities => "capabilities",
        Interaction::ReadSearchParameter { .. } => "read",
        Interaction::Read { .. } => "read",
        Interaction::VRead { .. } => "vread",
        Interaction::Create { .. } => "create",
        Interaction::Update { .. } => "update",
        Interaction::ConditionalUpdate { .. } => "conditional update",
        Interaction::Patch { .. } => "patch",
        Interaction::Delete { .. } => "delete",
        Interaction::ConditionalDelete { .. } => "conditional delete",
        Interaction::Search { .. } => "search",
        Interaction::History(_) => "history",
        Interaction::AccessLog { .. } => "$access-log",
        Interaction::Bundle { .. } => "batch/transaction",
    }
}

/// Executes one write inside `tx`. `assigned_id` is the id a transaction reserved for a
/// `POST` entry (so references to its `urn:uuid` resolve before it is written).
pub(crate) async fn write_in(
    tx: &mut dyn StoreTx,
    interaction: Interaction,
    assigned_id: Option<ResourceId>,
) -> Result<Outcome, CoreError> {
    match interaction {
        Interaction::Create {
            resource_type,
            body,
            if_none_exist,
        } => {
            if let Some(query) = if_none_exist {
                let matches = tx.search(&query).await?;
                match matches.total.unwrap_or_default() {
                    0 => {}
                    1 => {
                        if let Some(existing) = matches.matches.into_iter().next() {
                            return Ok(Outcome::Resource {
                                created: false,
                                resource: existing.resource,
                            });
                        }
                    }
                    count => {
                        return Err(CoreError::MultipleMatches {
                            resource_type,
                            count,
                        });
                    }
                }
            }
            let id = assigned_id.unwrap_or_else(ResourceId::generate);
            put_version(tx, resource_type, id, body, None, WriteKind::Create).await
        }
        Interaction::Update {
            resource_type,
            id,
            body,
            if_match,
        } => {
            match body.get("id").and_then(Value::as_str) {
                Some(body_id) if body_id == id.as_str() => {}
                other => {
                    return Err(CoreError::IdMismatch {
                        url: id.to_string(),
                        body: other.unwrap_or("(none)").to_owned(),
                    });
                }
            }
            put_version(tx, resource_type, id, body, if_match, WriteKind::Update).await
        }
        Interaction::ConditionalUpdate { query, body } => {
            let resource_type = query.resource_type;
            let matches = tx.search(&query).await?;
            let body_id = body.get("id").and_then(Value::as_str).map(str::to_owned);
            let first = matches.matches.first().map(|m| &m.resource);
            let id = match (matches.total.unwrap_or_default(), first) {
                (0, _) => match body_id {
                    Some(id) => id
                        .parse::<ResourceId>()
                        .map_err(|e| CoreError::BadRequest {
                            message: e.to_string(),
                            expression: Some(format!("{resource_type}.id")),
                        })?,
                    None => assigned_id.unwrap_or_else(ResourceId::generate),
                },
                (1, Some(found)) => {
                    if let Some(body_id) = body_id
                        && body_id != found.id.as_str()
                    {
                        return Err(CoreError::IdMismatch {
                            url: found.id.to_string(),
                            body: body_id,
                        });
                    }
                    found.id.clone()
                }
                (count, _) => {
                    return Err(CoreError::MultipleMatches {
                        resource_type,
                        count,
                    });
                }
            };
            put_version(tx, resource_type, id, body, None, WriteKind::Update).await
        }
        Interaction::Patch {
            resource_type,
            id,
            patch,
            if_match,
        } => {
            let current = current_or_error(tx, resource_type, &id).await?;
            check_if_match(resource_type, &id, if_match, Some(&current))?;
            let operations: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| CoreError::bad_request(format!("not a JSON Patch document: {e}")))?;
            let mut body: Value = serde_json::from_str(current.body.as_deref().unwrap_or("{}"))
                .map_err(|e| CoreError::Store(paraply_store::StoreError::Corrupt(e.to_string())))?;
            json_patch::patch(&mut body, &operations)
                .map_err(|e| CoreError::Patch(e.to_string()))?;
            if body.get("id").and_then(Value::as_str) != Some(id.as_str())
                || body.get("resourceType").and_then(Value::as_str) != Some(resource_type.as_str())
            {
                return Err(CoreError::Patch(
                    "a patch must not change 'id' or 'resourceType'".into(),
                ));
            }
            put_version(
                tx,
                resource_type,
                id,
                body,
                Some(current.version_id),
                WriteKind::Update,
            )
            .await
        }
        Interaction::Delete {
            resource_type,
            id,
            if_match,
        } => delete(tx, resource_type, id, if_match).await,
        Interaction::ConditionalDelete { query } => {
            let matches = tx.search(&query).await?;
            let first = matches.matches.into_iter().next().map(|m| m.resource);
            match (matches.total.unwrap_or_default(), first) {
                (0, _) => Ok(Outcome::Deleted),
                (1, Some(found)) => delete(tx, found.resource_type, found.id, None).await,
                (count, _) => Err(CoreError::MultipleMatches {
                    resource_type: query.resource_type,
                    count,
                }),
            }
        }
        other => Err(CoreError::bad_request(format!(
            "{} is not a write",
            interaction_name(&other)
        ))),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WriteKind {
    Create,
    Update,
}

async fn current_or_error(
    tx: &mut dyn StoreTx,
    resource_type: ResourceType,
    id: &ResourceId,
) -> Result<StoredResource, CoreError> {
    let current = tx
        .read(resource_type, id)
        .await?
        .ok_or(CoreError::NotFound {
            resource_type,
            id: id.clone(),
        })?;
    if current.is_deleted() {
        return Err(CoreError::Gone {
            resource_type,
            id: id.clone(),
            version_id: current.version_id,
        });
    }
    Ok(current)
}

fn check_if_match(
    resource_type: ResourceType,
    id: &ResourceId,
    if_match: Option<VersionId>,
    current: Option<&StoredResource>,
) -> Result<(), CoreError> {
    let Some(expected) = if_match else {
        return Ok(());
    };
    match current {
        Some(current) if current.version_id == expected && !current.is_deleted() => Ok(()),
        other => Err(CoreError::PreconditionFailed {
            resource_type,
            id: id.clone(),
            expected,
            current: match other {
                None => "none (the resource does not exist)".into(),
                Some(c) if c.is_deleted() => format!("{} (deleted)", c.version_id),
                Some(c) => c.version_id.to_string(),
            },
        }),
    }
}

/// Validates, stamps and writes the next version of a resource.
async fn put_version(
    tx: &mut dyn StoreTx,
    resource_type: ResourceType,
    id: ResourceId,
    body: Value,
    if_match: Option<VersionId>,
    kind: WriteKind,
) -> Result<Outcome, CoreError> {
    let Value::Object(map) = body else {
        return Err(CoreError::bad_request("the body must be a JSON object"));
    };
    match map.get("resourceType").and_then(Value::as_str) {
        Some(name) if name == resource_type.as_str() => {}
        other => {
            return Err(CoreError::TypeMismatch {
                url: resource_type,
                body: other.unwrap_or("(no resourceType)").to_owned(),
            });
        }
    }
    let current = match kind {
        WriteKind::Create => None,
        WriteKind::Update => tx.read(resource_type, &id).await?,
    };
    check_if_match(resource_type, &id, if_match, current.as_ref())?;
    let version_id = current
        .as_ref()
        .map_or(VersionId::FIRST, |c| c.version_id.next());
    let created = current.as_ref().is_none_or(StoredResource::is_deleted);
    let last_updated = now();
    let stamped = stamp(map, &id, version_id, last_updated);
    validate(&stamped).map_err(CoreError::Invalid)?;
    let index = index_rows(resource_type, &stamped);
    let text = serde_json::to_string(&stamped)
        .map_err(|e| CoreError::bad_request(format!("unserializable body: {e}")))?;
    tx.write(NewVersion {
        resource_type,
        id: id.clone(),
        version_id,
        last_updated,
        body: Some(text.clone()),
        index,
    })
    .await?;
    Ok(Outcome::Resource {
        created,
        resource: StoredResource {
            resource_type,
            id,
            version_id,
            last_updated,
            body: Some(text),
        },
    })
}

async fn delete(
    tx: &mut dyn StoreTx,
    resource_type: ResourceType,
    id: ResourceId,
    if_match: Option<VersionId>,
) -> Result<Outcome, CoreError> {
    let current = tx
        .read(resource_type, &id)
        .await?
        .ok_or_else(|| CoreError::NotFound {
            resource_type,
            id: id.clone(),
        })?;
    if current.is_deleted() && if_match.is_none() {
        // Deleting a deleted resource changes nothing (R4 http.html#delete).
        return Ok(Outcome::Deleted);
    }
    check_if_match(resource_type, &id, if_match, Some(&current))?;
    tx.write(NewVersion {
        resource_type,
        id,
        version_id: current.version_id.next(),
        last_updated: now(),
        body: None,
        index: Vec::new(),
    })
    .await?;
    Ok(Outcome::Deleted)
}
