//! The `$export` kick-off: three rows of the operations table (system, `Patient`, `Group`)
//! sharing one implementation.

use std::sync::Arc;

use async_trait::async_trait;
use paraply_auth::Permission;
use paraply_core::{
    Audience, CoreError, Method, Operation, OperationAudit, OperationCall, OperationContext,
    OperationDef, OperationLevel, Outcome,
};
use paraply_fhir::ResourceType;
use paraply_store::NewExportJob;
use time::OffsetDateTime;

use crate::Exports;
use crate::spec::{self, Level};

const DEFINITION: &str = "https://paraply.se/fhir/OperationDefinition/export";
const PATIENT_DEFINITION: &str = "https://paraply.se/fhir/OperationDefinition/patient-export";
const GROUP_DEFINITION: &str = "https://paraply.se/fhir/OperationDefinition/group-export";

static SYSTEM_EXPORT: OperationDef = OperationDef {
    name: "export",
    level: OperationLevel::System,
    resource_types: &[],
    methods: &[Method::Get],
    definition: DEFINITION,
    documentation: "FHIR Bulk Data export of every type the system client may read, as NDJSON files (Prefer: respond-async)",
    permission: (None, Permission::Read),
    audit: OperationAudit::Export,
};

static PATIENT_EXPORT: OperationDef = OperationDef {
    name: "export",
    level: OperationLevel::Type,
    resource_types: &[ResourceType::Patient],
    methods: &[Method::Get],
    definition: PATIENT_DEFINITION,
    documentation: "FHIR Bulk Data export of every patient's compartment (Prefer: respond-async)",
    permission: (Some(ResourceType::Patient), Permission::Read),
    audit: OperationAudit::Export,
};

static GROUP_EXPORT: OperationDef = OperationDef {
    name: "export",
    level: OperationLevel::Instance,
    resource_types: &[ResourceType::Group],
    methods: &[Method::Get],
    definition: GROUP_DEFINITION,
    documentation: "FHIR Bulk Data export of the compartments of a Group's member patients (Prefer: respond-async)",
    permission: (Some(ResourceType::Group), Permission::Read),
    audit: OperationAudit::Export,
};

pub(crate) fn operations(exports: &Exports) -> Vec<Arc<dyn Operation>> {
    [&SYSTEM_EXPORT, &PATIENT_EXPORT, &GROUP_EXPORT]
        .into_iter()
        .map(|definition| {
            Arc::new(Kickoff {
                definition,
                exports: exports.clone(),
            }) as Arc<dyn Operation>
        })
        .collect()
}

struct Kickoff {
    definition: &'static OperationDef,
    exports: Exports,
}

#[async_trait]
impl Operation for Kickoff {
    fn definition(&self) -> &OperationDef {
        self.definition
    }

    async fn run(
        &self,
        call: OperationCall,
        context: &mut OperationContext<'_>,
    ) -> Result<Outcome, CoreError> {
        if context.audience() != Audience::System {
            return Err(CoreError::Forbidden {
                reason: "bulk export is for system clients (SMART Backend Services) only".into(),
            });
        }
        if !call.respond_async {
            return Err(CoreError::bad_request(
                "$export runs asynchronously: send 'Prefer: respond-async'",
            ));
        }
        call.only_params("export", spec::PARAMETERS)?;
        let (level, path) = match (self.definition.level, &call.id) {
            (OperationLevel::Instance, Some(group)) => {
                // The group must exist and be visible, like any read of it.
                context.read_visible(ResourceType::Group, group).await?;
                (
                    Level::Group {
                        id: group.to_string(),
                    },
                    format!("Group/{group}/$export"),
                )
            }
            (OperationLevel::Type, _) => (Level::Patient, "Patient/$export".to_owned()),
            _ => (Level::System, "$export".to_owned()),
        };
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(call.params.iter())
            .finish();
        let relative = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        let request = format!("{}/{relative}", context.base_url());
        let entity = match &level {
            Level::Group { .. } => call.id.clone().map(|id| (ResourceType::Group, id)),
            Level::System | Level::Patient => None,
        };
        let mut spec = spec::parse(level, request, &call.params, |t| context.may_read(t))?;
        // One access-log entry per export, written when the worker knows what it holds.
        spec.audit = context
            .defer_audit(relative, entity)
            .map(|deferred| deferred.to_text());
        let now = OffsetDateTime::now_utc();
        let job = NewExportJob {
            id: uuid::Uuid::new_v4().to_string(),
            client_id: context.system_client().unwrap_or_default().to_owned(),
            spec: serde_json::to_string(&spec).map_err(|e| {
                CoreError::bad_request(format!("the export request cannot be stored: {e}"))
            })?,
            transaction_time: now,
            expires: now + self.exports.settings.expire,
        };
        let job = self.exports.exports.create_export(&job).await?;
        Ok(Outcome::Accepted {
            content_location: self.exports.status_url(&job.id),
        })
    }
}
