//! The notification worker: a dispatcher that turns queued changes into numbered
//! notifications per matching subscription, and a deliverer that sends them, each
//! subscription by one node at a time, oldest first. Both run on every node; leases in the
//! database (see `paraply_store::OutboxStore`) decide who works, so a node that dies hands
//! over when its lease runs out and nothing is lost in between.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use paraply_core::{Fhir, FhirRequest, Method};
use paraply_fhir::{HSA_ID, ResourceId, ResourceType};
use paraply_search::{MAX_COUNT, Restriction, SearchQuery, StaffScope};
use paraply_store::{
    DeliveryClaim, NewNotification, Notification, NotificationKind, OutboxStore, QueuedChange,
    Store, StoredResource,
};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::task::JoinSet;
use url::Host;

use crate::NotifySettings;
use crate::notification::{SIGNATURE_HEADER, bundle, signature};
use crate::subscription::{Payload, Status, Subscription};

/// Changes one dispatch round takes from the queue.
const DISPATCH_BATCH: u32 = 500;
/// Subscriptions one delivery round claims, delivered concurrently.
const CLAIMS_PER_ROUND: u32 = 16;
/// Notifications sent per claim, in order, before the lease is given back.
const NOTIFICATIONS_PER_CLAIM: u32 = 100;
/// How many levels of units below a care provider its subscriptions speak for.
const UNIT_DEPTH: usize = 3;
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What went wrong in a round; logged, and the round is tried again.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] paraply_store::StoreError),
    #[error("subscription status update: {0}")]
    Status(String),
}

#[derive(Clone)]
pub(crate) struct Worker {
    pub(crate) fhir: Fhir,
    pub(crate) outbox: Arc<dyn OutboxStore>,
    pub(crate) settings: Arc<NotifySettings>,
    pub(crate) http: reqwest::Client,
    /// This process's name in the leases.
    pub(crate) node: Arc<str>,
}

impl Worker {
    fn store(&self) -> &Arc<dyn Store> {
        self.fhir.store()
    }

    /// How long a claim on the dispatcher or on a subscription lasts: a node that dies
    /// holds up that work at most this long. It must outlive the slowest delivery, or a
    /// second node could take over a subscription while the first still sends to it.
    fn lease_until(&self, now: OffsetDateTime) -> OffsetDateTime {
        now + self.settings.timeout * 3
    }

    /// One dispatch round; returns how many changes it took off the queue.
    pub(crate) async fn dispatch(&self) -> Result<usize, WorkerError> {
        let now = OffsetDateTime::now_utc();
        if !self
            .outbox
            .claim_dispatcher(&self.node, now, self.lease_until(now))
            .await?
        {
            return Ok(0);
        }
        let changes = self.outbox.queued_changes(DISPATCH_BATCH).await?;
        if changes.is_empty() {
            return Ok(0);
        }
        let subscriptions = self.receiving_subscriptions().await?;
        // Each care provider's scope is worked out once a round, and only when one of its
        // subscriptions has changes of its type to match.
        let mut scopes: HashMap<String, Restriction> = HashMap::new();
        let mut notifications = Vec::new();
        // Subscription changes: a requested one is greeted, one that is off or gone has
        // nothing more coming.
        let mut greeted = HashSet::new();
        for change in changes
            .iter()
            .filter(|c| c.resource_type == ResourceType::Subscription)
            .rev()
        {
            if !greeted.insert(change.id.clone()) {
                continue;
            }
            let current = self
                .store()
                .read(ResourceType::Subscription, &change.id)
                .await?;
            match current.as_ref().and_then(parsed) {
                Some(subscription) if subscription.status == Status::Requested => {
                    notifications.push(NewNotification {
                        subscription_id: change.id.clone(),
                        kind: NotificationKind::Handshake,
                        focus: None,
                    });
                }
                Some(subscription) if subscription.status != Status::Off => {}
                _ => self.outbox.discard(&change.id).await?,
            }
        }
        // Other changes: which subscriptions each matches, asked of the database with the
        // subscription's own search narrowed to the changed ids, one search per
        // subscription and type.
        let mut by_type: BTreeMap<ResourceType, Vec<&QueuedChange>> = BTreeMap::new();
        for change in changes.iter().filter(|c| !c.deleted) {
            by_type
                .entry(change.resource_type)
                .or_default()
                .push(change);
        }
        let mut matched: HashMap<(ResourceType, ResourceId), Vec<&ResourceId>> = HashMap::new();
        for (resource_type, of_type) in &by_type {
            let ids: Vec<&ResourceId> = of_type
                .iter()
                .map(|c| &c.id)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            for (subscription_id, subscription, owner) in &subscriptions {
                if subscription.criteria.resource_type != *resource_type {
                    continue;
                }
                let scope = match owner {
                    Some(care_provider) => {
                        if !scopes.contains_key(care_provider) {
                            let scope = self.owner_scope(care_provider).await?;
                            scopes.insert(care_provider.clone(), scope);
                        }
                        scopes.get(care_provider).cloned()
                    }
                    None => None,
                };
                for chunk in ids.chunks(MAX_COUNT as usize) {
                    let mut query = match subscription.criteria.query_for(chunk) {
                        Ok(query) => query,
                        Err(reason) => {
                            tracing::warn!(subscription = %subscription_id, %reason, "criteria no longer parse");
                            continue;
                        }
                    };
                    query.count = MAX_COUNT;
                    // Only what the subscriber's care provider may see is notified, even
                    // by id: a party outside a SIP learns nothing of it.
                    query.restriction = scope.clone();
                    for found in self.store().search(&query).await?.matches {
                        matched
                            .entry((*resource_type, found.resource.id))
                            .or_default()
                            .push(subscription_id);
                    }
                }
            }
        }
        for change in &changes {
            let Some(subscribers) = matched.get(&(change.resource_type, change.id.clone())) else {
                continue;
            };
            for subscription_id in subscribers {
                notifications.push(NewNotification {
                    subscription_id: (*subscription_id).clone(),
                    kind: NotificationKind::Event,
                    focus: Some(format!(
                        "{}/{}/_history/{}",
                        change.resource_type, change.id, change.version_id
                    )),
                });
            }
        }
        let done: Vec<i64> = changes.iter().map(|c| c.seq).collect();
        if !self
            .outbox
            .dispatch(&self.node, now, &notifications, &done)
            .await?
        {
            tracing::info!("lost the dispatcher lease; another node dispatches");
            return Ok(0);
        }
        Ok(done.len())
    }

    /// What a care provider's staff may see, as a subscriber: the care-provider
    /// Organization (by its HSA-id), its units and their PractitionerRoles stand in for its
    /// staff — changes of patients whose care team, SIP team or open encounter names them,
    /// no spärr against them, and within the care-provider boundary (the resource is theirs
    /// or names one of them). Narrower than any one of its clinicians may see, never
    /// wider. An unknown care provider sees nothing.
    async fn owner_scope(&self, care_provider: &str) -> Result<Restriction, WorkerError> {
        let organizations = self
            .references(
                ResourceType::Organization,
                "identifier",
                &format!("{HSA_ID}|{care_provider}"),
            )
            .await?;
        // Its units, a few levels down (förvaltning → enhet): their staff's care teams count.
        let mut units = organizations.clone();
        let mut level = organizations.clone();
        for _ in 0..UNIT_DEPTH {
            if level.is_empty() {
                break;
            }
            level = self
                .references(ResourceType::Organization, "partof", &level.join(","))
                .await?
                .into_iter()
                .filter(|unit| !units.contains(unit))
                .collect();
            units.extend(level.iter().cloned());
        }
        // And its staff's roles: a meeting or plan naming one of them is theirs too.
        let mut members = units.clone();
        for chunk in units.chunks(50) {
            members.extend(
                self.references(
                    ResourceType::PractitionerRole,
                    "organization",
                    &chunk.join(","),
                )
                .await?,
            );
        }
        Ok(Restriction::Staff(Box::new(StaffScope {
            members,
            units,
            organizations: organizations.clone(),
            care_provider: care_provider.to_owned(),
            blocked_if_actor: organizations,
            emergency: false,
        })))
    }

    /// `Type/id` of every current `resource_type` whose `param` matches `value` (at most a
    /// page of [`MAX_COUNT`]: a care provider's units and roles).
    async fn references(
        &self,
        resource_type: ResourceType,
        param: &str,
        value: &str,
    ) -> Result<Vec<String>, WorkerError> {
        let mut query = SearchQuery::parse(resource_type, [(param, value)])
            .map_err(|e| WorkerError::Status(e.to_string()))?;
        query.count = MAX_COUNT;
        Ok(self
            .store()
            .search(&query)
            .await?
            .matches
            .into_iter()
            .map(|m| format!("{resource_type}/{}", m.resource.id))
            .collect())
    }

    /// The subscriptions changes are matched for, with the care provider that owns each
    /// (`None`: a system client's).
    async fn receiving_subscriptions(
        &self,
    ) -> Result<Vec<(ResourceId, Subscription, Option<String>)>, WorkerError> {
        let mut query =
            SearchQuery::parse(ResourceType::Subscription, [("status", "active,error")])
                .map_err(|e| WorkerError::Status(e.to_string()))?;
        query.count = MAX_COUNT;
        let page = self.store().search(&query).await?;
        Ok(page
            .matches
            .into_iter()
            .filter_map(|m| {
                let owner = owner_of(&m.resource);
                parsed(&m.resource).map(|s| (m.resource.id, s, owner))
            })
            .filter(|(_, subscription, _)| subscription.status.receives_events())
            .collect())
    }

    /// One delivery round; returns how many subscriptions it claimed.
    pub(crate) async fn deliver(&self) -> Result<usize, WorkerError> {
        let now = OffsetDateTime::now_utc();
        let claims = self
            .outbox
            .claim_deliveries(
                &self.node,
                now,
                self.lease_until(now),
                CLAIMS_PER_ROUND,
                NOTIFICATIONS_PER_CLAIM,
            )
            .await?;
        let claimed = claims.len();
        let mut tasks = JoinSet::new();
        for claim in claims {
            let worker = self.clone();
            tasks.spawn(async move {
                let id = claim.subscription_id.clone();
                let result = worker.deliver_claim(claim).await;
                // The lease is given back whatever happened; if that fails too, it runs out.
                let released = worker.outbox.release(&worker.node, &id).await;
                (id, result, released)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((_, Ok(()), Ok(()))) => {}
                Ok((id, result, released)) => {
                    tracing::warn!(subscription = %id, ?result, ?released, "delivery round failed");
                }
                Err(error) => tracing::error!(%error, "delivery task panicked"),
            }
        }
        Ok(claimed)
    }

    async fn deliver_claim(&self, claim: DeliveryClaim) -> Result<(), WorkerError> {
        let id = &claim.subscription_id;
        let stored = self.store().read(ResourceType::Subscription, id).await?;
        let Some(mut subscription) = stored
            .as_ref()
            .and_then(parsed)
            .filter(|subscription| subscription.status != Status::Off)
        else {
            return Ok(self.outbox.discard(id).await?);
        };
        // Whose access decides what a full-resource notification may carry.
        let scope = match stored.as_ref().and_then(owner_of) {
            Some(care_provider) if subscription.payload == Payload::FullResource => {
                Some(self.owner_scope(&care_provider).await?)
            }
            _ => None,
        };
        let mut failures = claim.failures;
        let mut delivered = Vec::with_capacity(claim.notifications.len());
        let started = std::time::Instant::now();
        for notification in &claim.notifications {
            // The lease lasts three timeouts: stop while one more send still fits in it.
            if started.elapsed() > self.settings.timeout * 2 {
                break;
            }
            let resource = self
                .full_resource(&subscription, scope.as_ref(), notification)
                .await?;
            match self.send(&subscription, id, notification, resource).await {
                Ok(()) => {
                    delivered.push(notification.seq);
                    failures = 0;
                    if subscription.status != Status::Active {
                        self.outbox
                            .delivered(id, &std::mem::take(&mut delivered))
                            .await?;
                        self.set_status(id, Status::Active, None).await?;
                        subscription.status = Status::Active;
                    }
                }
                Err(reason) => {
                    self.outbox
                        .delivered(id, &std::mem::take(&mut delivered))
                        .await?;
                    failures += 1;
                    let wait = self.backoff(failures);
                    let failures = self
                        .outbox
                        .delivery_failed(id, OffsetDateTime::now_utc() + wait)
                        .await?;
                    tracing::info!(subscription = %id, failures, %reason, "notification not delivered");
                    let error = format!("delivery failed {failures} time(s) in a row: {reason}");
                    if failures >= self.settings.max_failures {
                        self.set_status(id, Status::Off, Some(&error)).await?;
                        self.outbox.discard(id).await?;
                    } else if subscription.status != Status::Error {
                        self.set_status(id, Status::Error, Some(&error)).await?;
                    }
                    // Order per subscription: nothing after a failed notification goes first.
                    break;
                }
            }
        }
        self.outbox.delivered(id, &delivered).await?;
        Ok(())
    }

    fn backoff(&self, failures: i64) -> Duration {
        let exponent = u32::try_from(failures.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
        self.settings
            .retry_base
            .saturating_mul(1 << exponent)
            .min(MAX_BACKOFF)
    }

    /// The changed version for a full-resource notification, if the subscriber may read it
    /// now: a system client's subscription (no owner) always, a care provider's under its
    /// access rules ([`Worker::owner_scope`]). `None` sends the notification id-only.
    async fn full_resource(
        &self,
        subscription: &Subscription,
        scope: Option<&Restriction>,
        notification: &Notification,
    ) -> Result<Option<Value>, WorkerError> {
        if subscription.payload != Payload::FullResource {
            return Ok(None);
        }
        let Some((resource_type, id, version)) =
            notification.focus.as_deref().and_then(parse_focus)
        else {
            return Ok(None);
        };
        if let Some(scope) = scope
            && !self.store().visible(resource_type, &id, scope).await?
        {
            return Ok(None);
        }
        Ok(self
            .store()
            .vread(resource_type, &id, version)
            .await?
            .and_then(|stored| stored.body)
            .and_then(|body| serde_json::from_str(&body).ok()))
    }

    /// Sends one notification; `Err` with the reason when it was not accepted (a 2xx).
    async fn send(
        &self,
        subscription: &Subscription,
        id: &ResourceId,
        notification: &Notification,
        resource: Option<Value>,
    ) -> Result<(), String> {
        let base = self.fhir.base_url();
        let body = bundle(
            base,
            &format!("{base}/Subscription/{id}"),
            subscription.status,
            subscription.payload,
            notification,
            resource,
            OffsetDateTime::now_utc(),
        );
        let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        self.check_addresses(&subscription.endpoint).await?;
        let mut request = self
            .http
            .post(subscription.endpoint.clone())
            .timeout(self.settings.timeout)
            .header("Content-Type", "application/fhir+json")
            .header(SIGNATURE_HEADER, signature(&subscription.secret, &body));
        for (name, value) in &subscription.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| format!("endpoint not reached: {}", without_url(&e)))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "endpoint answered HTTP {}",
                response.status().as_u16()
            ))
        }
    }

    /// The addresses the endpoint's host resolves to now must all be allowed: a name
    /// accepted on write may since point somewhere else.
    async fn check_addresses(&self, endpoint: &url::Url) -> Result<(), String> {
        let port = endpoint.port_or_known_default().unwrap_or(443);
        let addresses: Vec<IpAddr> = match endpoint.host() {
            Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(Host::Domain(name)) => tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| format!("cannot resolve the endpoint's host: {e}"))?
                .map(|address| address.ip())
                .collect(),
            None => return Err("the endpoint has no host".into()),
        };
        if addresses.is_empty() {
            return Err("the endpoint's host resolves to nothing".into());
        }
        addresses
            .into_iter()
            .try_for_each(|address| self.settings.policy.check_address(address))
    }

    /// Writes the subscription's `status` (and `error`) through the engine's one write
    /// path, as the server. When someone else changed the subscription first, theirs wins
    /// and the next round sees it.
    async fn set_status(
        &self,
        id: &ResourceId,
        status: Status,
        error: Option<&str>,
    ) -> Result<(), WorkerError> {
        let Some(stored) = self.store().read(ResourceType::Subscription, id).await? else {
            return Ok(());
        };
        let Some(mut body) = stored
            .body
            .as_deref()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
        else {
            return Ok(());
        };
        body["status"] = Value::from(status.code());
        match error {
            Some(error) => body["error"] = Value::from(error),
            None => {
                if let Some(map) = body.as_object_mut() {
                    map.remove("error");
                }
            }
        }
        let mut request = FhirRequest::new(Method::Put, format!("Subscription/{id}"));
        request.if_match = Some(stored.version_id.etag());
        request.body = Some(body);
        match self.fhir.handle(request).await {
            Ok(_) | Err(paraply_core::CoreError::PreconditionFailed { .. }) => Ok(()),
            Err(error) => Err(WorkerError::Status(error.to_string())),
        }
    }
}

/// `Type/id/_history/version`, typed.
fn parse_focus(focus: &str) -> Option<(ResourceType, ResourceId, paraply_fhir::VersionId)> {
    let (current, version) = focus.split_once("/_history/")?;
    let (resource_type, id) = current.split_once('/')?;
    Some((
        resource_type.parse().ok()?,
        id.parse().ok()?,
        version.parse().ok()?,
    ))
}

/// The care provider a stored resource's owner tag names.
fn owner_of(stored: &StoredResource) -> Option<String> {
    stored.body.as_deref().and_then(paraply_core::owner_of)
}

/// The stored Subscription, if it is one delivery can use.
fn parsed(stored: &StoredResource) -> Option<Subscription> {
    let body = stored.body.as_deref()?;
    let value: Value = serde_json::from_str(body).ok()?;
    Subscription::parse(value.as_object()?).ok()
}

/// A reqwest error without the URL (it may carry a token in its query).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "the endpoint");
    }
    if error.is_timeout() {
        "timed out".into()
    } else {
        text
    }
}
