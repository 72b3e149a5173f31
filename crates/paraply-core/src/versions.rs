//! How one write interaction becomes a new version inside a [`WriteTx`]: create (with
//! `If-None-Exist`), update, conditional update, patch and delete, with `If-Match`, the
//! server's `id` and `meta`, and index rows. Every version written is recorded as a
//! [`Change`](crate::write::Change) for the rules that run before commit.

use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::index_rows;
use paraply_store::{NewVersion, StoredResource};
use serde_json::Value;

use crate::engine::{Outcome, interaction_name};
use crate::error::CoreError;
use crate::request::Interaction;
use crate::stamp::{now, stamp};
use crate::write::WriteTx;

/// Executes one write inside `tx`; create and update bodies have passed
/// [`Validator::prevalidate`](crate::validation::Validator::prevalidate) unless `validation`
/// says otherwise.
/// `assigned_id` is the id a transaction reserved for a
/// `POST` entry (so references to its `urn:uuid` resolve before it is written).
pub(crate) async fn write_in(
    tx: &mut WriteTx,
    interaction: Interaction,
    assigned_id: Option<ResourceId>,
    validation: Validation,
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
            put_version(
                tx,
                resource_type,
                id,
                body,
                None,
                WriteKind::Create,
                validation,
            )
            .await
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
            put_version(
                tx,
                resource_type,
                id,
                body,
                if_match,
                WriteKind::Update,
                validation,
            )
            .await
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
            put_version(
                tx,
                resource_type,
                id,
                body,
                None,
                WriteKind::Update,
                validation,
            )
            .await
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
                Validation::Needed,
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
    tx: &mut WriteTx,
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

/// Whether [`put_version`] still has to validate the body.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Validation {
    /// By [`Validator::prevalidate`](crate::validation::Validator::prevalidate), before the
    /// transaction (creates and updates from a request).
    Done,
    /// Here (a patch, whose body is built inside the transaction, and the server's own
    /// writes).
    Needed,
}

/// Stamps and writes the next version of a resource (validating it if still needed).
async fn put_version(
    tx: &mut WriteTx,
    resource_type: ResourceType,
    id: ResourceId,
    body: Value,
    if_match: Option<VersionId>,
    kind: WriteKind,
    validation: Validation,
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
    let stamped = if validation == Validation::Needed {
        tx.validator().check_stamped(resource_type, stamped)?
    } else {
        stamped
    };
    let index = index_rows(resource_type, &stamped);
    let text = serde_json::to_string(&stamped)
        .map_err(|e| CoreError::bad_request(format!("unserializable body: {e}")))?;
    let before = current.and_then(|c| c.body);
    tx.write(
        NewVersion {
            resource_type,
            id: id.clone(),
            version_id,
            last_updated,
            body: Some(text.clone()),
            index,
        },
        before,
    )
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
    tx: &mut WriteTx,
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
    tx.write(
        NewVersion {
            resource_type,
            id,
            version_id: current.version_id.next(),
            last_updated: now(),
            body: None,
            index: Vec::new(),
        },
        current.body,
    )
    .await?;
    Ok(Outcome::Deleted)
}
