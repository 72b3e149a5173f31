//! What every resource written must pass, in one place: the R4 model (`paraply-fhir`), then
//! the checks a domain registers ([`ResourceCheck`]: Swedish identifiers, invariants,
//! profiles). Request bodies are checked before their write transaction begins
//! ([`Validator::prevalidate`]); bodies built inside it (a patch, the server's own writes)
//! when they are written. `$validate` runs the same checks and stores nothing.

use std::sync::Arc;

use paraply_fhir::{
    Invalid, Issue, IssueType, ResourceId, ResourceType, Severity, VersionId, validate,
};
use serde_json::{Map, Value};

use crate::error::CoreError;
use crate::request::Interaction;
use crate::stamp::{now, stamp};

/// A check of one resource about to be written. It may normalise what it checks (an
/// identifier system written in an accepted alias becomes the stored spelling), so it gets
/// the body itself. Issues of severity error refuse the write with 422.
pub trait ResourceCheck: Send + Sync {
    fn check(&self, resource_type: ResourceType, resource: &mut Map<String, Value>) -> Vec<Issue>;
}

/// The checks of every write, shared by all requests.
#[derive(Clone)]
pub struct Validator {
    checks: Vec<Arc<dyn ResourceCheck>>,
}

impl Default for Validator {
    fn default() -> Self {
        Validator::new(Vec::new())
    }
}

impl Validator {
    /// The engine's own checks of every write (Swedish identifiers, the R4 invariants),
    /// then `checks`.
    pub fn new(checks: Vec<Arc<dyn ResourceCheck>>) -> Self {
        let mut all: Vec<Arc<dyn ResourceCheck>> =
            vec![Arc::new(SwedishIdentifiers), Arc::new(R4Invariants)];
        all.extend(checks);
        Validator { checks: all }
    }

    /// Validates the body a create or update carries, before its write transaction begins:
    /// a database has one writer at a time (SQLite one connection, PostgreSQL one per
    /// resource), and validation is the costliest step of a write, so it runs on the
    /// request's own task, in parallel with other requests, not while holding the writer.
    /// What happens to the body later (the server's `id` and `meta`, an owner tag,
    /// `urn:uuid:` references rewritten to `Type/id`) keeps it valid.
    pub(crate) fn prevalidate(&self, interaction: &mut Interaction) -> Result<(), CoreError> {
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
        // A body of the wrong shape or type is refused when written, with its own message.
        let Value::Object(map) = body else {
            return Ok(());
        };
        if map.get("resourceType").and_then(Value::as_str) != Some(resource_type.as_str()) {
            return Ok(());
        }
        let mut issues = self.run_checks(resource_type, map);
        // Stamped as the server will stamp it, so client-sent `id`/`meta` values that the
        // server replaces are not held against the body.
        let stamped = stamp(
            map.clone(),
            &ResourceId::generate(),
            VersionId::FIRST,
            now(),
        );
        refuse(&stamped, &mut issues)
    }

    /// Checks a body built inside the transaction, already stamped; returns it as it
    /// must be stored.
    pub(crate) fn check_stamped(
        &self,
        resource_type: ResourceType,
        stamped: Value,
    ) -> Result<Value, CoreError> {
        let Value::Object(mut map) = stamped else {
            return Err(CoreError::bad_request("the body must be a JSON object"));
        };
        let mut issues = self.run_checks(resource_type, &mut map);
        let stamped = Value::Object(map);
        refuse(&stamped, &mut issues)?;
        Ok(stamped)
    }

    /// Every issue the body has, for `$validate`: nothing is stored.
    pub fn issues(&self, resource_type: ResourceType, body: &Value) -> Vec<Issue> {
        let Value::Object(map) = body else {
            return vec![Issue::error(
                paraply_fhir::IssueType::Structure,
                "the resource must be a JSON object",
            )];
        };
        let mut map = map.clone();
        let mut issues = match validate(&stamp(
            map.clone(),
            &ResourceId::generate(),
            VersionId::FIRST,
            now(),
        )) {
            Ok(_) => Vec::new(),
            Err(invalid) => invalid.issues().to_vec(),
        };
        if map.get("resourceType").and_then(Value::as_str) == Some(resource_type.as_str()) {
            issues.extend(self.run_checks(resource_type, &mut map));
        }
        issues
    }

    fn run_checks(&self, resource_type: ResourceType, map: &mut Map<String, Value>) -> Vec<Issue> {
        self.checks
            .iter()
            .flat_map(|check| check.check(resource_type, map))
            .collect()
    }
}

/// The R4 model first (a structure error is a 400 and says the most), then the checks.
fn refuse(stamped: &Value, issues: &mut Vec<Issue>) -> Result<(), CoreError> {
    validate(stamped).map_err(CoreError::Invalid)?;
    if issues
        .iter()
        .any(|issue| matches!(issue.severity, Severity::Error | Severity::Fatal))
    {
        return Err(CoreError::Invalid(Invalid::Content(std::mem::take(issues))));
    }
    Ok(())
}

/// Personnummer, samordningsnummer, HSA-id and organisationsnummer on every write, profile
/// or not (DOMAIN.md §2); an accepted OID spelling of the system is stored as the HL7
/// Sweden one.
struct SwedishIdentifiers;

impl ResourceCheck for SwedishIdentifiers {
    fn check(&self, _: ResourceType, resource: &mut Map<String, Value>) -> Vec<Issue> {
        let mut value = Value::Object(std::mem::take(resource));
        let issues = paraply_constraints::check_identifiers(&mut value);
        if let Value::Object(map) = value {
            *resource = map;
        }
        issues
            .into_iter()
            .map(|issue| {
                Issue::error(
                    IssueType::Value,
                    format!("{} ({})", issue.message, issue.key),
                )
                .at(issue.expression)
            })
            .collect()
    }
}

/// The FHIRPath `constraint`s of R4 (e.g. CareTeam ctm-1) with severity error.
struct R4Invariants;

impl ResourceCheck for R4Invariants {
    fn check(&self, resource_type: ResourceType, resource: &mut Map<String, Value>) -> Vec<Issue> {
        // The evaluator reads a `Value`; the map is moved in and back, not copied.
        let value = Value::Object(std::mem::take(resource));
        let issues = paraply_constraints::check_invariants(resource_type.as_str(), &value);
        if let Value::Object(map) = value {
            *resource = map;
        }
        issues
            .into_iter()
            .map(|issue| {
                // The message names its invariant already ("ctm-1: …").
                Issue::error(IssueType::Invariant, issue.message).at(issue.expression)
            })
            .collect()
    }
}
