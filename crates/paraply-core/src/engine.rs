//! The engine: who is asking ([`Fhir::handle_as`]), which interaction, and where it goes —
//! reads here, writes down [`crate::write`]'s one path, Bundles to [`crate::bundle`],
//! operations to their entry in [`crate::operations`]'s table.

use std::sync::{Arc, OnceLock};

use paraply_auth::Permission;
use paraply_fhir::{ResourceId, ResourceType};
use paraply_search::{Restriction, SearchQuery, Summary, Total};
use paraply_store::{
    HistoryPage, HistoryQuery, HistoryScope, SearchPage, Store, StoreTx, StoredResource,
};
use serde_json::Value;

use crate::access::{Access, AccessSettings, Subject, required_permission, server_written};
use crate::access_record::{self, AccessSummary, query_text};
use crate::audit_log::{AuditLog, DeferredAudit, stage_audit_event};
use crate::audit_row::{log_entry_as, record_of_body};
use crate::audit_search;
use crate::conformance::{ConformanceCatalog, NoConformance};
use crate::context::{Caller, RequestContext};
use crate::error::CoreError;
use crate::identity::IdentityCache;
use crate::operations::{Operation, OperationContext, Operations};
use crate::request::{FhirRequest, HistoryParams, Interaction};
use crate::rules::WriteRule;
use crate::tags::{
    patients_of, strip_channel_headers, without_channel_headers, without_internal_notes,
};
use crate::validation::{ResourceCheck, Validator};
use crate::write::SingleWrite;

/// The public FHIR base URL when none is configured: the default listen address.
const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080/fhir";

/// What a domain plugs into the engine (the patientkontrakt does: identifier checks,
/// profiles, the rules I1–I10, `$patientkontrakt`).
#[derive(Clone, Default)]
pub struct Extensions {
    /// Checks of each resource written (and of `$validate`).
    pub checks: Vec<Arc<dyn ResourceCheck>>,
    /// Rules over each write transaction, before it commits.
    pub rules: Vec<Arc<dyn WriteRule>>,
    /// Operations besides the engine's own.
    pub operations: Vec<Arc<dyn Operation>>,
    /// Conformance resources to serve (`None`: none).
    pub conformance: Option<Arc<dyn ConformanceCatalog>>,
}

/// What an interaction produced.
#[derive(Debug)]
pub enum Outcome {
    Capabilities(Value),
    /// A resource an operation built (a Bundle, an OperationOutcome); a Bundle's links are
    /// relative to the base.
    Built(Value),
    /// A resource an operation built from the data of `patients` and names them in (a
    /// report's list of patients): the access log records the call as an access to each.
    BuiltFrom {
        body: Value,
        patients: Vec<ResourceId>,
    },
    /// A resource version: read, vread, or the result of a write.
    Resource {
        /// `true` when the write created the resource (201), `false` otherwise (200).
        created: bool,
        resource: StoredResource,
    },
    /// A delete (or a conditional delete that matched nothing).
    Deleted,
    /// Accepted for asynchronous work (`202`): the client polls `content_location`, an
    /// absolute URL built from the public base URL.
    Accepted {
        content_location: String,
    },
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

/// Whom a citizen's login is ([`Fhir::citizen_identity`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CitizenIdentity {
    Patient(ResourceId),
    /// The RelatedPerson resources with the person's personnummer: what they may see is
    /// decided per request by the patients' consents.
    Relative(Vec<ResourceId>),
    NotACitizen,
}

/// The FHIR engine, shared by all requests.
#[derive(Clone)]
pub struct Fhir {
    store: Arc<dyn Store>,
    access: Arc<AccessSettings>,
    pub(crate) identities: IdentityCache,
    /// Started on the first authenticated request, on the runtime serving it.
    audit: Arc<OnceLock<AuditLog>>,
    validator: Arc<Validator>,
    rules: Arc<[Arc<dyn WriteRule>]>,
    operations: Arc<Operations>,
    conformance: Arc<dyn ConformanceCatalog>,
    /// The public FHIR base URL (from settings, never from a request).
    base_url: Arc<str>,
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
            validator: Arc::new(Validator::default()),
            rules: Arc::from(Vec::new()),
            operations: Arc::new(Operations::with(Vec::new())),
            conformance: Arc::new(NoConformance),
            base_url: Arc::from(DEFAULT_BASE_URL),
        }
    }

    /// The engine with a domain's checks, rules and operations.
    pub fn extended(mut self, extensions: Extensions) -> Self {
        self.validator = Arc::new(Validator::new(extensions.checks));
        self.rules = Arc::from(extensions.rules);
        self.operations = Arc::new(Operations::with(extensions.operations));
        if let Some(conformance) = extensions.conformance {
            self.conformance = conformance;
        }
        self
    }

    /// The public FHIR base URL (`https://paraply.example.se/fhir`, no trailing slash).
    pub fn with_base_url(mut self, base_url: &str) -> Self {
        self.base_url = Arc::from(base_url.trim_end_matches('/'));
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The operations table (for the CapabilityStatement).
    pub fn operations(&self) -> &Operations {
        &self.operations
    }

    pub(crate) fn validator(&self) -> Arc<Validator> {
        self.validator.clone()
    }

    pub(crate) fn validator_ref(&self) -> &Validator {
        &self.validator
    }

    pub(crate) fn rules(&self) -> &[Arc<dyn WriteRule>] {
        &self.rules
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Parses and executes one request as the server itself (no access rules, no log):
    /// demo data and start-up tasks.
    pub async fn handle(&self, request: FhirRequest) -> Result<Outcome, CoreError> {
        let interaction = Interaction::parse(request, &self.operations)?;
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
        let interaction = Interaction::parse(request, &self.operations)?;
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
                return self
                    .execute(interaction, None)
                    .await
                    .map(|outcome| as_shown(outcome, false));
            }
            Caller::Authenticated(principal) => principal,
        };
        let access = match self
            .resolve(
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
                let record =
                    access_record::unresolved_record(context, principal, &interaction, &error);
                self.audit_log().record(record).await?;
                return Err(error);
            }
        };
        self.execute(interaction, Some(&access))
            .await
            .map(|outcome| as_shown(outcome, access.is_citizen()))
    }

    /// Whom a citizen's login is, for the portal: their own Patient, or the RelatedPerson
    /// records they are (a relative). Who the caller is, is not patient data: no
    /// access-log entry (the identity is cached as for every request).
    pub async fn citizen_identity(
        &self,
        context: &RequestContext,
    ) -> Result<CitizenIdentity, CoreError> {
        let Caller::Authenticated(principal) = &context.caller else {
            return Ok(CitizenIdentity::NotACitizen);
        };
        let access = self
            .resolve(&self.identities, &self.access, context, principal, None)
            .await?;
        Ok(match access.subject {
            Subject::Patient { patient } => CitizenIdentity::Patient(patient),
            Subject::Relative { related_persons } => CitizenIdentity::Relative(related_persons),
            Subject::Staff(_) | Subject::System => CitizenIdentity::NotACitizen,
        })
    }

    /// Logs a request refused before anyone was identified (no token, or a rejected one):
    /// attacks leave a trace too. The event names no patient, and no token content.
    pub async fn log_refused_login(&self, request_id: &str, reason: &str) -> Result<(), CoreError> {
        let record = access_record::refused_login_record(request_id, reason);
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

    /// Appends the deferred entry of accepted asynchronous work, with what it yielded
    /// (`detail`: type → value), unless it was appended before (a retried finish).
    pub async fn record_deferred(
        &self,
        deferred: &DeferredAudit,
        detail: Vec<(String, String)>,
    ) -> Result<(), CoreError> {
        match audit_search::read(self.store.as_ref(), &deferred.id, None).await {
            Ok(_) => return Ok(()),
            Err(CoreError::NotFound { .. }) => {}
            Err(other) => return Err(other),
        }
        let mut record = record_of_body(deferred.recorded, &deferred.body)?;
        record.detail = detail;
        self.audit_log()
            .append(log_entry_as(&record, deferred.id.clone()))
            .await
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
        // Accepted asynchronous work (a bulk export) is logged once when it is done, with
        // what it yielded (`OperationContext::defer_audit`); a refusal is logged now.
        if matches!(result, Ok(Outcome::Accepted { .. })) {
            return result;
        }
        if let Some(logged) = logged {
            let patients = match &result {
                // An operation on a patient's record names the patient it was invoked on.
                Ok(outcome)
                    if !logged.patients.is_empty() && matches!(outcome, Outcome::Built(_)) =>
                {
                    logged.patients.clone()
                }
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

    /// A write sent alone: one interaction down the one write path.
    async fn write(
        &self,
        mut interaction: Interaction,
        access: Option<&Access>,
    ) -> Result<Outcome, CoreError> {
        self.validator.prevalidate(&mut interaction)?;
        let work = SingleWrite {
            interaction: &interaction,
            access,
        };
        self.write_transaction(access, &work)
            .await
            .map_err(|failure| failure.error)
    }

    pub(crate) async fn read(
        &self,
        reader: &mut Reader<'_>,
        interaction: Interaction,
        access: Option<&Access>,
    ) -> Result<Outcome, CoreError> {
        match interaction {
            // The access log is its own table, rendered as AuditEvents.
            Interaction::Read {
                resource_type: ResourceType::AuditEvent,
                id,
            } => Ok(Outcome::Resource {
                created: false,
                resource: audit_search::read(self.store.as_ref(), &id, access).await?,
            }),
            Interaction::VRead {
                resource_type: ResourceType::AuditEvent,
                id,
                version_id,
            } => {
                let resource = audit_search::read(self.store.as_ref(), &id, access).await?;
                if version_id != resource.version_id {
                    return Err(CoreError::VersionNotFound {
                        resource_type: ResourceType::AuditEvent,
                        id,
                        version_id,
                    });
                }
                Ok(Outcome::Resource {
                    created: false,
                    resource,
                })
            }
            Interaction::Search { mut query }
                if query.resource_type == ResourceType::AuditEvent =>
            {
                if query.summary == Summary::Count || query.count == 0 {
                    query.count = 0;
                    query.total = Total::Accurate;
                }
                let page = audit_search::search(self.store.as_ref(), &query).await?;
                Ok(Outcome::Searchset {
                    query,
                    page,
                    blocked: false,
                })
            }
            Interaction::History(params)
                if matches!(params.scope, HistoryScope::Type(ResourceType::AuditEvent)) =>
            {
                Err(CoreError::bad_request(
                    "AuditEvent has no type history: every entry of the access log has one \
                     version; search AuditEvent instead",
                ))
            }
            Interaction::History(params)
                if matches!(
                    params.scope,
                    HistoryScope::Instance(ResourceType::AuditEvent, _)
                ) =>
            {
                let HistoryScope::Instance(_, id) = &params.scope else {
                    return Err(CoreError::bad_request(
                        "an instance history names its resource",
                    ));
                };
                let resource = audit_search::read(self.store.as_ref(), id, access).await?;
                let shown = params
                    .since
                    .is_none_or(|since| resource.last_updated >= since);
                let entries = if shown { vec![resource] } else { Vec::new() };
                let total = entries.len() as u64;
                Ok(Outcome::History {
                    params,
                    page: HistoryPage {
                        entries,
                        next: None,
                        total,
                    },
                })
            }
            Interaction::Capabilities => Ok(Outcome::Capabilities(
                crate::capabilities::capability_statement(
                    &self.operations,
                    self.conformance.as_ref(),
                ),
            )),
            Interaction::ReadConformance { resource_type, id } => self
                .conformance
                .resource(resource_type, &id)
                .map(|text| Outcome::Capabilities(parse_static(text)))
                .ok_or(CoreError::UnknownRoute(format!(
                    "{resource_type}/{id} is not one of Paraply's own definitions"
                ))),
            Interaction::ListConformance { resource_type } => {
                let entries: Vec<Value> = self
                    .conformance
                    .resources_of(resource_type)
                    .into_iter()
                    .map(parse_static)
                    .map(|resource| {
                        let id = resource
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        serde_json::json!({
                            "fullUrl": format!("{}/{resource_type}/{id}", self.base_url),
                            "resource": resource,
                            "search": {"mode": "match"}
                        })
                    })
                    .collect();
                let mut bundle = serde_json::json!({
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "total": entries.len(),
                });
                if !entries.is_empty() {
                    bundle["entry"] = Value::Array(entries);
                }
                Ok(Outcome::Built(bundle))
            }
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
                audit_search::check_includes(&query)?;
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
            Interaction::Operation { operation, call } => {
                let mut context = OperationContext { fhir: self, access };
                operation.0.run(call, &mut context).await
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

/// A conformance resource's text: embedded at build time and checked by the catalog's own
/// tests, so it parses; a broken one reads as an empty object rather than a panic.
fn parse_static(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::Object(serde_json::Map::new()))
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

pub(crate) fn interaction_name(interaction: &Interaction) -> &'static str {
    match interaction {
        Interaction::Capabilities => "capabilities",
        Interaction::ReadConformance { .. } => "read",
        Interaction::ListConformance { .. } => "search",
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
        Interaction::Operation { .. } => "operation",
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
        Outcome::BuiltFrom {
            patients: named, ..
        } => patients.extend(named.iter().cloned()),
        _ => {}
    }
    patients
}

/// What an outcome may show its caller, whoever they are: never a Subscription's
/// `channel.header` (the endpoint's credentials), and to a patient or relative
/// (`citizen`) no internal notes (I14). Every answer of [`Fhir::handle_as`] passes here —
/// reads, searches with their includes, histories, writes and Bundle entries alike.
fn as_shown(outcome: Outcome, citizen: bool) -> Outcome {
    let strip = |resource: &mut StoredResource| {
        if let Some(body) = resource.body.take() {
            let body = if resource.resource_type == ResourceType::Subscription {
                without_channel_headers(body)
            } else {
                body
            };
            resource.body = Some(if citizen {
                without_internal_notes(body)
            } else {
                body
            });
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
                .map(|entry| entry.map(|outcome| as_shown(outcome, citizen)))
                .collect(),
        },
        Outcome::Built(mut value) => {
            strip_channel_headers(&mut value);
            Outcome::Built(value)
        }
        other @ (Outcome::Capabilities(_)
        | Outcome::Deleted
        | Outcome::BuiltFrom { .. }
        | Outcome::Accepted { .. }) => other,
    }
}
