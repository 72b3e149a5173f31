//! The operations extension point: every `$operation` the server answers is one entry of
//! one typed table ([`Operations`]) — its name, level, types, methods, OperationDefinition,
//! the permission it needs and whether a call is an access to the patient's data — plus the
//! code that runs it ([`Operation::run`]). Parsing, the CapabilityStatement, the access
//! check and the access log read the table; nothing else names an operation.
//!
//! The engine's own operations live here (`$access-log`, `$validate`); a domain adds its
//! own (the patientkontrakt's `$patientkontrakt`) when it builds the engine.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use paraply_auth::Permission;
use paraply_fhir::{Issue, IssueType, ResourceId, ResourceType, operation_outcome};
use paraply_search::{DEFAULT_COUNT, MAX_COUNT, PageCursor, Restriction, SearchQuery};
use paraply_store::{SearchPage, StoredResource};
use serde_json::Value;

use crate::access::Access;
use crate::access_record::AccessSummary;
use crate::audit::AuditAction;
use crate::audit_log::DeferredAudit;
use crate::audit_row::compact;
use crate::engine::{Fhir, Outcome, Reader, is_write};
use crate::error::{CoreError, Method};
use crate::request::{FhirRequest, Interaction};
use crate::validation::Validator;

/// Where an operation is invoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationLevel {
    /// `[base]/$name`
    System,
    /// `[base]/Type/$name`
    Type,
    /// `[base]/Type/id/$name`
    Instance,
    /// `[base]/Type/id/$name` on a conformance resource the catalog serves (e.g.
    /// `Measure/m1/$evaluate-measure`): the type is one of [`crate::CONFORMANCE_TYPES`], the
    /// call's `id` the resource's id and its `resource_type` `None`.
    Conformance(&'static str),
}

/// Whether a call reads the data of the patient it is invoked on (and is logged as such).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationAudit {
    /// An instance operation on a Patient: one AuditEvent naming the patient per call (I15).
    PatientData,
    /// A bulk export of many patients' data: one AuditEvent per export, with the request's
    /// query (types, `_since`, `_typeFilter`); a refused kick-off is logged at once, an
    /// accepted one when its work is done ([`OperationContext::defer_audit`]).
    Export,
    /// Touches no stored patient data (`$validate` stores and reads nothing).
    None,
}

/// The table row of one operation.
#[derive(Debug, Clone)]
pub struct OperationDef {
    /// Without the `$`.
    pub name: &'static str,
    pub level: OperationLevel,
    /// The types it is invoked on (every served type when empty at type level).
    pub resource_types: &'static [ResourceType],
    pub methods: &'static [Method],
    /// The canonical URL of its OperationDefinition.
    pub definition: &'static str,
    pub documentation: &'static str,
    /// The SMART permission the caller needs, on which type (`None`: the type invoked on).
    pub permission: (Option<ResourceType>, Permission),
    pub audit: OperationAudit,
}

impl OperationDef {
    fn applies_to(&self, level: OperationLevel, resource_type: Option<ResourceType>) -> bool {
        self.level == level
            && match resource_type {
                None => true,
                Some(t) => self.resource_types.is_empty() || self.resource_types.contains(&t),
            }
    }
}

/// One invocation, as parsed from the request.
#[derive(Debug, Clone)]
pub struct OperationCall {
    pub resource_type: Option<ResourceType>,
    pub id: Option<ResourceId>,
    /// Query parameters (and a form body's).
    pub params: Vec<(String, String)>,
    pub body: Option<Value>,
    /// The client sent `Prefer: respond-async`.
    pub respond_async: bool,
}

impl OperationCall {
    /// The value of parameter `name`, if given (the last one if repeated).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Refuses parameters the operation does not know (`_format` and `_pretty` belong to
    /// the HTTP edge).
    pub fn only_params(&self, operation: &str, known: &[&str]) -> Result<(), CoreError> {
        match self
            .params
            .iter()
            .find(|(n, _)| !known.contains(&n.as_str()) && n != "_format" && n != "_pretty")
        {
            Some((name, _)) => Err(CoreError::BadRequest {
                message: format!("unknown ${operation} parameter '{name}'"),
                expression: Some(name.clone()),
            }),
            None => Ok(()),
        }
    }
}

/// An operation: its table row and the code that runs it.
#[async_trait]
pub trait Operation: Send + Sync {
    fn definition(&self) -> &OperationDef;
    async fn run(
        &self,
        call: OperationCall,
        context: &mut OperationContext<'_>,
    ) -> Result<Outcome, CoreError>;
}

/// An operation as an [`Interaction`](crate::Interaction) carries it.
#[derive(Clone)]
pub struct OperationRef(pub(crate) Arc<dyn Operation>);

impl OperationRef {
    pub fn definition(&self) -> &OperationDef {
        self.0.definition()
    }
}

impl fmt::Debug for OperationRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.0.definition().name)
    }
}

/// The table.
#[derive(Clone, Default)]
pub struct Operations(Vec<Arc<dyn Operation>>);

impl Operations {
    /// The engine's own operations and `extra`.
    pub(crate) fn with(extra: Vec<Arc<dyn Operation>>) -> Self {
        let mut all: Vec<Arc<dyn Operation>> = vec![Arc::new(AccessLog), Arc::new(Validate)];
        all.extend(extra);
        Operations(all)
    }

    /// The engine's own operations only (`$access-log`, `$validate`): the table a
    /// [`crate::Fhir`] without extensions uses, for parsing requests outside an engine.
    pub fn standard() -> Self {
        Operations::with(Vec::new())
    }

    pub(crate) fn find(
        &self,
        name: &str,
        level: OperationLevel,
        resource_type: Option<ResourceType>,
    ) -> Option<OperationRef> {
        self.0
            .iter()
            .find(|op| {
                op.definition().name == name && op.definition().applies_to(level, resource_type)
            })
            .map(|op| OperationRef(op.clone()))
    }

    /// The operations invoked on `resource_type` (type and instance level).
    pub fn on_type(&self, resource_type: ResourceType) -> impl Iterator<Item = &OperationDef> {
        self.0.iter().map(|op| op.definition()).filter(move |def| {
            matches!(def.level, OperationLevel::Type | OperationLevel::Instance)
                && (def.resource_types.is_empty() || def.resource_types.contains(&resource_type))
        })
    }

    /// The operations invoked on the conformance resources of `type_name`.
    pub fn on_conformance(&self, type_name: &str) -> impl Iterator<Item = &OperationDef> {
        self.0.iter().map(|op| op.definition()).filter(
            move |def| matches!(def.level, OperationLevel::Conformance(t) if t == type_name),
        )
    }

    /// The system-level operations.
    pub fn on_system(&self) -> impl Iterator<Item = &OperationDef> {
        self.0
            .iter()
            .map(|op| op.definition())
            .filter(|def| def.level == OperationLevel::System)
    }
}

/// Who an operation answers, for what it may show (I14: patients and relatives never see
/// internal notes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    Patient,
    Relative,
    Staff,
    /// A system client, or the server itself (`--auth none`).
    System,
}

/// What an operation may use: reads and searches under the caller's access rules.
pub struct OperationContext<'a> {
    pub(crate) fhir: &'a Fhir,
    pub(crate) access: Option<&'a Access>,
}

impl OperationContext<'_> {
    pub fn audience(&self) -> Audience {
        match self.access {
            None => Audience::System,
            Some(access) => access.audience(),
        }
    }

    /// The system client calling (its `client_id`), or `None` for every other caller —
    /// and for the server itself under `--auth none`, which has no clients.
    pub fn system_client(&self) -> Option<&str> {
        match self.access.map(|access| &access.principal) {
            Some(paraply_auth::Principal::System { client_id, .. }) => Some(client_id),
            _ => None,
        }
    }

    /// Whether the caller's scopes allow reading `resource_type` (always without logins).
    pub fn may_read(&self, resource_type: ResourceType) -> bool {
        self.access
            .is_none_or(|access| access.check_scope(resource_type, Permission::Read).is_ok())
    }

    /// The access-log entry of this call, for an operation whose work ends after its
    /// request (a bulk export): kept with the work and appended once by
    /// [`Fhir::record_deferred`], instead of an entry now. `query` says what was asked;
    /// `entity` the resource invoked on. `None` without logins, where nothing is logged.
    pub fn defer_audit(
        &self,
        query: String,
        entity: Option<(ResourceType, ResourceId)>,
    ) -> Option<DeferredAudit> {
        let access = self.access?;
        let summary = AccessSummary {
            action: AuditAction::Operation,
            entity,
            patients: Vec::new(),
            search: false,
        };
        let mut record = access.record(&summary, None, Vec::new());
        record.query = Some(query);
        Some(DeferredAudit {
            id: ResourceId::generate(),
            recorded: record.recorded,
            body: compact(&record).to_string(),
        })
    }

    /// The public FHIR base URL, for absolute `fullUrl`s.
    pub fn base_url(&self) -> &str {
        self.fhir.base_url()
    }

    pub fn validator(&self) -> &Validator {
        self.fhir.validator_ref()
    }

    /// Reads a resource the caller may see: 404 when it does not exist, 403 when the caller
    /// may not see it, 410 when deleted.
    pub async fn read_visible(
        &mut self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<StoredResource, CoreError> {
        let store = self.fhir.store().as_ref();
        let resource = store
            .read(resource_type, id)
            .await?
            .ok_or(CoreError::NotFound {
                resource_type,
                id: id.clone(),
            })?;
        if let Some(access) = self.access {
            access
                .require_visible(&mut Reader::Store(store), resource_type, id)
                .await?;
        }
        if resource.is_deleted() {
            return Err(CoreError::Gone {
                resource_type,
                id: id.clone(),
                version_id: resource.version_id,
            });
        }
        Ok(resource)
    }

    /// A search under the caller's restriction; types the caller's scopes do not allow
    /// find nothing.
    pub async fn search(&mut self, mut query: SearchQuery) -> Result<SearchPage, CoreError> {
        if let Some(access) = self.access {
            if access
                .check_scope(query.resource_type, Permission::Search)
                .is_err()
            {
                return Ok(SearchPage {
                    matches: Vec::new(),
                    included: Vec::new(),
                    total: Some(0),
                    more: false,
                });
            }
            query.restriction = access.restriction();
        }
        let mut page = self.fhir.store().search(&query).await?;
        if let Some(access) = self.access {
            page.included.retain(|included| {
                access
                    .check_scope(included.resource_type, Permission::Read)
                    .is_ok()
            });
        }
        Ok(page)
    }

    /// The facts of `kind` current at `at` ([`paraply_store::Store::facts_at`]): what a
    /// domain's aggregate report reads instead of every version. They are not filtered by
    /// the caller's access: an operation reading them shows only counts, or checks the
    /// patients it names with [`OperationContext::search`].
    pub fn facts_at(
        &self,
        kind: &'static str,
        at: time::OffsetDateTime,
    ) -> futures::stream::BoxStream<'_, Result<paraply_store::FactPage, paraply_store::StoreError>>
    {
        self.fhir.store().facts_at(kind, at)
    }

    /// The restriction the caller's searches carry (`None`: unrestricted).
    pub fn restriction(&self) -> Option<Restriction> {
        self.access.and_then(Access::restriction)
    }

    /// Runs a write (create, update, or a transaction Bundle) as the caller: the same
    /// interaction a client could send, down the one write path, so an operation that
    /// bundles a client's steps is checked, ruled, logged and given provenance exactly as
    /// those steps would be.
    pub async fn submit(&mut self, request: FhirRequest) -> Result<Outcome, CoreError> {
        let interaction = Interaction::parse(request, self.fhir.operations())?;
        if !is_write(&interaction) && !matches!(interaction, Interaction::Bundle { .. }) {
            return Err(CoreError::bad_request("an operation submits writes only"));
        }
        // Boxed: an operation runs inside `execute`, which this calls again.
        Box::pin(self.fhir.execute(interaction, self.access)).await
    }
}

/// `GET Patient/{id}/$access-log`: who accessed the patient's data (for the patient).
struct AccessLog;

static ACCESS_LOG: OperationDef = OperationDef {
    name: "access-log",
    level: OperationLevel::Instance,
    resource_types: &[ResourceType::Patient],
    methods: &[Method::Get],
    definition: "https://paraply.se/fhir/OperationDefinition/access-log",
    documentation: "Who accessed the patient's data: unit, care provider, when, why (no staff names)",
    permission: (Some(ResourceType::AuditEvent), Permission::Read),
    audit: OperationAudit::PatientData,
};

#[async_trait]
impl Operation for AccessLog {
    fn definition(&self) -> &OperationDef {
        &ACCESS_LOG
    }

    async fn run(
        &self,
        call: OperationCall,
        context: &mut OperationContext<'_>,
    ) -> Result<Outcome, CoreError> {
        call.only_params("access-log", &["_count", "_page"])?;
        let invalid = |name: &str, value: &str, reason: &str| CoreError::BadRequest {
            message: format!("invalid value '{value}' for '{name}': {reason}"),
            expression: Some(name.to_owned()),
        };
        let count = match call.param("_count") {
            None => DEFAULT_COUNT,
            Some(value) => value
                .parse::<u32>()
                .map_err(|_| invalid("_count", value, "expected a whole number"))?
                .clamp(1, MAX_COUNT),
        };
        let page = call
            .param("_page")
            .map(|value| {
                PageCursor::decode(value).ok_or_else(|| {
                    invalid("_page", value, "expected a page cursor from a next link")
                })
            })
            .transpose()?;
        let patient = call
            .id
            .ok_or_else(|| CoreError::bad_request("$access-log is invoked on a Patient"))?;
        context
            .read_visible(ResourceType::Patient, &patient)
            .await?;
        crate::access_log::access_log(context.fhir.store().as_ref(), &patient, count, page)
            .await
            .map(Outcome::Built)
    }
}

/// `POST [base]/Type/$validate`: every issue a resource has, stored nowhere.
struct Validate;

static VALIDATE: OperationDef = OperationDef {
    name: "validate",
    level: OperationLevel::Type,
    resource_types: &[],
    methods: &[Method::Post],
    definition: "https://paraply.se/fhir/OperationDefinition/validate",
    documentation: "Checks a resource as a write would (R4 model, invariants, Swedish identifiers, claimed profiles) and stores nothing",
    permission: (None, Permission::Read),
    audit: OperationAudit::None,
};

#[async_trait]
impl Operation for Validate {
    fn definition(&self) -> &OperationDef {
        &VALIDATE
    }

    async fn run(
        &self,
        call: OperationCall,
        context: &mut OperationContext<'_>,
    ) -> Result<Outcome, CoreError> {
        let resource_type = call
            .resource_type
            .ok_or_else(|| CoreError::bad_request("$validate is invoked on a resource type"))?;
        let body = call
            .body
            .ok_or_else(|| CoreError::bad_request("$validate needs the resource as its body"))?;
        // A Parameters body carries the resource in its `resource` parameter (R4
        // OperationDefinition-Resource-validate); a resource can also be posted as it is.
        let resource = if body.get("resourceType").and_then(Value::as_str) == Some("Parameters") {
            body.get("parameter")
                .and_then(Value::as_array)
                .and_then(|params| {
                    params
                        .iter()
                        .find(|p| p.get("name").and_then(Value::as_str) == Some("resource"))
                })
                .and_then(|p| p.get("resource"))
                .cloned()
                .ok_or_else(|| {
                    CoreError::bad_request("the Parameters body has no 'resource' parameter")
                })?
        } else {
            body
        };
        let mut issues = context.validator().issues(resource_type, &resource);
        if issues.is_empty() {
            // An OperationOutcome needs an issue; "none found" is one.
            issues.push(Issue::information(
                IssueType::Informational,
                format!("no issues: the {resource_type} would be accepted"),
            ));
        }
        Ok(Outcome::Built(operation_outcome(&issues)))
    }
}
