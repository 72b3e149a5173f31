//! The one path every write takes — a request sent alone, the entries of a transaction
//! Bundle, the server's own writes (a staff member's first login, the demo and synthetic
//! loads, writes the rules derive) — so validation, the rules, the access checks, the access
//! log and provenance run the same way for all of them:
//!
//! 1. [`Fhir::write_transaction`] opens a store transaction (optimistic on the first attempt)
//!    and hands it, as a [`WriteTx`], to the work: one interaction, or a Bundle's entries.
//!    Every version written is recorded as a [`Change`], whoever the caller is.
//! 2. The [`WriteRule`](crate::rules::WriteRule)s run over the changes inside the same
//!    transaction; writes they derive go through [`write_in`] too, and the rules run again
//!    over those.
//! 3. For an authenticated caller, every resource written must still be the caller's to
//!    see ([`verify_written`]); then each write stages its AuditEvent and Provenance.
//! 4. Commit. A version another writer committed first restarts the whole attempt, which
//!    checks `If-Match` again: a pinned version that moved answers 412, alone or in a Bundle.

use std::sync::Arc;

use async_trait::async_trait;
use paraply_fhir::{ResourceId, ResourceType, VersionId};
use paraply_search::SearchQuery;
use paraply_store::{NewVersion, SearchPage, StoreError, StoreTx, StoredResource};
use serde_json::Value;

use crate::access::{Access, Subject};
use crate::access_record::AccessSummary;
use crate::audit::AuditAction;
use crate::audit_log::stage_audit_event;
use crate::engine::{Fhir, Outcome, Reader};
use crate::error::CoreError;
use crate::provenance::{ProvenanceActivity, stage_provenance};
use crate::request::Interaction;
use crate::rules::{Change, DerivedWrite};
use crate::tags::{linked_via, owner_of, patients_of};
use crate::validation::Validator;
use crate::versions::{Validation, write_in};

/// How often a write is attempted when another writer committed a version it replaces
/// first (each attempt re-reads; an `If-Match` that no longer holds answers 412).
pub(crate) const WRITE_ATTEMPTS: usize = 5;

/// Rounds of rules and the writes they derive, before the engine gives up: a derived write
/// that derives another, and so on, is a bug in a rule, not a reason to loop.
const RULE_ROUNDS: usize = 4;

/// A write transaction as the engine runs it: the store's transaction and what was written
/// in it, by which Bundle entry.
pub(crate) struct WriteTx {
    tx: Box<dyn StoreTx>,
    validator: Arc<Validator>,
    /// Every version written, with the entry that wrote it (`None`: a single request or the
    /// server's own write).
    changes: Vec<(Option<usize>, Change)>,
    /// What the access rules and the access log need of each write by an authenticated caller.
    written: Vec<(Option<usize>, Written)>,
    /// The Bundle entry running now.
    entry: Option<usize>,
}

impl WriteTx {
    fn new(tx: Box<dyn StoreTx>, validator: Arc<Validator>) -> Self {
        WriteTx {
            tx,
            validator,
            changes: Vec::new(),
            written: Vec::new(),
            entry: None,
        }
    }

    /// The store transaction, for reads and for the access log's own records (which are
    /// the log of this path, not writes through it).
    pub(crate) fn store(&mut self) -> &mut dyn StoreTx {
        self.tx.as_mut()
    }

    pub(crate) fn validator(&self) -> &Validator {
        &self.validator
    }

    /// Marks the Bundle entry whose writes follow.
    pub(crate) fn set_entry(&mut self, entry: Option<usize>) {
        self.entry = entry;
    }

    pub(crate) async fn read(
        &mut self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<StoredResource>, StoreError> {
        self.tx.read(resource_type, id).await
    }

    pub(crate) async fn search(&mut self, query: &SearchQuery) -> Result<SearchPage, StoreError> {
        self.tx.search(query).await
    }

    /// Writes a version; `before` is the body it replaces (`None`: none, or a deletion).
    pub(crate) async fn write(
        &mut self,
        version: NewVersion,
        before: Option<String>,
    ) -> Result<(), StoreError> {
        let change = Change {
            resource_type: version.resource_type,
            id: version.id.clone(),
            version_id: version.version_id,
            before,
            after: version.body.clone(),
        };
        self.tx.write(version).await?;
        self.changes.push((self.entry, change));
        Ok(())
    }

    /// The entry that wrote `resource_type/id` last, to name it in an error.
    fn entry_of(&self, resource_type: ResourceType, id: &ResourceId) -> Option<usize> {
        entry_of(&self.changes, resource_type, id)
    }
}

/// The entry that wrote `resource_type/id` last among `changes`.
fn entry_of(
    changes: &[(Option<usize>, Change)],
    resource_type: ResourceType,
    id: &ResourceId,
) -> Option<usize> {
    changes
        .iter()
        .rev()
        .find(|(_, change)| change.resource_type == resource_type && change.id == *id)
        .and_then(|(entry, _)| *entry)
}

/// What a write transaction does before the rules, checks, log and commit: one
/// interaction, or a Bundle's entries. Run again from the start on each attempt.
#[async_trait]
pub(crate) trait WriteWork: Send + Sync {
    type Output: Send;
    async fn run(&self, tx: &mut WriteTx) -> Result<Self::Output, WriteFailure>;
}

/// A write sent alone.
pub(crate) struct SingleWrite<'a> {
    pub interaction: &'a Interaction,
    pub access: Option<&'a Access>,
}

#[async_trait]
impl WriteWork for SingleWrite<'_> {
    type Output = Outcome;

    async fn run(&self, tx: &mut WriteTx) -> Result<Outcome, WriteFailure> {
        write_checked(tx, self.interaction.clone(), None, self.access)
            .await
            .map_err(WriteFailure::from)
    }
}

/// A failed write attempt: the error, and the Bundle entry it belongs to when known.
#[derive(Debug)]
pub(crate) struct WriteFailure {
    pub error: CoreError,
    pub entry: Option<usize>,
}

impl From<CoreError> for WriteFailure {
    fn from(error: CoreError) -> Self {
        WriteFailure { error, entry: None }
    }
}

impl From<StoreError> for WriteFailure {
    fn from(error: StoreError) -> Self {
        WriteFailure::from(CoreError::from(error))
    }
}

impl Fhir {
    /// The store transaction for write attempt `attempt` (from 1). The first lets the store
    /// serve reads before it holds the writer; a retry holds it throughout, so it cannot
    /// lose the race again.
    async fn begin_attempt(&self, attempt: usize) -> Result<Box<dyn StoreTx>, CoreError> {
        let tx = if attempt == 1 {
            self.store().begin_optimistic().await?
        } else {
            self.store().begin().await?
        };
        Ok(tx)
    }

    /// Runs `work` in a write transaction, then the rules, the access checks and the access
    /// log, and commits; retries the whole attempt when a concurrent writer won a version.
    pub(crate) async fn write_transaction<W: WriteWork>(
        &self,
        access: Option<&Access>,
        work: &W,
    ) -> Result<W::Output, WriteFailure> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = WriteTx::new(self.begin_attempt(attempt).await?, self.validator());
            let result = match work.run(&mut tx).await {
                Ok(value) => self.finish(tx, access).await.map(|()| value),
                Err(failure) => Err(failure),
            };
            match result {
                Err(failure) if is_conflict(&failure.error) && attempt < WRITE_ATTEMPTS => {
                    tracing::debug!(attempt, "concurrent write; retrying");
                }
                other => return other,
            }
        }
    }

    /// Steps 2–4 of the module doc, after the work wrote what it writes.
    async fn finish(&self, mut tx: WriteTx, access: Option<&Access>) -> Result<(), WriteFailure> {
        self.run_rules(&mut tx, access).await?;
        // All checks before all log entries: the checks ask the database, which sends the
        // writes kept back so far, so the log entries go out together at commit.
        let written = std::mem::take(&mut tx.written);
        for (entry, written) in &written {
            verify_written(tx.store(), access, written)
                .await
                .map_err(|error| WriteFailure {
                    error,
                    entry: *entry,
                })?;
        }
        for (entry, written) in &written {
            log_write(tx.store(), access, written)
                .await
                .map_err(|error| WriteFailure {
                    error,
                    entry: *entry,
                })?;
        }
        let WriteTx {
            tx: store_tx,
            changes,
            ..
        } = tx;
        store_tx.commit().await.map_err(|error| {
            // A write kept back until the commit can still lose a race: name its entry.
            let entry = match &error {
                StoreError::VersionConflict { resource_type, id } => {
                    entry_of(&changes, *resource_type, id)
                }
                _ => None,
            };
            WriteFailure {
                error: CoreError::from(error),
                entry,
            }
        })?;
        // Who a citizen is (their Patient, the RelatedPersons they are) is cached; a new or
        // changed record of either takes effect at the person's next request, not minutes
        // later (a guardian just recorded, a relative just added).
        if changes.iter().any(|(_, change)| {
            matches!(
                change.resource_type,
                ResourceType::Patient | ResourceType::RelatedPerson
            )
        }) {
            self.identities.forget_citizens();
        }
        Ok(())
    }

    /// Runs the rules over the transaction's changes, then over the writes they derive,
    /// until nothing more is derived.
    async fn run_rules(
        &self,
        tx: &mut WriteTx,
        access: Option<&Access>,
    ) -> Result<(), WriteFailure> {
        let rules = self.rules();
        if rules.is_empty() {
            return Ok(());
        }
        let mut checked = 0;
        for _ in 0..RULE_ROUNDS {
            if checked == tx.changes.len() {
                return Ok(());
            }
            let changes: Vec<Change> = tx.changes[checked..]
                .iter()
                .map(|(_, change)| change.clone())
                .collect();
            checked = tx.changes.len();
            let mut derived = Vec::new();
            for rule in rules {
                match rule.check(tx.store(), &changes).await {
                    Ok(writes) => derived.extend(writes),
                    Err(error) => {
                        let entry = match &error {
                            CoreError::RuleBroken {
                                resource: Some((resource_type, id)),
                                ..
                            } => tx.entry_of(*resource_type, id),
                            _ => None,
                        };
                        return Err(WriteFailure { error, entry });
                    }
                }
            }
            for write in derived {
                self.write_derived(tx, access, write).await?;
            }
        }
        Err(WriteFailure::from(CoreError::bad_request(
            "the rules kept deriving writes; nothing was stored",
        )))
    }

    /// A write the rules derived from the caller's: the server writes it on the caller's
    /// behalf, through the same steps, logged as the caller's access.
    async fn write_derived(
        &self,
        tx: &mut WriteTx,
        access: Option<&Access>,
        write: DerivedWrite,
    ) -> Result<(), WriteFailure> {
        let cause = tx.entry_of(write.cause.0, &write.cause.1);
        tx.set_entry(cause);
        let interaction = Interaction::Update {
            resource_type: write.resource_type,
            id: write.id.clone(),
            body: write.body,
            if_match: Some(write.if_match),
        };
        let logged = AccessSummary::of(&interaction);
        let outcome = write_in(tx, interaction, None, Validation::Needed)
            .await
            .map_err(|error| WriteFailure {
                error,
                entry: cause,
            })?;
        if access.is_some()
            && let Outcome::Resource { resource, .. } = outcome
        {
            let patients = patients_written(tx.store(), &resource).await?;
            tx.written.push((
                cause,
                Written {
                    patients,
                    resource_type: resource.resource_type,
                    id: resource.id,
                    owner: OwnerCheck::ServerWrite,
                    deleted: false,
                    logged,
                },
            ));
        }
        tx.set_entry(None);
        Ok(())
    }
}

/// Whether a write failed because another writer committed a version first.
pub(crate) fn is_conflict(error: &CoreError) -> bool {
    match error {
        CoreError::Conflict { .. } => true,
        CoreError::Transaction { source, .. } => matches!(**source, CoreError::Conflict { .. }),
        _ => false,
    }
}

/// Which owner tag (care provider) a written version must carry.
pub(crate) enum OwnerCheck {
    /// Exactly this one (or none): a staff write cannot move a resource to another provider.
    Expected(Option<String>),
    /// A write the server derived keeps the tag of the version it replaces.
    ServerWrite,
}

/// A resource a write produced, to be checked against the access rules before commit.
pub(crate) struct Written {
    resource_type: ResourceType,
    id: ResourceId,
    owner: OwnerCheck,
    deleted: bool,
    /// Whose data it is (before a delete, after any other write), for the access log.
    patients: Vec<ResourceId>,
    /// What the access log says of it (`None`: not patient data).
    logged: Option<AccessSummary>,
}

/// Runs one write for `access` inside `tx`: the version it replaces must be visible to the
/// caller, and a staff write stamps the owner tag. The new state is checked by
/// [`verify_written`] — after the whole transaction, since a Bundle may create the care
/// relationship that makes its own entries visible.
pub(crate) async fn write_checked(
    tx: &mut WriteTx,
    mut interaction: Interaction,
    assigned_id: Option<ResourceId>,
    access: Option<&Access>,
) -> Result<Outcome, CoreError> {
    let Some(access) = access else {
        return write_in(tx, interaction, assigned_id, Validation::Done).await;
    };
    let logged = AccessSummary::of(&interaction);
    let target = named_target(&interaction);
    let mut current_owner = None;
    let mut previous_patients = Vec::new();
    if let Some((resource_type, id)) = &target
        && let Some(current) = tx.read(*resource_type, id).await?
        && let Some(body) = current.body.as_deref()
    {
        access
            .require_visible(&mut Reader::Tx(tx.store()), *resource_type, id)
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
    let outcome = write_in(tx, interaction, assigned_id, Validation::Done).await?;
    if let (Subject::Relative { .. }, Outcome::Resource { resource, .. }) =
        (&access.subject, &outcome)
        && resource.resource_type == ResourceType::Consent
        && resource.body.as_deref().is_some_and(is_deny_consent)
    {
        // I13: a relative — a guardian too — acts for the patient, but a spärr is the
        // patient's own decision about who may see their data.
        return Err(CoreError::Forbidden {
            reason: "a relative cannot make a spärr (a deny Consent) for the patient".into(),
        });
    }
    let written = match &outcome {
        Outcome::Resource { resource, .. } => Some(Written {
            resource_type: resource.resource_type,
            id: resource.id.clone(),
            owner: OwnerCheck::Expected(expected_owner),
            deleted: false,
            patients: patients_written(tx.store(), resource).await?,
            logged,
        }),
        Outcome::Deleted => target.map(|(resource_type, id)| Written {
            resource_type,
            id,
            owner: OwnerCheck::Expected(None),
            deleted: true,
            patients: previous_patients,
            logged,
        }),
        _ => None,
    };
    if let Some(written) = written {
        tx.written.push((tx.entry, written));
    }
    Ok(outcome)
}

/// The state a write leaves must still be the caller's to see (a patient cannot write data
/// into another patient's record, staff only where they have a care relationship), and the
/// owner tag cannot be changed by a patch. A staff member registering a new Patient is the
/// exception: nobody has a care relationship with a patient before their first CareTeam.
async fn verify_written(
    tx: &mut dyn StoreTx,
    access: Option<&Access>,
    written: &Written,
) -> Result<(), CoreError> {
    let Some(access) = access else {
        return Ok(());
    };
    let OwnerCheck::Expected(expected_owner) = &written.owner else {
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
    if matches!(access.subject, Subject::Staff(_)) && owner != *expected_owner {
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
async fn log_write(
    tx: &mut dyn StoreTx,
    access: Option<&Access>,
    written: &Written,
) -> Result<(), CoreError> {
    let (Some(access), Some(logged)) = (access, &written.logged) else {
        return Ok(());
    };
    let mut logged = logged.clone();
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

/// A Consent whose provision denies: a spärr.
fn is_deny_consent(body: &str) -> bool {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|consent| {
            consent
                .pointer("/provision/type")
                .and_then(Value::as_str)
                .map(|kind| kind == "deny")
        })
        .unwrap_or(false)
}

/// The patients a written version belongs to, for its access-log entry: those its body
/// names, or, for a staff member's answer to a SIP meeting, those of the Appointment it
/// answers (its second patient link), read in the write's own transaction.
async fn patients_written(
    tx: &mut dyn StoreTx,
    resource: &StoredResource,
) -> Result<Vec<ResourceId>, CoreError> {
    let Some(body) = resource.body.as_deref() else {
        return Ok(Vec::new());
    };
    let patients = patients_of(resource.resource_type, &resource.id, body);
    if !patients.is_empty() {
        return Ok(patients);
    }
    let Some((target_type, target_id)) = linked_via(resource.resource_type, body) else {
        return Ok(patients);
    };
    Ok(tx
        .read(target_type, &target_id)
        .await?
        .and_then(|linked| {
            linked
                .body
                .as_deref()
                .map(|linked_body| patients_of(target_type, &target_id, linked_body))
        })
        .unwrap_or_default())
}
