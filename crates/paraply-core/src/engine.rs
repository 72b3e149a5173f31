//! Executes interactions against the store.

use std::sync::{Arc, OnceLock};

use paraply_auth::Permission;
use paraply_fhir::{ResourceId, ResourceType, VersionId, validate};
use paraply_search::{Restriction, SearchQuery, Summary, Total, index_rows};
use paraply_store::{
    HistoryPage, HistoryQuery, HistoryScope, NewVersion, SearchPage, Store, StoreTx, StoredResource,
};
use serde_json::Value;

use crate::access::{
    self, Access, AccessSettings, AccessSummary, IdentityCache, Subject, owner_of, patients_of,
    query_text, required_permission, server_written, without_internal_notes,
};
use crate::audit::AuditAction;
use crate::audit_log::{AuditLog, stage_audit_event};
use crate::context::{Caller, RequestContext};
use crate::error::CoreError;
use crate::provenance::{ProvenanceActivity, stage_provenance};
use crate::request::{FhirRequest, HistoryParams, Interaction};
use crate::stamp::{now, stamp};

/// How often a write without `If-Match` is retried when another writer took the version
/// it wanted (the other writer's version is kept; this one is written on top of it).
pub(crate) const WRITE_ATTEMPTS: usize = 5;

/// What an interaction produced.
#[derive(Debug)]
pub enum Outcome {
    Capabilities(Value),
    /// A Bundle an operation built (`$access-log`), with links relative to the base.
    OperationBundle(Value),
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
        /// A spärr hides some of what the search would otherwise find (I11): the answer may
        /// say so, not where.
        blocked: bool,
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
    access: Arc<AccessSettings>,
    identities: IdentityCache,
    /// Started on the first authenticated request, on the runtime serving it.
    audit: Arc<OnceLock<AuditLog>>,
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

    pub(crate) async fn visible(
        &mut self,
        resource_type: ResourceType,
        id: &ResourceId,
        restriction: &Restriction,
    ) -> Result<bool, CoreError> {
        Ok(match self {
            Reader::Store(store) => store.visible(resource_type, id, restriction).await?,
            Reader::Tx(tx) => tx.visible(resource_type, id, restriction).await?,
        })
    }
}

impl Fhir {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Fhir::with_access(store, AccessSettings::default())
    }

    pub fn with_access(store: Arc<dyn Store>, access: AccessSettings) -> Self {
        Fhir {
            store,
            access: Arc::new(access),
            identities: IdentityCache::default(),
            audit: Arc::new(OnceLock::new()),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Parses and executes one request as the server itself (no access rules, no log):
    /// demo data and start-up tasks.
    pub async fn handle(&self, request: FhirRequest) -> Result<Outcome, CoreError> {
        let interaction = Interaction::parse(request)?;
        self.execute(interaction, None).await
    }

    /// Parses and executes one request on behalf of `context`'s caller: the access rules
    /// for an authenticated caller, and the access log.
    pub async fn handle_as(
        &self,
        context: &RequestContext,
        request: FhirRequest,
    ) -> Result<Outcome, CoreError> {
        let query_text = query_text(&request);
        let interaction = Interaction::parse(request)?;
        let principal = match &context.caller {
            Caller::Unrestricted => {
                // Even without logins, the access log stays append-only.
                if let Some((resource_type, _)) = required_permission(&interaction)
                    && server_written(resource_type)
                    && is_write(&interaction)
                {
                    return Err(CoreError::Forbidden {
                        reason: format!("{resource_type} resources are written by the server only"),
                    });
                }
                return self.execute(interaction, None).await;
            }
            Caller::Authenticated(principal) => principal,
        };
        let access = match access::resolve(
            self.store.as_ref(),
            &self.identities,
            &self.access,
            context,
            principal,
            query_text,
        )
        .await
        {
            Ok(access) => access,
            Err(error) => {
                // Somebody with a valid token whom no record matches: logged, then refused.
                let record = access::unresolved_record(context, principal, &interaction, &error);
                self.audit_log().record(record).await?;
                return Err(error);
            }
        };
        let result = self.execute(interaction, Some(&access)).await;
        match result {
            Ok(outcome) if access.is_citizen() => Ok(without_internal_notes_in(outcome)),
            other => other,
        }
    }

    /// Logs a request refused before anyone was identified (no token, or a rejected one):
    /// attacks leave a trace too. The event names no patient, and no token content.
    pub async fn log_refused_login(&self, request_id: &str, reason: &str) -> Result<(), CoreError> {
        let record = access::refused_login_record(request_id, reason);
        self.audit_log().record(record).await
    }

    /// Logs an access to patient data that was refused or failed, outside any transaction
    /// (a failed write's, or a failed transaction's, is rolled back with it).
    pub(crate) async fn log_failure(
        &self,
        access: &Access,
        logged: Option<AccessSummary>,
        error: &CoreError,
    ) -> Result<(), CoreError> {
        let Some(logged) = logged else {
            return Ok(());
        };
        let record = access.record(&logged, Some(error), logged.patients.clone());
        self.audit_log().record(record).await
    }

    /// The access log writer (group commit), started on first use.
    fn audit_log(&self) -> &AuditLog {
        self.audit
            .get_or_init(|| AuditLog::start(self.store.clone()))
    }

    pub(crate) async fn execute(
        &self,
        interaction: Interaction,
        access: Option<&Access>,
    ) -> Result<Outcome, CoreError> {
        let Some(access) = access else {
            return self.execute_checked(interaction, None).await;
        };
        if matches!(interaction, Interaction::Bundle { .. }) || is_write(&interaction) {
            // Writes log inside their own transaction, Bundles entry by entry; a write that
            // fails is logged here, since its transaction is gone.
            let logged = AccessSummary::of(&interaction);
            let result = self.execute_checked(interaction, Some(access)).await;
            if let Err(error) = &result {
                self.log_failure(access, logged, error).await?;
            }
            return result;
        }
        let logged = AccessSummary::of(&interaction);
        let result = self.execute_checked(interaction, Some(access)).await;
        if let Some(logged) = logged {
            let patients = match &result {
                Ok(outcome) => patients_in(outcome),
                Err(_) => logged.patients_of_target(self.store.as_ref()).await,
            };
            let record = access.record(&logged, result.as_ref().err(), patients);
            self.audit_log().record(record).await?;
        }
        result
    }

    async fn execute_checked(
        &self,
        interaction: Interaction,
        access: Option<&Access>,
    ) -> Result<Outcome, CoreError> {
        if let Some(access) = access {
            access.check_interaction(&interaction)?;
        }
        match interaction {
            Interaction::Bundle { bundle } => self.bundle(bundle, access).await,
            other if is_write(&other) => self.write(restricted(other, access), access).await,
            read => {
                self.read(
                    &mut Reader::Store(self.store.as_ref()),
                    restricted(read, access),
                    access,
                )
                .await
            }
        }
    }

    /// The store transaction for write attempt `attempt` (from 1). The first lets the store
    /// serve reads before it holds the writer; a retry holds it throughout, so it cannot
    /// lose the race again.
    pub(crate) async fn begin_attempt(
        &self,
        attempt: usize,
    ) -> Result<Box<dyn StoreTx>, CoreError> {
        let tx = if attempt == 1 {
            self.store.begin_optimistic().await?
        } else {
            self.store.begin().await?
        };
        Ok(tx)
    }

    /// Runs a write in its own transaction, retrying when a concurrent writer won the
    /// version and the client did not pin one with `If-Match`.
    async fn write(
        &self,
        interaction: Interaction,
        access: Option<&Access>,
    ) -> Result<Outcome, CoreError> {
        prevalidate(&interaction)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = self.begin_attempt(attempt).await?;
            let written = match write_checked(tx.as_mut(), interaction.clone(), None, access).await
            {
                Ok((outcome, written)) => {
                    match verify_written(tx.as_mut(), access, written.as_ref()).await {
                        Ok(()) => log_write(tx.as_mut(), access, &interaction, written.as_ref())
                            .await
                            .map(|()| outcome),
                        Err(error) => Err(error),
                    }
                }
                Err(error) => Err(error),
            };
            // The store may send the write only now, so a lost race can show here too.
            let committed = match written {
                Ok(outcome) => tx.commit().await.map(|()| outcome).map_err(CoreError::from),
                Err(error) => Err(error),
            };
            match committed {
                Ok(outcome) => return Ok(outcome),
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
        access: Option<&Access>,
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
                if let Some(access) = access {
                    access.require_visible(reader, resource_type, &id).await?;
                }
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
                // Older versions are as visible as the resource is now.
                if let Some(access) = access {
                    access.require_visible(reader, resource_type, &id).await?;
                }
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
                // Both ask for the number of matches and nothing else (R4 search.html:
                // `_count=0` is treated as `_summary=count`), so both count.
                if query.summary == Summary::Count || query.count == 0 {
                    query.count = 0;
                    query.total = Total::Accurate;
                }
                let mut page = reader.search(&query).await?;
                if let Some(access) = access {
                    // Included resources need read scope on their own type.
                    page.included.retain(|included| {
                        access
                            .check_scope(included.resource_type, Permission::Read)
                            .is_ok()
                    });
                }
                let blocked = match access {
                    Some(access) => access.blocked_data_exists(reader, &query).await?,
                    None => false,
                };
                Ok(Outcome::Searchset {
                    query,
                    page,
                    blocked,
                })
            }
            Interaction::AccessLog {
                patient,
                count,
                page,
            } => {
                if let Some(access) = access {
                    access
                        .require_visible(reader, ResourceType::Patient, &patient)
                        .await?;
                }
                crate::access_log::access_log(self.store.as_ref(), &patient, count, page)
                    .await
                    .map(Outcome::OperationBundle)
            }
            Interaction::History(params) => {
                if let (Some(access), HistoryScope::Instance(resource_type, id)) =
                    (access, &params.scope)
                {
                    access.require_visible(reader, *resource_type, id).await?;
                }
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
pub(crate) fn pinned_version(interaction: &Interaction) -> Option<VersionId> {
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

/// Every search an interaction runs on the caller's behalf (conditional criteria too)
/// carries the caller's restriction, so it cannot find what the caller may not see.
pub(crate) fn restricted(mut interaction: Interaction, access: Option<&Access>) -> Interaction {
    let Some(restriction) = access.and_then(Access::restriction) else {
        return interaction;
    };
    match &mut interaction {
        Interaction::Search { query }
        | Interaction::ConditionalUpdate { query, .. }
        | Interaction::ConditionalDelete { query } => query.restriction = Some(restriction),
        Interaction::Create {
            if_none_exist: Some(query),
            ..
        } => query.restriction = Some(restriction),
        _ => {}
    }
    interaction
}

/// The resource an update, patch or delete entry names by id.
pub(crate) fn named_target(interaction: &Interaction) -> Option<(ResourceType, ResourceId)> {
    match interaction {
        Interaction::Update {
            resource_type, id, ..
        }
        | Interaction::Patch {
            resource_type, id, ..
        }
        | Interaction::Delete {
            resource_type, id, ..
        } => Some((*resource_type, id.clone())),
        _ => None,
    }
}

/// A resource a write produced, to be checked against the access rules before commit.
pub(crate) struct Written {
    resource_type: ResourceType,
    id: ResourceId,
    /// The care-provider owner the new version must carry.
    owner: Option<String>,
    deleted: bool,
    /// Whose data it is (before a delete, after any other write), for the access log.
    patients: Vec<ResourceId>,
}

/// Runs one write for `access` inside `tx`: the version it replaces must be visible to the
/// caller, and a staff write stamps the owner tag. The new state is checked by
/// [`verify_written`] — after the whole transaction, since a Bundle may create the care
/// relationship that makes its own entries visible.
pub(crate) async fn write_checked(
    tx: &mut dyn StoreTx,
    mut interaction: Interaction,
    assigned_id: Option<ResourceId>,
    access: Option<&Access>,
) -> Result<(Outcome, Option<Written>), CoreError> {
    let Some(access) = access else {
        return Ok((write_in(tx, interaction, assigned_id).await?, None));
    };
    let target = named_target(&interaction);
    let mut current_owner = None;
    let mut previous_patients = Vec::new();
    if let Some((resource_type, id)) = &target
        && let Some(current) = tx.read(*resource_type, id).await?
        && let Some(body) = current.body.as_deref()
    {
        access
            .require_visible(&mut Reader::Tx(&mut *tx), *resource_type, id)
            .await?;
        current_owner = Some(owner_of(body));
        previous_patients = patients_of(*resource_type, id, body);
    }
    if let Interaction::Create { body, .. }
    | Interaction::Update { body, .. }
    | Interaction::ConditionalUpdate { body, .. } = &mut interaction
    {
        access.stamp_owner(body, current_owner.clone());
    }
    let expected_owner = match (&access.subject, current_owner) {
        (_, Some(owner)) => owner,
        (Subject::Staff(staff), None) => Some(staff.care_provider_hsa_id.clone()),
        (_, None) => None,
    };
    let outcome = write_in(tx, interaction, assigned_id).await?;
    let written = match &outcome {
        Outcome::Resource { resource, .. } => Some(Written {
            resource_type: resource.resource_type,
            id: resource.id.clone(),
            owner: expected_owner,
            deleted: false,
            patients: resource
                .body
                .as_deref()
                .map(|body| patients_of(resource.resource_type, &resource.id, body))
                .unwrap_or_default(),
        }),
        Outcome::Deleted => target.map(|(resource_type, id)| Written {
            resource_type,
            id,
            owner: None,
            deleted: true,
            patients: previous_patients,
        }),
        _ => None,
    };
    Ok((outcome, written))
}

/// The state a write leaves must still be the caller's to see (a patient cannot write data
/// into another patient's record, staff only where they have a care relationship), and the
/// owner tag cannot be changed by a patch. A staff member registering a new Patient is the
/// exception: nobody has a care relationship with a patient before their first CareTeam.
pub(crate) async fn verify_written(
    tx: &mut dyn StoreTx,
    access: Option<&Access>,
    written: Option<&Written>,
) -> Result<(), CoreError> {
    let (Some(access), Some(written)) = (access, written) else {
        return Ok(());
    };
    if written.deleted {
        return Ok(());
    }
    let current = tx.read(written.resource_type, &written.id).await?;
    let owner = current
        .as_ref()
        .and_then(|c| c.body.as_deref())
        .and_then(owner_of);
    if matches!(access.subject, Subject::Staff(_)) && owner != written.owner {
        return Err(CoreError::Forbidden {
            reason: "the care provider that owns a resource (its vardgivare tag) cannot be changed"
                .into(),
        });
    }
    let registering_patient = matches!(access.subject, Subject::Staff(_))
        && written.resource_type == ResourceType::Patient;
    if !registering_patient {
        access
            .require_visible(&mut Reader::Tx(tx), written.resource_type, &written.id)
            .await?;
    }
    Ok(())
}

/// The access log of one successful write, in its transaction: an AuditEvent and the
/// Provenance of the version written (I15).
pub(crate) async fn log_write(
    tx: &mut dyn StoreTx,
    access: Option<&Access>,
    interaction: &Interaction,
    written: Option<&Written>,
) -> Result<(), CoreError> {
    let (Some(access), Some(written)) = (access, written) else {
        return Ok(());
    };
    let Some(mut logged) = AccessSummary::of(interaction) else {
        return Ok(());
    };
    logged.entity = Some((written.resource_type, written.id.clone()));
    let record = access.record(&logged, None, written.patients.clone());
    stage_audit_event(tx, &record).await?;
    let version = tx
        .read(written.resource_type, &written.id)
        .await?
        .map(|current| current.version_id)
        .unwrap_or(VersionId::FIRST);
    let activity = match logged.action {
        AuditAction::Create => ProvenanceActivity::Create,
        AuditAction::Delete => ProvenanceActivity::Delete,
        _ => ProvenanceActivity::Update,
    };
    stage_provenance(
        tx,
        (written.resource_type, &written.id, version),
        activity,
        &record.agent,
        record.recorded,
    )
    .await
}

/// The access log of a read inside a transaction Bundle, committed with it.
pub(crate) async fn log_read_in(
    tx: &mut dyn StoreTx,
    access: Option<&Access>,
    interaction: &Interaction,
    outcome: &Outcome,
) -> Result<(), CoreError> {
    let (Some(access), Some(logged)) = (access, AccessSummary::of(interaction)) else {
        return Ok(());
    };
    let record = access.record(&logged, None, patients_in(outcome));
    stage_audit_event(tx, &record).await
}

/// The patients whose data an outcome shows.
fn patients_in(outcome: &Outcome) -> Vec<ResourceId> {
    let mut patients = Vec::new();
    let mut add = |resource: &StoredResource| {
        if let Some(body) = resource.body.as_deref() {
            for patient in patients_of(resource.resource_type, &resource.id, body) {
                if !patients.contains(&patient) {
                    patients.push(patient);
                }
            }
        }
    };
    match outcome {
        Outcome::Resource { resource, .. } => add(resource),
        Outcome::Searchset { page, .. } => {
            page.matches.iter().for_each(|m| add(&m.resource));
            page.included.iter().for_each(&mut add);
        }
        Outcome::History { page, .. } => page.entries.iter().for_each(add),
        _ => {}
    }
    patients
}

/// Drops internal notes (I14) from everything an outcome shows a patient or relative.
fn without_internal_notes_in(outcome: Outcome) -> Outcome {
    let strip = |resource: &mut StoredResource| {
        if let Some(body) = resource.body.take() {
            resource.body = Some(without_internal_notes(body));
        }
    };
    match outcome {
        Outcome::Resource {
            created,
            mut resource,
        } => {
            strip(&mut resource);
            Outcome::Resource { created, resource }
        }
        Outcome::Searchset {
            query,
            mut page,
            blocked,
        } => {
            page.matches.iter_mut().for_each(|m| strip(&mut m.resource));
            page.included.iter_mut().for_each(strip);
            Outcome::Searchset {
                query,
                page,
                blocked,
            }
        }
        Outcome::History { params, mut page } => {
            page.entries.iter_mut().for_each(strip);
            Outcome::History { params, page }
        }
        Outcome::BundleResponse {
            transaction,
            entries,
        } => Outcome::BundleResponse {
            transaction,
            entries: entries
                .into_iter()
                .map(|entry| entry.map(without_internal_notes_in))
                .collect(),
        },
        other => other,
    }
}

/// Executes one write inside `tx`; create and update bodies have passed [`prevalidate`].
/// `assigned_id` is the id a transaction reserved for a
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
            put_version(
                tx,
                resource_type,
                id,
                body,
                None,
                WriteKind::Create,
                Validation::Done,
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
                Validation::Done,
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
                Validation::Done,
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

/// Validates the body a create or update carries, before its write transaction begins: a
/// database has one writer at a time (SQLite one connection, PostgreSQL one per resource),
/// and validation is the costliest step of a write, so it runs on the request's own task, in
/// parallel with other requests, not while holding the writer. What happens to the body
/// later (the server's `id` and `meta`, an owner tag, `urn:uuid:` references rewritten to
/// `Type/id`) keeps it valid. A patch's body only exists inside the transaction and is
/// validated there.
pub(crate) fn prevalidate(interaction: &Interaction) -> Result<(), CoreError> {
    let (resource_type, body) = match interaction {
        Interaction::Create {
            resource_type,
            body,
            ..
        }
        | Interaction::Update {
            resource_type,
            body,
            ..
        } => (*resource_type, body),
        Interaction::ConditionalUpdate { query, body } => (query.resource_type, body),
        _ => return Ok(()),
    };
    // A body of the wrong shape or type is refused by `put_version`, with its own message.
    let Value::Object(map) = body else {
        return Ok(());
    };
    if map.get("resourceType").and_then(Value::as_str) != Some(resource_type.as_str()) {
        return Ok(());
    }
    // Stamped as the server will stamp it, so client-sent `id`/`meta` values that the
    // server replaces are not held against the body.
    let stamped = stamp(
        map.clone(),
        &ResourceId::generate(),
        VersionId::FIRST,
        now(),
    );
    validate(&stamped).map_err(CoreError::Invalid)?;
    Ok(())
}

/// Whether [`put_version`] still has to validate the body.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Validation {
    /// By [`prevalidate`], before the transaction (creates and updates).
    Done,
    /// Here (a patch, whose body is built inside the transaction).
    Needed,
}

/// Stamps and writes the next version of a resource (validating it if still needed).
async fn put_version(
    tx: &mut dyn StoreTx,
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
    if validation == Validation::Needed {
        validate(&stamped).map_err(CoreError::Invalid)?;
    }
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
